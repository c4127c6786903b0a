"""The collector paused for a large read comes back as it was, however reads nest."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from striatum import collector


@pytest.fixture
def enabled() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_paused_then_back_after_the_outermost_read(enabled: None) -> None:
    with collector.paused():
        assert not gc.isenabled()
        with collector.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer read is still building its answer
    assert gc.isenabled()


def test_back_after_a_read_that_raised(enabled: None) -> None:
    with pytest.raises(ValueError), collector.paused():
        raise ValueError("a refusal in the middle of a read")
    assert gc.isenabled()


def test_a_process_that_turned_it_off_keeps_it_off(enabled: None) -> None:
    gc.disable()
    with collector.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()
