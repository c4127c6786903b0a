"""Scenario 13: a hypothesis state machine drives claim / heartbeat / expire / sweep /
complete / verdict / fail / crash / reclaim / cancel against a real PostgreSQL, with
invariants checked after every step:

* at most one completion per job and lease epoch (fence);
* no transition out of a terminal state (a failed or cancelled job; an ended run);
* doctor: the chain verifies, the events replay to the tables, the manifests match;
* a run's executions never exceed its plan's worst case;
* a lease verb succeeds exactly when its token holds the job's live lease (by the
  database clock), and a refused one changes nothing;
* at most one open lease per job, at the job's fence.

One database serves the whole test: each example starts from an empty record (the owner
truncates it, triggers off for the moment).
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from striatum.errors import Conflict
from striatum.runtime import leases, runs
from striatum.runtime.doctor import doctor
from striatum.runtime.machine import JOB_TERMINAL, RUN_TERMINAL
from striatum.runtime.store import Store

from .conftest import Conn, Record, failures, owner, write_workflow

GENESIS = "0" * 64
OWNERS = st.integers(0, 3)
PICK = st.integers(0, 10**6)
VERDICT = st.sampled_from(["accept", "accept", "needs_revision", "reject"])


def workflow_document() -> dict[str, Any]:
    """seed -> two parallel tasks -> a gate that may send seed back once; two attempts
    each, so expiries and failures reach the terminal states."""
    def task(job_id: str, needs: list[str]) -> dict[str, Any]:
        return {"id": job_id, "lane": "worker", "prompt": {"text": job_id}, "needs": needs,
                "produces": [f"{job_id}.md"], "max_attempts": 2}

    return {"name": "stateful",
            "lanes": {"worker": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
            "jobs": [task("seed", []), task("left", ["seed"]), task("right", ["seed"]),
                     {"id": "gate", "lane": "reviewer", "kind": "review",
                      "needs": ["left", "right"], "prompt": {"text": "gate"},
                      "revise": {"target": "seed", "max": 1}, "max_attempts": 2}]}


def reset(conn: Conn) -> None:
    """An empty record: every table truncated, the audit chain back at genesis."""
    conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
    conn.execute("ALTER TABLE striatum.audit_log DISABLE TRIGGER USER")
    conn.execute("TRUNCATE striatum.events, striatum.audit_log, striatum.artifacts, "
                 "striatum.verdicts, striatum.leases, striatum.jobs, striatum.runs, "
                 "striatum.repos, striatum.chain_heads, striatum.workflows RESTART IDENTITY")
    conn.execute("INSERT INTO striatum.chain_heads (chain, seq, hash) VALUES ('audit', 0, %s)",
                 (GENESIS,))
    conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")
    conn.execute("ALTER TABLE striatum.audit_log ENABLE TRIGGER USER")


class Lifecycle(RuleBasedStateMachine):
    """Set by the test before it runs the machine."""

    store: Store
    admin: Conn
    repo: Path
    workdir: Path
    workflow: str
    steps: Counter[str]

    def __init__(self) -> None:
        super().__init__()
        reset(self.admin)
        shutil.rmtree(self.repo, ignore_errors=True)
        self.repo.mkdir()
        self.held: list[leases.Claim] = []  # tokens of live workers
        self.dropped: list[leases.Claim] = []  # tokens of workers that crashed
        self.run_id = self._new_run()

    # -- helpers -------------------------------------------------------------------------

    def _new_run(self) -> str:
        run_id = runs.prepare(self.store, self.workflow, str(self.repo), overrides={})
        runs.start(self.store, run_id)
        self.steps["run"] += 1
        return run_id

    def _row(self, job_id: str) -> dict[str, Any]:
        row = self.store._conn.execute(
            "SELECT status, lease_token, fence, lease_expires_at <= now() FROM striatum.jobs "
            "WHERE run_id = %s AND job_id = %s", (self.run_id, job_id)).fetchone()
        assert row is not None
        return {"status": row[0], "token": row[1], "fence": row[2], "expired": bool(row[3])}

    def _live(self, claim: leases.Claim) -> bool:
        """Does this token hold the job's live lease right now (by the database clock)?"""
        if claim.run != self.run_id:
            return False
        row = self._row(claim.job)
        return row["status"] == "leased" and row["token"] == claim.token and not row["expired"]

    def _record(self) -> tuple[Any, ...]:
        return tuple(self.store._conn.execute(
            "SELECT (SELECT count(*) FROM striatum.events), (SELECT count(*) FROM "
            "striatum.artifacts), (SELECT count(*) FROM striatum.verdicts)").fetchone() or ())

    def _pick(self, index: int, stale: bool = True) -> leases.Claim | None:
        pool = self.held + (self.dropped if stale else [])
        return pool[index % len(pool)] if pool else None

    def _lease_verb(self, claim: leases.Claim, verb: str, call: Any) -> bool:
        """Run a verb with ``claim``'s token; it must succeed exactly when the lease is live,
        and change nothing when it is refused."""
        live = self._live(claim)
        before = self._record()
        try:
            call()
        except leases.LeaseLost:
            assert not live, f"{verb} with a live lease was refused ({claim.job})"
            assert self._record() == before, f"a refused {verb} changed the record"
            self.steps[f"{verb} refused"] += 1
            return False
        except Conflict:
            # a task that must publish first, a review asked to complete: never reached here
            raise
        assert live, f"{verb} with a stale or expired token went through ({claim.job})"
        self.steps[verb] += 1
        return True

    def _forget(self, claim: leases.Claim) -> None:
        for pool in (self.held, self.dropped):
            if claim in pool:
                pool.remove(claim)

    # -- rules -------------------------------------------------------------------------------

    def _run_status(self) -> str:
        row = self.store._conn.execute("SELECT status FROM striatum.runs WHERE id = %s",
                                      (self.run_id,)).fetchone()
        assert row is not None
        return str(row[0])

    @precondition(lambda self: self._run_status() in RUN_TERMINAL)
    @rule()
    def new_run(self) -> None:
        self.run_id = self._new_run()
        self.held.clear()
        self.dropped.clear()

    @rule(worker=OWNERS)
    def claim(self, worker: int) -> None:
        found = leases.claim(self.store, self.run_id, owner=f"w{worker}", lease_seconds=600)
        if found is None:
            self.steps["claim: nothing ready"] += 1
            return
        row = self._row(found.job)
        assert (row["status"], row["token"], row["fence"]) == ("leased", found.token,
                                                               found.fence)
        self.held.append(found)
        self.steps["claim"] += 1

    def _holding(self) -> bool:
        return bool(self.held or self.dropped)

    def _holding_kind(self, kind: str) -> bool:
        return any(c.kind == kind for c in self.held + self.dropped)

    @precondition(_holding)
    @rule(pick=PICK)
    def heartbeat(self, pick: int) -> None:
        claim = self._pick(pick)
        if claim is None:
            return
        self._lease_verb(claim, "heartbeat", lambda: leases.heartbeat(
            self.store, claim.run, claim.job, claim.token, 600))

    @precondition(_holding)
    @rule(pick=PICK)
    def expire(self, pick: int) -> None:
        """The lease runs out (the owner moves its expiry into the past)."""
        claim = self._pick(pick)
        if claim is None:
            return
        self.admin.execute("UPDATE striatum.jobs SET lease_expires_at = now() - interval "
                           "'1 second' WHERE run_id = %s AND job_id = %s AND status = 'leased'",
                           (claim.run, claim.job))
        self.steps["expire"] += 1

    @rule()
    def sweep(self) -> None:
        swept = leases.sweep_expired(self.store, self.run_id)
        self.steps["sweep"] += 1 if swept else 0

    @precondition(lambda self: self._holding_kind("task"))
    @rule(pick=PICK)
    def complete(self, pick: int) -> None:
        """A worker finishes a task: publishes what it produces, then completes."""
        tasks = [c for c in self.held + self.dropped if c.kind == "task"]
        claim = tasks[pick % len(tasks)]

        def finish() -> None:
            for name in claim.produces:
                source = self.workdir / f"{claim.job}-{claim.fence}-{name}"
                source.write_text(f"{claim.job} at fence {claim.fence}\n", encoding="utf-8")
                leases.publish(self.store, claim.run, claim.job, claim.token, str(source), name)
            leases.complete(self.store, claim.run, claim.job, claim.token)

        if self._lease_verb(claim, "complete", finish):
            self._forget(claim)

    @precondition(lambda self: self._holding_kind("review"))
    @rule(pick=PICK, outcome=VERDICT)
    def verdict(self, pick: int, outcome: str) -> None:
        reviews = [c for c in self.held + self.dropped if c.kind == "review"]
        claim = reviews[pick % len(reviews)]
        if self._lease_verb(claim, f"verdict {outcome}", lambda: leases.verdict(
                self.store, claim.run, claim.job, claim.token, outcome, "the machine says so")):
            self._forget(claim)

    @precondition(_holding)
    @rule(pick=PICK)
    def fail(self, pick: int) -> None:
        claim = self._pick(pick)
        if claim is None:
            return
        if self._lease_verb(claim, "fail", lambda: leases.fail(
                self.store, claim.run, claim.job, claim.token, "the machine gave up")):
            self._forget(claim)

    @precondition(lambda self: bool(self.held))
    @rule(pick=PICK)
    def crash(self, pick: int) -> None:
        """A worker dies: its token is dropped (it may come back, stale, later)."""
        claim = self._pick(pick, stale=False)
        if claim is None:
            return
        self.held.remove(claim)
        self.dropped.append(claim)
        self.steps["crash"] += 1

    @precondition(lambda self: bool(self.dropped))
    @rule(pick=PICK, worker=OWNERS)
    def reclaim(self, pick: int, worker: int) -> None:
        """A crashed worker's lease runs out and another worker claims the job again."""
        claim = self.dropped[pick % len(self.dropped)]
        self.expire(pick=self.dropped.index(claim) + len(self.held))
        self.claim(worker)
        self.steps["reclaim"] += 1

    @rule(roll=st.integers(0, 7))
    def cancel(self, roll: int) -> None:
        """A human cancels the run (one time in eight: runs should get somewhere first)."""
        if roll:
            return
        status = self._run_status()
        try:
            runs.cancel(self.store, self.run_id, "the machine cancels")
        except Conflict:
            assert status in RUN_TERMINAL, f"cancel refused on a {status} run"
            self.steps["cancel refused"] += 1
            return
        assert status not in RUN_TERMINAL, f"a {status} run was cancelled"
        self.steps["cancel"] += 1

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def the_record_holds(self) -> None:
        self.steps["steps"] += 1
        completions, open_leases, events = self.store._conn.execute(
            "SELECT (SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM striatum.events "
            "        WHERE type = 'job.complete' GROUP BY run_id, job_id, "
            "        (payload::json -> 'state' ->> 'fence')) c), "
            "       (SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM striatum.leases "
            "        WHERE ended_at IS NULL GROUP BY run_id, job_id) o), "
            "       (SELECT json_agg(json_build_array(run_id, job_id, type, "
            "               payload::json -> 'state' ->> 'status') ORDER BY seq) "
            "        FROM striatum.events)").fetchone() or (0, 0, None)
        assert completions <= 1, "a job completed twice in one lease epoch"
        assert open_leases <= 1, "a job has two open leases"
        ended: dict[tuple[str, str | None], str] = {}
        for run_id, job_id, kind, status in events or []:
            run_key, key = (run_id, None), (run_id, job_id)
            assert run_key not in ended, f"{kind} after run {run_id} ended {ended[run_key]}"
            assert job_id is None or key not in ended, (
                f"{kind} after {job_id} reached {ended.get(key)}")
            if status in (JOB_TERMINAL if job_id else RUN_TERMINAL):
                ended[key] = status
        mismatched = self.store._conn.execute(
            "SELECT j.job_id FROM striatum.jobs j JOIN striatum.leases l USING (run_id, job_id) "
            "WHERE l.ended_at IS NULL AND (j.status <> 'leased' OR l.fence <> j.fence)"
        ).fetchall()
        assert not mismatched, f"open leases that are not the job's live one: {mismatched}"
        over = self.store._conn.execute(
            "SELECT r.id FROM striatum.runs r WHERE (SELECT sum(executions) FROM striatum.jobs j "
            "WHERE j.run_id = r.id) > r.worst_case").fetchall()
        assert not over, f"runs beyond their worst case: {over}"

    @invariant()
    def doctor_passes(self) -> None:
        report = doctor(self.store, str(self.repo))
        assert report.ok, failures(report)


def run_machine(dsn: str, store: Store, tmp_path: Path, examples: int, steps: int,
                figure: Record) -> None:
    workdir = tmp_path / "agent"
    workdir.mkdir()
    with owner(dsn) as admin:
        Lifecycle.store = store
        Lifecycle.admin = admin
        Lifecycle.repo = tmp_path / "repo-stateful"
        Lifecycle.workdir = workdir
        Lifecycle.workflow = write_workflow(tmp_path / "flow", workflow_document())
        Lifecycle.steps = Counter()
        started = time.monotonic()
        run_state_machine_as_test(Lifecycle, settings=settings(
            max_examples=examples, stateful_step_count=steps, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
        seconds = time.monotonic() - started
    done = Lifecycle.steps
    verbs = sum(n for name, n in done.items() if name not in ("run", "steps"))
    refused = sum(n for name, n in done.items() if "refused" in name)
    figure("13 stateful lifecycle", examples,
           f"{examples} examples (<= {steps} steps): {done['steps']} checked states, {verbs} "
           f"verbs on {done['run']} runs, {refused} stale/expired verbs refused; invariant "
           "violations 0", seconds)
    for needed in ("claim", "complete", "heartbeat refused", "complete refused", "crash",
                   "reclaim", "cancel"):
        assert done[needed] > 0, f"the machine never got to {needed!r}: {dict(done)}"


def test_lifecycle_state_machine(dsn: str, store: Store, tmp_path: Path,
                                 figure: Record) -> None:
    run_machine(dsn, store, tmp_path, examples=200, steps=30, figure=figure)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_lifecycle_state_machine(dsn: str, store: Store, tmp_path: Path,
                                      figure: Record) -> None:
    run_machine(dsn, store, tmp_path, examples=1000, steps=50, figure=figure)
