"""The reliability suite: fixtures and helpers shared by its scenarios.

The database fixtures are the integration suite's (a migrated template, one copy per
test, on the embedded server or on STRIATUM_TEST_DSN). Each scenario has a short
default form and a ``@pytest.mark.soak`` long form with the full counts; each
records its figure with the ``figure`` fixture, which ``bench/reliability.py``
collects (STRIATUM_RELIABILITY_FIGURES names the file) and prints as a table.

Every process a test starts is started through ``Procs`` (the worker tests'), which
kills its whole session (SIGCONT, then SIGKILL) when the test ends, pass or fail.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest

from striatum.runtime.doctor import Report, doctor
from striatum.runtime.store import Store
from tests.integration import conftest as integration
from tests.integration.worker_helpers import (  # noqa: F401 - re-exported to the scenarios
    FAKE_AGENT,
    Proc,
    Procs,
    describe,
    fake,
    kill_lane_processes,
    lane_processes,
    wait_for,
    write_workflow,
)

# The integration suite's database fixtures, re-used as they are.
admin_dsn = integration.admin_dsn
template_db = integration.template_db
dsn = integration.dsn
repo = integration.repo
store = integration.store
database_dsn = integration.database_dsn

FIGURES_ENV = "STRIATUM_RELIABILITY_FIGURES"
ENDED = ("completed", "failed", "cancelled")
Conn = psycopg.Connection[Any]
T = TypeVar("T")
LONG = [pytest.mark.soak, pytest.mark.timeout(3600)]  # the marks of a parametrized soak form


# -- figures -----------------------------------------------------------------------------------


@dataclass
class Figure:
    scenario: str
    trials: int
    figure: str
    seconds: float
    test: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "trials": self.trials, "figure": self.figure,
                "seconds": round(self.seconds, 1), "test": self.test}


Record = Callable[[str, int, str, float], None]


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Record:
    """figure(scenario, trials, text, seconds): keep one line of the figures table."""

    def record(scenario: str, trials: int, text: str, seconds: float) -> None:
        found = Figure(scenario, trials, text, seconds, request.node.nodeid)
        request.node.user_properties.append(("figure", found.to_json()))
        target = os.environ.get(FIGURES_ENV)
        if target:
            with open(target, "a", encoding="utf-8") as out:
                out.write(json.dumps(found.to_json()) + "\n")

    return record


# -- waiting and the database -----------------------------------------------------------------


@contextmanager
def owner(dsn: str) -> Iterator[Conn]:
    """A connection as the database owner (not the runtime role), autocommit."""
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def opened(dsn: str) -> Iterator[Store]:
    """A store as the runtime role, closed after."""
    connected = Store.connect(dsn)
    try:
        yield connected
    finally:
        connected.close()


def failures(report: Report) -> list[dict[str, Any]]:
    return [f.to_json() for f in report.findings if not f.ok]


def assert_doctor_ok(store: Store, repo: Path | None = None) -> Report:
    report = doctor(store, str(repo) if repo is not None else None)
    assert report.ok, f"doctor found problems: {json.dumps(failures(report), indent=1)}"
    return report


Attempt = tuple[str, str, int]  # run, job, fence: one lease


def count_attempts(conn: Conn, run_ids: list[str]
                   ) -> tuple[dict[tuple[str, str], Counter[str]], dict[Attempt, tuple[str, Any]]]:
    """The reliability suite's counters of the runs' jobs, each asserted: every job
    completed exactly once (none lost, none twice), every attempt in the chain (a claim
    per lease, an expiry per expired lease), every lease ended by its completion or its
    expiry. The events of each job by type, and each lease's (outcome, ended_at)."""
    per_job: dict[tuple[str, str], Counter[str]] = {}
    for run_id, job_id, kind in conn.execute(
            "SELECT run_id, job_id, type FROM striatum.events WHERE run_id = ANY(%s)",
            (run_ids,)).fetchall():
        if job_id:
            per_job.setdefault((run_id, job_id), Counter())[kind] += 1
    twice = {k: c["job.complete"] for k, c in per_job.items() if c["job.complete"] != 1}
    assert not twice, f"jobs not completed exactly once: {twice}"
    ended = {(r[0], r[1], int(r[2])): (r[3], r[4]) for r in conn.execute(
        "SELECT run_id, job_id, fence, outcome, ended_at FROM striatum.leases "
        "WHERE run_id = ANY(%s)", (run_ids,)).fetchall()}
    by_outcome = Counter(outcome for outcome, _ in ended.values())
    claims = sum(c["job.claim"] for c in per_job.values())
    expiries = sum(c["job.expire"] for c in per_job.values())
    assert claims == len(ended), (claims, len(ended))
    assert expiries == by_outcome["expire"], (expiries, by_outcome)
    assert by_outcome["complete"] == len(per_job), by_outcome
    assert set(by_outcome) <= {"complete", "expire"}, by_outcome
    return per_job, ended


def one_value(conn: Conn | Store, sql: str, *params: Any) -> Any:
    connection = conn._conn if isinstance(conn, Store) else conn
    row = connection.execute(sql, params).fetchone()  # type: ignore[arg-type]
    assert row is not None, sql
    return row[0]


def tasks_workflow(directory: Path, width: int, *, lane: dict[str, Any] | None = None,
                   max_attempts: int = 3, produces: bool = False, name: str = "tasks") -> str:
    """``width`` independent tasks on one lane (an operator lane unless given)."""
    jobs = []
    for i in range(width):
        job: dict[str, Any] = {"id": f"t{i:03d}", "lane": "agent", "prompt": {"text": "go"},
                               "max_attempts": max_attempts}
        if produces:
            job["produces"] = [f"t{i:03d}.md"]
        jobs.append(job)
    return write_workflow(directory, {"name": name,
                                      "lanes": {"agent": lane or {"kind": "operator"}},
                                      "jobs": jobs})


# -- processes -----------------------------------------------------------------------------------


# A worker in a subprocess with any lease length (the CLI's floor is 5 s): the options
# come as JSON; SIGTERM stops it gracefully, as it does `striatum worker`.
WORKER_SCRIPT = """
import json, signal, sys, time
from striatum.runtime.worker import Worker, WorkerOptions
options = json.loads(sys.argv[2])
worker = Worker(sys.argv[1], WorkerOptions(
    **options, progress=lambda line: print(line, file=sys.stderr, flush=True)))
signal.signal(signal.SIGTERM, lambda *_: worker.stop_on_signal())
print(json.dumps({"name": worker.name, "clock": time.time()}), flush=True)
outcomes = worker.run()
print(json.dumps([[o.run, o.job, o.status, o.detail] for o in outcomes]), flush=True)
"""


def worker_argv(dsn: str, *, preamble: str = "", **options: Any) -> list[str]:
    return [sys.executable, "-c", preamble + WORKER_SCRIPT, dsn, json.dumps(options)]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    started = Procs(tmp_path / "procs")
    try:
        yield started
    finally:
        started.close()


# -- watching (and steering) a store's statements ----------------------------------------------


Hook = Callable[[str, Any], None]
"""hook(query name, cursor): called before or after each statement the store runs."""


def query_names() -> dict[str, str]:
    from striatum.runtime.sql import queries

    return {text: name for name, text in queries().items()}


class _Cursor:
    def __init__(self, cursor: Any, owner: _Connection) -> None:
        self._cursor = cursor
        self._owner = owner

    def __enter__(self) -> _Cursor:
        self._cursor.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._cursor.__exit__(*exc)

    def _name(self, statement: Any) -> str:
        return self._owner.names.get(str(statement), "?")

    def execute(self, statement: Any, params: Any = None, **kwargs: Any) -> _Cursor:
        name = self._name(statement)
        if name in ("begin", "commit", "rollback"):
            # A pipelined transaction's own BEGIN / COMMIT: its bounds, not its statements.
            if name == "begin" and self._owner.begin is not None:
                self._owner.begin()
            self._cursor.execute(statement, params, **kwargs)
            return self
        if self._owner.calling and self._owner.begin is not None:
            self._owner.begin()  # a statement that is a whole transaction: each attempt
        if self._owner.before is not None:
            self._owner.before(name, self._cursor)
        self._cursor.execute(statement, params, **kwargs)
        if self._owner.after is not None:
            self._owner.after(name, self._cursor)
        return self

    def executemany(self, statement: Any, params: Any, **kwargs: Any) -> None:
        name = self._name(statement)
        if self._owner.before is not None:
            self._owner.before(name, self._cursor)
        self._cursor.executemany(statement, params, **kwargs)
        if self._owner.after is not None:
            self._owner.after(name, self._cursor)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)

    @property
    def connection(self) -> _Connection:
        # Cursors the store opens from this one are watched too.
        return self._owner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


class _Connection:
    def __init__(self, conn: Conn, before: Hook | None, after: Hook | None,
                 begin: Callable[[], None] | None) -> None:
        self._conn = conn
        self.before = before
        self.after = after
        self.begin = begin
        self.names = query_names()
        self.calling = False  # inside Store.call: one statement, one transaction

    def cursor(self, *args: Any, **kwargs: Any) -> _Cursor:
        return _Cursor(self._conn.cursor(*args, **kwargs), self)

    @contextmanager
    def transaction(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        with self._conn.transaction(*args, **kwargs) as tx:
            if self.begin is not None:
                self.begin()
            yield tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def instrumented(dsn: str, *, before: Hook | None = None, after: Hook | None = None,
                 begin: Callable[[], None] | None = None) -> Store:
    """A store (as the runtime role) whose every statement passes ``before`` / ``after``,
    and every transaction ``begin``."""
    connected = Store.connect(dsn)
    wrapped = _Connection(connected._conn, before, after, begin)
    connected._conn = wrapped  # type: ignore[assignment]
    plain_call = connected.call

    def call(name: str, params: dict[str, Any]) -> list[Any]:
        wrapped.calling = True
        try:
            return plain_call(name, params)
        finally:
            wrapped.calling = False

    connected.call = call  # type: ignore[method-assign]
    return connected
