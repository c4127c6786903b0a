"""The hash chains: events appended by transitions, and the audit of every verb.

Each row's ``row_hash = sha256(previous_hash || payload)`` where both are text
(the previous row's hex hash, then the payload's canonical JSON) taken as
UTF-8; the first row follows 64 zeros. The database computes the hash as it
appends (one statement, under the chain head's row lock); ``row_hash`` below
computes the same thing in Python for ``doctor`` and the tests.

The audit lives in the core, not in a surface: every core function that
changes the record is declared a verb (``@verb("job complete")``), and each
transaction it commits carries one audit row (who, which verb, a digest of the
arguments, "ok") written by that same transaction, whichever surface called it:
the CLI, a worker, or any other. A verb that is refused (a stale lease, an
illegal transition, a bad argument) adds one row with the refusal's code in a
transaction of its own: the refusal changed nothing to be atomic with. A verb
that changes nothing (a claim that found no job) writes none, and neither does
one the database itself failed (it could not take the row either). A verb that
calls another (a claim failing an attempt it could not prepare) audits each.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from ..canonical import canonical_json, text_safe
from ..errors import StoreError, StoreUnavailable, StriatumError
from . import batches
from .actor import default_actor as default_actor  # callers import it from here too
from .store import fetch_one, send

if TYPE_CHECKING:
    import psycopg

    from .store import Store

GENESIS = "0" * 64
P = ParamSpec("P")
T = TypeVar("T")


def repo_chain(repo_id: int) -> str:
    return f"repo:{repo_id}"


def row_hash(previous_hash: str, payload: str) -> str:
    return hashlib.sha256((previous_hash + payload).encode("utf-8")).hexdigest()


def iso(moment: datetime) -> str:
    """An event's time: UTC whatever the session's time zone, as the database's
    ``striatum.event_time`` writes it for the rows it builds itself."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass
class Event:
    type: str
    run: str | None
    job: str | None
    state: dict[str, Any]
    data: dict[str, Any]

    def payload(self, at: datetime) -> str:
        body = {"type": self.type, "run": self.run, "job": self.job, "at": iso(at),
                "state": self.state, "data": self.data}
        try:
            text = canonical_json(body).decode("utf-8")
        except UnicodeEncodeError:  # text from outside a verb's arguments (a row's state)
            return canonical_json(text_safe(body)).decode("utf-8")
        # A NUL from outside a verb's arguments: jsonb, which the record's columns are
        # read through, refuses its escape.
        return canonical_json(text_safe(body)).decode("utf-8") if "\\u0000" in text \
            else text


def append_events(cur: psycopg.Cursor[Any], repo_id: int, events: Sequence[Event],
                  at: datetime) -> None:
    """Append in order; the last statement sent returns the chain's new head. Pipelined,
    a few appends do not wait: they reach the server with the COMMIT, so the chain
    head's lock is held for the shortest time. Many (``batches.MANY``) are hashed here
    under the head's lock and inserted in batches: appended one by one, each would
    update the same head row again in one transaction, and every update walks the
    versions the ones before it left, so the time grew with the square of the count."""
    chain = repo_chain(repo_id)
    if len(events) >= batches.MANY:
        _append_many(cur, repo_id, chain, events, at)
        return
    for event in events:
        send(cur, "append_event", {
            "chain": chain, "repo": repo_id, "run": event.run, "job": event.job,
            "type": event.type, "payload": event.payload(at)})


def _append_many(cur: psycopg.Cursor[Any], repo_id: int, chain: str,
                 events: Sequence[Event], at: datetime) -> None:
    """The same rows ``append_event`` would write, hashed by ``row_hash`` (doctor's)."""
    head = fetch_one(cur, "lock_chain_head", {"chain": chain})
    if head is None:
        raise StoreError(f"no chain {chain}", sqlstate="P0002")  # append_event's refusal
    seq, previous = int(head[0]), str(head[1])
    rows = []
    for event in events:
        payload = event.payload(at)
        hashed = row_hash(previous, payload)
        seq += 1
        rows.append({"seq": seq, "run": event.run, "job": event.job, "type": event.type,
                     "payload": payload, "previous_hash": previous, "row_hash": hashed})
        previous = hashed
    for batch in batches.slices(rows):
        send(cur, "insert_events", {"repo": repo_id,
                                     **batches.columns(batch, _EVENT_COLUMNS)})
    send(cur, "move_chain_head", {"chain": chain, "seq": seq, "hash": previous,
                                  "previous": rows[-1]["previous_hash"]})


_EVENT_COLUMNS = ("seq", "run", "job", "type", "payload", "previous_hash", "row_hash")


# -- the audit of verbs ------------------------------------------------------------------------




@dataclass
class Call:
    """One verb in progress on a store: its name and its arguments (secrets left out)."""

    verb: str
    args: dict[str, Any]

    @functools.cached_property
    def digest(self) -> str:
        return hashlib.sha256(canonical_json(self.args)).hexdigest()


DECLARED: set[str] = set()  # every name ``verb`` declared: doctor checks the rows against them
SECRETS = frozenset({"token"})  # arguments never recorded, not even as part of a digest


def _plain(value: Any) -> Any:
    """An argument as canonical JSON can hold it."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _binder(signature: inspect.Signature
            ) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """Every parameter of a call by name, defaults filled in, as ``Signature.bind`` and
    ``apply_defaults`` give them, which cost a third of a short verb's own time: done here
    by a dict, and by ``bind`` itself (whose TypeError words a bad call) for anything but
    a well-formed call. A verb's parameters must all be nameable (no ``/``, ``*args`` or
    ``**kwargs``): it is called by name."""
    params = list(signature.parameters.values())
    by_name = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if not all(p.kind in by_name for p in params):
        raise TypeError(f"a verb's parameters are passed by name: {signature} has some that "
                        "cannot be")
    positional = tuple(p.name for p in params
                       if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
    order = tuple(p.name for p in params)
    names = frozenset(order)
    defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def by_signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if len(args) > len(positional) or not names.issuperset(kwargs):
            return by_signature(args, kwargs)
        given = dict(zip(positional, args, strict=False))
        if not given.keys().isdisjoint(kwargs):
            return by_signature(args, kwargs)
        given.update(kwargs)
        try:
            return {name: given[name] if name in given else defaults[name] for name in order}
        except KeyError:  # a required argument missing
            return by_signature(args, kwargs)

    return bind


def verb(name: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Declare a core function that changes the record, called as ``f(store, ...)``.

    While it runs, the store knows the call (``store.calls``), and every transaction
    it commits records the call with ``record``; if it raises, one row with the error's
    code is written on its own."""

    DECLARED.add(name)

    def declare(func: Callable[P, T]) -> Callable[P, T]:
        bind = _binder(inspect.signature(func))
        by_name: Callable[..., T] = func  # every argument goes by name (``_binder``)

        @functools.wraps(func)
        def audited(*args: P.args, **kwargs: P.kwargs) -> T:
            arguments = bind(args, kwargs)
            store: Store = arguments["store"]
            # Text enters the record only as text UTF-8 can hold (a reason naming a file
            # whose name is not UTF-8 would fail the transition that records it).
            for key, value in arguments.items():
                if key != "store":
                    arguments[key] = text_safe(value)
            call = Call(name, {key: _plain(value) for key, value in arguments.items()
                               if key != "store" and key not in SECRETS})
            store.calls.append(call)
            try:
                return by_name(**arguments)
            except (StoreError, StoreUnavailable):
                raise  # the database failed the call: no more to tell it, nor any use
            except StriatumError as exc:
                refused(store, call, exc.code)
                raise
            except Exception:
                refused(store, call, StriatumError.code)  # a bug: "internal", as the daemon says
                raise
            finally:
                store.calls.pop()

        return audited

    return declare


def append_audit(cur: psycopg.Cursor[Any], *, actor: str, verb: str, args: Any,
                 outcome: str) -> None:
    """One row of the audit chain (the database builds and hashes its payload). Sent
    without waiting: pipelined, it reaches the server with the COMMIT."""
    send(cur, "append_audit", {"actor": actor, "verb": verb, "outcome": outcome,
                               "args_digest": Call(verb, args).digest})


def record(cur: psycopg.Cursor[Any], store: Store) -> None:
    """Inside a transaction that changes the record: its audit row, sent with its other
    writes (pipelined, it reaches the server with the COMMIT)."""
    assert store.calls, "a change outside any verb: declare the core function with @verb"
    call = store.calls[-1]
    append_audit(cur, actor=store.actor, verb=call.verb, args=call.args, outcome="ok")
    store.audited += 1


def record_head(cur: psycopg.Cursor[Any], store: Store) -> tuple[int, str]:
    """``record``, waiting for the audit chain's new head (a run's manifest anchors it)."""
    record(cur, store)
    head = cur.fetchone()
    assert head is not None, "append_audit returns the new head"
    return int(head[0]), str(head[1])


def claim_params(store: Store) -> dict[str, Any]:
    """The audit fields the claim statement records itself when it leases a job."""
    assert store.calls, "a claim outside any verb"
    call = store.calls[-1]
    return {"actor": store.actor, "verb": call.verb, "args_digest": call.digest}


def refused(store: Store, call: Call, outcome: str) -> None:
    """The row of a refused or failed call, in a transaction of its own. Best effort: the
    call's own error is the one the caller must see."""
    def write(cur: psycopg.Cursor[Any]) -> None:
        append_audit(cur, actor=store.actor, verb=call.verb, args=call.args,
                     outcome=outcome)

    try:
        if not store.closed:
            store.transaction(write)
            store.audited += 1
    except Exception:  # noqa: BLE001 - the call's own error is what the caller must see
        pass
