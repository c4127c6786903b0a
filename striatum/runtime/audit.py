"""The hash chains: appending to them, and checking them.

Each row's ``row_hash = sha256(previous_hash || payload)`` where both are
text (the previous row's hex hash, then the payload's canonical JSON) taken
as UTF-8; the first row follows 64 zeros. The database computes the hash as
it appends (one statement, under the chain head's row lock); ``row_hash``
below computes the same thing in Python for ``doctor``, and a test holds the
two to agreement.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json
from .store import fetch_one, send

if TYPE_CHECKING:
    import psycopg

GENESIS = "0" * 64


def repo_chain(repo_id: int) -> str:
    return f"repo:{repo_id}"


def row_hash(previous_hash: str, payload: str) -> str:
    return hashlib.sha256((previous_hash + payload).encode("utf-8")).hexdigest()


def iso(moment: datetime) -> str:
    """An event's time: UTC whatever the session's time zone, as the database's
    ``striatum.event_time`` writes it for the events it builds itself."""
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
        return canonical_json(body).decode("utf-8")


def append_events(cur: psycopg.Cursor[Any], repo_id: int, events: Iterable[Event],
                  at: datetime) -> None:
    """Append in order. Pipelined, the appends do not wait: they reach the server with
    the COMMIT, so the chain head's lock is held for the shortest time."""
    chain = repo_chain(repo_id)
    for event in events:
        send(cur, "append_event", {
            "chain": chain, "repo": repo_id, "run": event.run, "job": event.job,
            "type": event.type, "payload": event.payload(at)})


def append_audit(cur: psycopg.Cursor[Any], *, actor: str, verb: str, args: Any, outcome: str,
                 at: datetime) -> None:
    args_digest = hashlib.sha256(canonical_json(args)).hexdigest()
    payload = canonical_json({"actor": actor, "verb": verb, "args_digest": args_digest,
                              "outcome": outcome, "at": iso(at)}).decode("utf-8")
    fetch_one(cur, "append_audit", {"actor": actor, "verb": verb, "args_digest": args_digest,
                                    "outcome": outcome, "payload": payload})
