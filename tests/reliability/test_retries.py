"""Scenario 9, retry injection: a serialization failure (40001) or a deadlock (40P01) is
raised by the server at each statement of each transition in turn. The transition is
retried and records exactly the events it records undisturbed; retries stop at the cap
with RetriesExhausted; any other error (a syntax error, 42601) is not retried.

The failure is real: before statement k of the transaction, the store's cursor runs
``DO $$ ... RAISE ... USING ERRCODE = ...`` on the server, which aborts the transaction
exactly as a lost race would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from striatum.errors import RetriesExhausted, StoreError
from striatum.runtime import leases, runs
from striatum.runtime.audit import append_audit
from striatum.runtime.store import MAX_RETRIES, Store
from tests.integration.helpers import Agent, example, expire_lease, scripted

from .conftest import Record, assert_doctor_ok, instrumented

RAISE = "DO $$ BEGIN RAISE EXCEPTION 'injected by the test' USING ERRCODE = '{}'; END $$"


@dataclass
class Injector:
    """Numbers the statements a call runs inside transactions (a retried transaction
    numbers its statements as it did the first time); before statement ``at`` it makes the
    server raise ``sqlstate``, ``times`` times over."""

    at: int | None = None
    sqlstate: str = "40001"
    times: int = 1
    statements: int = 0  # inside transactions, retries included
    begins: int = 0  # transaction attempts
    injected: int = 0
    _base: int = 0  # statements of the transactions before this one
    _current: int = 0
    _retrying: bool = False
    _opened: bool = False  # a transaction began and none of its statements ran yet

    def begin(self) -> None:
        self.begins += 1
        self._opened = True
        if self._retrying:
            self._retrying = False  # the same transaction again: same numbering
        else:
            self._base += self._current
        self._current = 0

    def before(self, name: str, cursor: Any) -> None:
        # The first statement after a begin is the transaction's even when nothing marks
        # it so on the connection yet: a statement that is a whole transaction (a claim)
        # runs in autocommit.
        opened, self._opened = self._opened, False
        if (not opened
                and cursor.connection.info.transaction_status != pq.TransactionStatus.INTRANS
                and cursor.connection.pgconn.pipeline_status == pq.PipelineStatus.OFF):
            return  # an autocommit statement: not part of a transaction, never retried
        self.statements += 1
        self._current += 1
        if self.at is not None and self.times > 0 and self._base + self._current == self.at:
            self.times -= 1
            self.injected += 1
            self._retrying = True
            cursor.execute(RAISE.format(self.sqlstate))  # type: ignore[arg-type]


Context = dict[str, Any]


@dataclass
class Transition:
    name: str
    setup: Callable[[Store, Path, Path], Context]
    act: Callable[[Store, Context], Any]


def _started(store: Store, repo: Path, name: str = "code-change") -> str:
    run_id = runs.prepare(store, example(name), str(repo), overrides={})
    runs.start(store, run_id)
    return run_id


def _claimed(store: Store, repo: Path, work: Path, publish: bool = False,
             review: bool = False) -> Context:
    run_id = _started(store, repo)
    agent = Agent(store, run_id, work)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    if review:
        agent.act(claim)  # the draft
        claim = leases.claim(store, run_id, owner="agent")
        assert claim is not None and claim.kind == "review"
    if publish:
        agent.publish_all(claim)
    source = work / f"{claim.job}-{claim.fence}.md"
    source.write_text("an artifact\n", encoding="utf-8")
    return {"run": run_id, "claim": claim, "file": source}


def _blocked(store: Store, repo: Path, work: Path) -> Context:
    run_id = _started(store, repo)
    agent = Agent(store, run_id, work,
                  verdict=scripted({"check": ["needs_revision", "needs_revision"]}))
    assert agent.drive().run.status == "blocked"
    return {"run": run_id}


def _awaiting(store: Store, repo: Path, work: Path) -> Context:
    run_id = _started(store, repo, "human-checkpoint")
    agent = Agent(store, run_id, work)
    while True:
        claim = leases.claim(store, run_id, owner="agent")
        if claim is None:
            break
        agent.act(claim)
    view = runs.status(store, run_id)
    assert any(j.status == "awaiting_decision" for j in view.jobs), view.to_json()
    return {"run": run_id}


def _expired(store: Store, repo: Path, work: Path) -> Context:
    found = _claimed(store, repo, work)
    expire_lease(store.dsn, found["run"], found["claim"].job)
    return found


def _audit(store: Store) -> None:
    store.transaction(lambda cur: append_audit(cur, actor="tester", verb="verb", args={},
                                               outcome="ok"))


def _c(ctx: Context) -> tuple[str, str, str]:
    claim: leases.Claim = ctx["claim"]
    return claim.run, claim.job, claim.token


TRANSITIONS = [
    Transition("prepare", lambda s, r, w: {},
               lambda s, c: c.update(run=runs.prepare(s, example("code-change"), str(c["repo"]),
                                                      overrides={}))),
    Transition("start", lambda s, r, w: {"run": runs.prepare(s, example("code-change"), str(r),
                                                             overrides={})},
               lambda s, c: runs.start(s, c["run"])),
    Transition("claim", lambda s, r, w: {"run": _started(s, r)},
               lambda s, c: leases.claim(s, c["run"], owner="agent")),
    Transition("publish", _claimed,
               lambda s, c: leases.publish(s, *_c(c), str(c["file"]), "draft.md")),
    Transition("complete", lambda s, r, w: _claimed(s, r, w, publish=True),
               lambda s, c: leases.complete(s, *_c(c))),
    Transition("verdict accept", lambda s, r, w: _claimed(s, r, w, review=True),
               lambda s, c: leases.verdict(s, *_c(c), "accept", "fine")),
    Transition("verdict needs_revision", lambda s, r, w: _claimed(s, r, w, review=True),
               lambda s, c: leases.verdict(s, *_c(c), "needs_revision", "again")),
    Transition("fail", _claimed, lambda s, c: leases.fail(s, *_c(c), "it broke")),
    Transition("release", _claimed, lambda s, c: leases.release(s, *_c(c))),
    Transition("expire (sweep)", _expired, lambda s, c: leases.sweep_expired(s, c["run"])),
    Transition("cancel", lambda s, r, w: {"run": _started(s, r)},
               lambda s, c: runs.cancel(s, c["run"], "enough")),
    Transition("decide", _awaiting,
               lambda s, c: runs.decide(s, c["run"], "decide", "continue")),
    Transition("resume", _blocked, lambda s, c: runs.resume(s, c["run"], "accept", "ok")),
    Transition("audit row", lambda s, r, w: {}, lambda s, c: _audit(s)),
]


def snapshot(store: Store, ctx: Context) -> dict[str, Any]:
    """What a transition did: its run's events (types, in order), the states it left, and
    how many runs, events and audit rows the database holds."""
    found: dict[str, Any] = {}
    for name in ("runs", "events", "audit_log"):
        found[name] = int(store._conn.execute(
            f"SELECT count(*) FROM striatum.{name}").fetchone()[0])  # noqa: S608
    run_id = ctx.get("run")
    found["types"] = () if run_id is None else tuple(r[0] for r in store._conn.execute(
        "SELECT type FROM striatum.events WHERE run_id = %s ORDER BY seq", (run_id,)))
    found["states"] = ()
    if run_id is not None:
        view = runs.status(store, run_id)
        found["states"] = (view.run.status, tuple(
            (j.job_id, j.status, j.iteration, j.attempt, j.fence) for j in view.jobs))
    return found


@dataclass
class Trial:
    store: Store  # the instrumented store the transition runs on
    observer: Store  # a plain one, to look at the outcome
    ctx: Context
    before: dict[str, Any]

    def after(self) -> dict[str, Any]:
        return snapshot(self.observer, self.ctx)

    def close(self) -> None:
        self.store.close()
        self.observer.close()


def run_trial(dsn: str, repo: Path, work: Path, transition: Transition,
              injector: Injector) -> tuple[Trial, BaseException | None]:
    observer = Store.connect(dsn)
    ctx = transition.setup(observer, repo, work)
    ctx["repo"] = repo
    store = instrumented(dsn, before=injector.before, begin=injector.begin)
    trial = Trial(store, observer, ctx, snapshot(observer, ctx))
    try:
        transition.act(trial.store, trial.ctx)
    except (StoreError, psycopg.Error) as exc:
        return trial, exc
    return trial, None


def baseline(dsn: str, repo: Path, work: Path, transition: Transition
             ) -> tuple[int, dict[str, Any], dict[str, Any]]:
    # Once first: a process reads a pinned workflow once, so only a warm run numbers the
    # statements the way every trial after it will.
    run_trial(dsn, repo, work, transition, Injector())[0].close()
    counter = Injector()
    trial, error = run_trial(dsn, repo, work, transition, counter)
    try:
        assert error is None, error
        after = trial.after()
    finally:
        trial.close()
    assert counter.statements > 0, transition.name
    return counter.statements, _delta(trial.before, after), after


def _delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The events a transition appended and the states it left (run ids differ per trial)."""
    return {"types": after["types"][len(before["types"]):], "states": after["states"],
            **{name: after[name] - before[name] for name in ("runs", "events", "audit_log")}}


@dataclass
class Tally:
    trials: int = 0
    retries: int = 0
    max_retries: int = 0
    problems: list[str] = field(default_factory=list)


def inject_everywhere(dsn: str, repo: Path, work: Path, sqlstates: list[str],
                      repeats: list[int]) -> Tally:
    """For each transition, each statement k, each SQLSTATE and each repeat count r:
    fail statement k r times, then let it through."""
    tally = Tally()
    for transition in TRANSITIONS:
        count, expected, _ = baseline(dsn, repo, work, transition)
        for k in range(1, count + 1):
            for i, sqlstate in enumerate(sqlstates):
                for times in repeats:
                    if len(sqlstates) == 1 and i:
                        continue
                    state = sqlstate if len(sqlstates) > 1 else ["40001", "40P01"][k % 2]
                    injector = Injector(at=k, sqlstate=state, times=times)
                    trial, error = run_trial(dsn, repo, work, transition, injector)
                    try:
                        where = f"{transition.name} @ statement {k} ({state} x{times})"
                        tally.trials += 1
                        tally.retries += trial.store.retries
                        tally.max_retries = max(tally.max_retries, trial.store.retries)
                        if error is not None:
                            tally.problems.append(f"{where}: raised {error!r}")
                            continue
                        got = _delta(trial.before, trial.after())
                        if got != expected:
                            tally.problems.append(f"{where}: recorded {got}, expected "
                                                  f"{expected}")
                        if trial.store.retries != times:
                            tally.problems.append(f"{where}: {trial.store.retries} retries")
                    finally:
                        trial.close()
    return tally


def run_injection(dsn: str, store: Store, repo: Path, tmp_path: Path, figure: Record,
                  sqlstates: list[str], repeats: list[int]) -> None:
    work = tmp_path / "work"
    work.mkdir()
    started = time.monotonic()
    tally = inject_everywhere(dsn, repo, work, sqlstates, repeats)
    assert not tally.problems, "\n".join(tally.problems[:30])
    assert_doctor_ok(store, repo)
    figure("9 retry injection", tally.trials,
           f"transitions that recorded other events 0 / {tally.trials}; retries "
           f"{tally.retries} (max {tally.max_retries} per transition, cap {MAX_RETRIES})",
           time.monotonic() - started)


def test_a_failure_injected_at_any_statement_is_retried_and_recorded_once(
        dsn: str, store: Store, repo: Path, tmp_path: Path, figure: Record) -> None:
    run_injection(dsn, store, repo, tmp_path, figure, ["alternate"], [1])


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_failures_injected_at_every_statement_up_to_the_cap(
        dsn: str, store: Store, repo: Path, tmp_path: Path, figure: Record) -> None:
    run_injection(dsn, store, repo, tmp_path, figure, ["40001", "40P01"],
                  [1, 2, MAX_RETRIES])


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
@pytest.mark.parametrize("transition", [t for t in TRANSITIONS
                                        if t.name in ("prepare", "complete", "resume")],
                         ids=lambda t: t.name)
def test_retries_stop_at_the_cap_and_change_nothing(
        dsn: str, repo: Path, tmp_path: Path, transition: Transition, sqlstate: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    injector = Injector(at=1, sqlstate=sqlstate, times=10**6)
    started = time.monotonic()
    trial, error = run_trial(dsn, repo, work, transition, injector)
    try:
        assert isinstance(error, RetriesExhausted), error
        assert injector.begins == MAX_RETRIES + 1, injector.begins
        assert trial.store.retries == MAX_RETRIES + 1
        assert trial.after() == trial.before, "a transition gave up halfway"
        assert time.monotonic() - started < 10, "the backoff is not bounded"
    finally:
        trial.close()


@pytest.mark.parametrize("transition", [t for t in TRANSITIONS
                                        if t.name in ("prepare", "complete", "resume")],
                         ids=lambda t: t.name)
def test_an_error_that_is_not_a_lost_race_is_not_retried(
        dsn: str, repo: Path, tmp_path: Path, transition: Transition) -> None:
    work = tmp_path / "work"
    work.mkdir()
    count, _, _ = baseline(dsn, repo, work, transition)
    # The counting run above made no injection; each below makes one, never retried.
    for k in range(1, count + 1):
        injector = Injector(at=k, sqlstate="42601", times=10**6)
        trial, error = run_trial(dsn, repo, work, transition, injector)
        try:
            assert isinstance(error, StoreError) and not isinstance(error, RetriesExhausted), (
                k, error)
            assert error.details.get("sqlstate") == "42601", error.details
            assert (injector.injected, injector.begins) == (1, 1), (
                f"statement {k}: {injector.begins} attempts")
            assert trial.store.retries == 0
            assert trial.after() == trial.before
        finally:
            trial.close()


def test_a_connection_lost_after_the_claim_commits_is_store_unavailable(
        dsn: str, repo: Path, tmp_path: Path) -> None:
    """The claim statement commits, then the connection dies before the prompt is
    prepared (a review reads the artifacts it consumes): the caller gets the store's
    error, never the driver's."""
    from striatum.errors import StoreUnavailable

    def close_after_claim(name: str, cursor: Any) -> None:
        if name == "claim_job":
            cursor.fetchall()
            cursor.scroll(0, mode="absolute")
            cursor.connection.close()

    setup = Store.connect(dsn)
    try:
        run_id = runs.prepare(setup, example("code-change"), str(repo), overrides={})
        runs.start(setup, run_id)
        agent = Agent(setup, run_id, tmp_path)
        draft = leases.claim(setup, run_id, owner="agent")
        assert draft is not None and draft.job == "draft"
        agent.act(draft)
    finally:
        setup.close()
    dying = instrumented(dsn, after=close_after_claim)
    with pytest.raises(StoreUnavailable):
        leases.claim(dying, run_id, owner="agent", sweep=False)
