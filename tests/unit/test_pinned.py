"""The per-process caches of pinned workflows, shared by a worker's claim loop and its
lane threads."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from striatum.runtime.pinned import Lru


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switch as often as the interpreter allows, so an unlocked read-modify-write
    of a shared dict is interleaved within a few thousand calls."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def test_a_cache_shared_by_threads_stays_whole_and_bounded(busy_switching: None) -> None:
    cache: Lru[int, int] = Lru(2)
    errors: list[str] = []

    def hammer(n: int) -> None:
        # Every thread reads what the others are evicting.
        try:
            for i in range(50_000):
                cache.get_or_make(i % 3, lambda i=i: i)
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(repr(exc))

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    assert len(cache) <= 2


def test_the_least_recently_used_entry_goes_first() -> None:
    cache: Lru[str, int] = Lru(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    assert cache.get_or_make("b", lambda: 20) == 20
    assert cache.get("a") is None
