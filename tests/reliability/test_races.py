"""Scenario 3, rescue-vs-completion: a reclaimer's sweep and the holder's completion race
on a lease that expires right around the completion. A job that completed is never
reverted; each lease epoch ends exactly once (completed or expired), and the chain
verifies.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from striatum.runtime import leases, runs
from striatum.runtime.store import Store

from .conftest import (
    LONG,
    Record,
    assert_doctor_ok,
    instrumented,
    one_value,
    opened,
    owner,
    tasks_workflow,
    wait_for,
)

WIDTH = 40  # independent tasks per run; a new run starts when one ends


@dataclass
class RaceTally:
    iterations: int = 0
    completed: int = 0  # the holder's completion went through
    refused: int = 0  # the completion was refused: the lease had expired
    swept: int = 0  # the reclaimer returned the job to ready
    reverted: int = 0  # a completed job that went anywhere but succeeded
    epochs: Counter[str] = field(default_factory=Counter)  # how each lease epoch ended
    runs: list[str] = field(default_factory=list)


def _start(store: Store, workflow: str, repo: Path) -> str:
    run_id = runs.prepare(store, workflow, str(repo), overrides={})
    runs.start(store, run_id)
    return run_id


def _job_state(store: Store, run_id: str, job_id: str) -> tuple[str, int]:
    row = store._conn.execute("SELECT status, fence FROM striatum.jobs WHERE run_id = %s "
                             "AND job_id = %s", (run_id, job_id)).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def race(dsn: str, repo: Path, workflow: str, iterations: int, seed: int) -> RaceTally:
    """Claim a job, set its lease to expire within a few milliseconds of now (database
    clock), then complete it and sweep expired leases at the same moment from two
    connections. Repeat."""
    rng = random.Random(seed)
    tally = RaceTally()
    with opened(dsn) as main, opened(dsn) as holder, opened(dsn) as reclaimer, \
            owner(dsn) as admin, ThreadPoolExecutor(max_workers=2) as pool:
        run_id = _start(main, workflow, repo)
        tally.runs.append(run_id)
        for _ in range(iterations):
            claim = leases.claim(main, run_id, owner="holder", sweep=False)
            if claim is None:
                assert runs.status(main, run_id).run.status in ("completed", "failed"), (
                    runs.status(main, run_id).to_json())
                run_id = _start(main, workflow, repo)
                tally.runs.append(run_id)
                claim = leases.claim(main, run_id, owner="holder", sweep=False)
                assert claim is not None
            offset_ms = rng.uniform(-3.0, 12.0)
            admin.execute("UPDATE striatum.jobs SET lease_expires_at = clock_timestamp() + "
                          "make_interval(secs => %s) WHERE run_id = %s AND job_id = %s",
                          (offset_ms / 1000, run_id, claim.job))
            start = threading.Barrier(2)

            def complete(claim: leases.Claim = claim, start: threading.Barrier = start) -> str:
                start.wait(10)
                try:
                    leases.complete(holder, claim.run, claim.job, claim.token)
                except leases.LeaseLost:
                    return "refused"
                return "completed"

            def sweep(run: str = run_id, start: threading.Barrier = start) -> int:
                start.wait(10)
                return leases.sweep_expired(reclaimer, run)

            completing, sweeping = pool.submit(complete), pool.submit(sweep)
            outcome, swept = completing.result(30), sweeping.result(30)
            tally.iterations += 1
            tally.swept += swept
            if outcome == "completed":
                tally.completed += 1
            else:
                tally.refused += 1
                # The lease had expired: a later sweep (or the one above) returns the job.
                wait_for(lambda c=claim: leases.sweep_expired(reclaimer, c.run) or
                         _job_state(main, c.run, c.job)[0] != "leased", 5,
                         f"the refused lease of {claim.job} to be swept")
            status, fence = _job_state(main, claim.run, claim.job)
            if outcome == "completed":
                # More sweeps must never touch a completed job.
                leases.sweep_expired(reclaimer, claim.run)
                status, fence = _job_state(main, claim.run, claim.job)
                if status != "succeeded":
                    tally.reverted += 1
            ended = main._conn.execute(
                "SELECT outcome FROM striatum.leases WHERE run_id = %s AND job_id = %s "
                "AND fence = %s", (claim.run, claim.job, claim.fence)).fetchone()
            tally.epochs[str(ended[0]) if ended else "open"] += 1
            assert fence == claim.fence, (claim, status, fence)
    return tally


def check_record(store: Store, tally: RaceTally) -> None:
    """From the record alone: one end per lease epoch; nothing after a completion."""
    rows = store._conn.execute(
        "SELECT run_id, job_id, type, payload::json -> 'state' ->> 'fence' "
        "FROM striatum.events WHERE run_id = ANY(%s) AND job_id IS NOT NULL ORDER BY seq",
        (tally.runs,)).fetchall()
    ends: Counter[tuple[str, str, str]] = Counter()
    after_complete: list[tuple[str, str, str]] = []
    completed: set[tuple[str, str]] = set()
    for run_id, job_id, kind, fence in rows:
        if (run_id, job_id) in completed:
            after_complete.append((run_id, job_id, kind))
        if kind == "job.complete":
            completed.add((run_id, job_id))
            ends[(run_id, job_id, fence)] += 1
        elif kind == "job.expire":
            # An expiry records the next attempt's state; its epoch is the fence it ended.
            ends[(run_id, job_id, fence)] += 1
    assert not after_complete, f"events after a job completed: {after_complete[:5]}"
    twice = {key: n for key, n in ends.items() if n > 1}
    assert not twice, f"lease epochs that ended more than once: {twice}"
    assert sum(ends.values()) == tally.iterations


def run_race(dsn: str, store: Store, repo: Path, tmp_path: Path, iterations: int,
             figure: Record) -> None:
    workflow = tasks_workflow(tmp_path / "flow", WIDTH, max_attempts=100)
    started = time.monotonic()
    tally = race(dsn, repo, workflow, iterations, seed=iterations)
    seconds = time.monotonic() - started
    assert tally.reverted == 0, f"{tally.reverted} completed job(s) were reverted: {tally}"
    assert tally.epochs["open"] == 0, tally.epochs
    assert tally.epochs["complete"] == tally.completed, tally
    assert tally.epochs["expire"] == tally.refused, tally
    check_record(store, tally)
    assert_doctor_ok(store, repo)
    # Both outcomes happened, or the race was not a race.
    assert tally.completed and tally.refused, tally
    figure("3 rescue vs completion", iterations,
           f"completed jobs reverted {tally.reverted} / {tally.completed} "
           f"({tally.refused} expired first; each epoch ended once)", seconds)


def test_rescue_vs_completion_race(dsn: str, store: Store, repo: Path, tmp_path: Path,
                                   figure: Record) -> None:
    run_race(dsn, store, repo, tmp_path, 150, figure)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_rescue_vs_completion_race(dsn: str, store: Store, repo: Path, tmp_path: Path,
                                        figure: Record) -> None:
    run_race(dsn, store, repo, tmp_path, 1000, figure)


# -- the exact interleaving: the completion commits between the reclaimer's read and write ----


def interleave(dsn: str, store: Store, run_id: str) -> tuple[str, int, list[str]]:
    """The holder's transaction reads the job while its lease is live and holds the run;
    then the lease expires; the reclaimer reads the expired lease (it is still leased);
    then the completion commits; then the reclaimer's transition runs. The completion
    takes the general transition, whose steps can be paused between: the one-statement
    completion locks the run and checks the lease in one statement, with nothing
    between them (the races above run it against the sweep)."""
    claim = leases.claim(store, run_id, owner="holder", sweep=False)
    assert claim is not None
    holding, reclaimer_read = threading.Event(), threading.Event()
    seen: list[str] = []
    lease_ms = 400

    def holder_after(name: str, cursor: Any) -> None:
        if name == "lock_run" and not holding.is_set():
            # Pipelined, the statement is only queued: wait for its answer (the run's
            # lock), then leave the row for the caller. The job is read by the same
            # transaction, whose clock started before the lease ran out.
            cursor.fetchall()
            cursor.scroll(0, mode="absolute")
            holding.set()
            time.sleep(lease_ms / 1000 + 0.1)  # the lease expires while we hold the run
            assert reclaimer_read.wait(10), "the reclaimer never read the expired lease"

    def reclaimer_after(name: str, cursor: Any) -> None:
        if name == "expired_runs":
            rows = cursor.fetchall()
            seen.extend(str(r[0]) for r in rows)
            cursor.scroll(0, mode="absolute")  # leave the rows for the caller
            reclaimer_read.set()

    with owner(dsn) as admin:
        admin.execute("UPDATE striatum.jobs SET lease_expires_at = clock_timestamp() + "
                      "make_interval(secs => %s) WHERE run_id = %s AND job_id = %s",
                      (lease_ms / 1000, run_id, claim.job))
    holder = instrumented(dsn, after=holder_after)
    reclaimer = instrumented(dsn, after=reclaimer_after)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            def complete() -> str:
                try:
                    with mock.patch.object(leases, "complete_in_one", return_value=None):
                        leases.complete(holder, run_id, claim.job, claim.token)
                except leases.LeaseLost:
                    return "refused"
                return "completed"

            def sweep() -> int:
                assert holding.wait(10), "the holder never locked the run"
                time.sleep(lease_ms / 1000 + 0.05)
                return leases.sweep_expired(reclaimer, run_id)

            completing, sweeping = pool.submit(complete), pool.submit(sweep)
            outcome, swept = completing.result(30), sweeping.result(30)
    finally:
        holder.close()
        reclaimer.close()
    status, _ = _job_state(store, run_id, claim.job)
    return outcome, swept, [status, *seen]


@pytest.mark.parametrize("rounds", [pytest.param(3, id="short"),
                                    pytest.param(25, id="soak", marks=LONG)])
def test_a_completion_between_the_reclaimers_read_and_write_stands(
        dsn: str, store: Store, repo: Path, tmp_path: Path, rounds: int) -> None:
    workflow = tasks_workflow(tmp_path / "flow", rounds + 1)
    run_id = _start(store, workflow, repo)
    for _ in range(rounds):
        outcome, swept, (status, *read) = interleave(dsn, store, run_id)
        assert read == [run_id], "the reclaimer's read did not see the expired lease"
        assert outcome == "completed", "the completion that held the run was refused"
        assert swept == 0, "the reclaimer expired a job that had just completed"
        assert status == "succeeded"
    expiries = one_value(store, "SELECT count(*) FROM striatum.events WHERE run_id = %s "
                                "AND type = 'job.expire'", run_id)
    assert expiries == 0, "an expiry was recorded"
    assert_doctor_ok(store, repo)


def test_a_completion_that_ends_the_run_between_the_sweeps_read_and_write(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """The completion the sweep raced was the run's last job: the sweep finds an ended run
    with nothing to expire, does nothing, and neither side dies of it."""
    for _ in range(3):
        run_id = _start(store, tasks_workflow(tmp_path / "flow", 1), repo)
        outcome, swept, (status, *read) = interleave(dsn, store, run_id)
        assert read == [run_id], "the reclaimer's read did not see the expired lease"
        assert (outcome, swept, status) == ("completed", 0, "succeeded")
        assert runs.status(store, run_id).run.status == "completed"
    assert_doctor_ok(store, repo)
