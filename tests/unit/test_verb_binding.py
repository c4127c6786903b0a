"""A verb's arguments, named as ``Signature.bind`` with its defaults names them: what its
audit row digests and what the core function is called with."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from striatum.runtime.audit import DECLARED, _binder, verb


@pytest.fixture(autouse=True)
def _forget_test_verbs() -> Any:
    """The verbs these tests declare are not the core's: doctor must not learn them."""
    before = set(DECLARED)
    yield
    DECLARED.intersection_update(before)


def claim_like(store: Any, run_id: str | None, *, owner: str, lanes: list[str] | None = None,
               lease_seconds: int = 300, check_run: bool = True) -> None:
    """A verb's usual shape: positional-or-keyword, then keyword-only, some defaulted."""


def positional_only(store: Any, run_id: str, /, reason: str = "") -> None:
    """A shape a verb cannot have: it is called by name."""


def starred(store: Any, *names: str, **extra: Any) -> None:
    """Another."""


CALLS: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
    (claim_like, ("s", "r1"), {"owner": "o"}),
    (claim_like, ("s",), {"run_id": None, "owner": "o", "lease_seconds": 5}),
    (claim_like, (), {"store": "s", "run_id": "r", "owner": "o", "lanes": ["a"],
                      "check_run": False}),
]


def _reference(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


@pytest.mark.parametrize(("func", "args", "kwargs"), CALLS)
def test_the_arguments_are_those_signature_bind_gives_in_its_order(
        func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    got = _binder(inspect.signature(func))(args, kwargs)
    want = _reference(func, args, kwargs)
    assert got == want
    assert list(got) == list(want)


BAD: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
    (("s", "r"), {}),  # owner missing
    (("s", "r", "o"), {}),  # owner is keyword-only
    (("s", "r"), {"owner": "o", "color": "red"}),  # no such parameter
    (("s", "r"), {"run_id": "again", "owner": "o"}),  # run_id twice
    ((), {"owner": "o"}),  # store and run_id missing
]


@pytest.mark.parametrize(("args", "kwargs"), BAD)
def test_a_bad_call_is_refused_as_signature_bind_refuses_it(
        args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError) as want:
        _reference(claim_like, args, kwargs)
    with pytest.raises(TypeError) as got:
        _binder(inspect.signature(claim_like))(args, kwargs)
    assert str(got.value) == str(want.value)


@pytest.mark.parametrize("func", [positional_only, starred])
def test_a_verb_whose_parameters_cannot_all_be_named_is_refused_when_declared(
        func: Any) -> None:
    with pytest.raises(TypeError, match="passed by name"):
        verb("bench shape")(func)


def test_every_declared_verb_is_called_with_what_it_was_given() -> None:
    calls: list[dict[str, Any]] = []

    class Store:
        calls: list[Any] = []
        closed = True

    @verb("test binding")
    def record(store: Any, run_id: str, job_id: str = "j", *, token: str, n: int = 1
               ) -> None:
        calls.append({"run_id": run_id, "job_id": job_id, "token": token, "n": n,
                      "audited": dict(store.calls[-1].args)})

    record(Store(), "r", token="t")
    record(Store(), "r", "k", token="t", n=2)
    assert calls == [
        {"run_id": "r", "job_id": "j", "token": "t", "n": 1,
         "audited": {"run_id": "r", "job_id": "j", "n": 1}},
        {"run_id": "r", "job_id": "k", "token": "t", "n": 2,
         "audited": {"run_id": "r", "job_id": "k", "n": 2}}]
