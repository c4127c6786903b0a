"""The rows the runtime reads, as typed records built by column name.

Each record is the row of one view of the schema (``striatum.run_records``,
``striatum.job_records``, migration 0005): every read selects ``*`` from the
view and the record is made from the columns by name, so a column is listed in
two places only, the view and the dataclass, and a mismatch fails at the first
read instead of shifting values into the wrong fields.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar, cast, get_type_hints

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import psycopg

R = TypeVar("R")


@dataclass
class RunRow:
    id: str
    repo_id: int
    workflow_digest: str
    workflow_name: str
    status: str
    vars: dict[str, Any]
    artifact_root: str
    base_commit: str | None
    worst_case: int
    blocked_on: str | None
    created_at: datetime
    updated_at: datetime
    unsettled: int  # jobs neither succeeded nor skipped, kept under the run's lock
    repo_path: str

    def state(self) -> dict[str, Any]:
        """What the event records and doctor replays."""
        return {name: getattr(self, name) for name in REPLAYED_RUN_COLUMNS}


@dataclass
class JobRow:
    run_id: str
    job_id: str
    position: int
    kind: str
    lane: str
    lane_kind: str
    status: str
    iteration: int
    attempt: int
    max_attempts: int
    executions: int
    revisions_used: int
    fence: int
    lease_token: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    heartbeat_at: datetime | None
    chosen: str | None
    verdict: str | None
    reason: str | None
    updated_at: datetime
    lease_expired: bool

    def state(self) -> dict[str, Any]:
        """The replayable projection (never the secret lease token)."""
        return {name: getattr(self, name) for name in REPLAYED_JOB_COLUMNS}


# What every job event records as the job's state, and doctor replays.
REPLAYED_JOB_COLUMNS = ("status", "iteration", "attempt", "executions", "revisions_used",
                        "fence", "lease_owner", "chosen", "verdict")
REPLAYED_RUN_COLUMNS = ("status", "blocked_on")


def initial_job_state() -> dict[str, Any]:
    """A new job's replayable state, as ``run.prepare`` records it for every job."""
    return {"status": "pending", "iteration": 0, "attempt": 0, "executions": 0,
            "revisions_used": 0, "fence": 0, "lease_owner": None, "chosen": None,
            "verdict": None}


@cache
def _timestamps(cls: Any) -> frozenset[str]:
    hints = get_type_hints(cls)
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if datetime in getattr(hints[f.name], "__args__", (hints[f.name],)))


def from_json(cls: type[R], document: dict[str, Any]) -> R:
    """A record from a row PostgreSQL sent as JSON (``row_to_json``): by name, with the
    timestamps, which JSON carries as ISO text, made datetimes again."""
    stamps = _timestamps(cast(Any, cls))
    return cls(**{name: (datetime.fromisoformat(value) if name in stamps and value is not None
                         else value) for name, value in document.items()})


@cache
def _fields(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def record_row(cls: type[R]) -> Callable[[psycopg.Cursor[Any]], Callable[[Sequence[Any]], R]]:
    """A psycopg row factory: each row a ``cls``, its fields taken by column name. When
    the columns come in the record's field order (the views list them so), the record is
    built by position: a read of a 10,000-job run then makes no dict a row."""

    def for_result(cursor: psycopg.Cursor[Any]) -> Callable[[Sequence[Any]], R]:
        result = cursor.pgresult
        count = result.nfields if result is not None else 0
        names = tuple(cast(Any, result).fname(i).decode() for i in range(count))
        if names == _fields(cast(Any, cls)):
            return lambda values: cls(*values)
        return lambda values: cls(**dict(zip(names, values, strict=True)))

    return for_result
