"""Scenario 4, clock skew: workers whose wall clock is minutes off hold and sweep leases
side by side. Lease arithmetic uses the database clock (``now()`` in SQL), so no live
lease is ever reclaimed — while a lease whose holder died is reclaimed on time, which
shows the skewed sweepers really were sweeping.

The workers run in subprocesses under libfaketime (``faketime``, Debian package
``faketime``) with only the wall clock faked (FAKETIME_DONT_FAKE_MONOTONIC=1: a monotonic
clock measures uptime, which skew does not touch). Without faketime, an in-process worker
runs with ``time.time`` shifted instead.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from striatum.runtime import leases, runs
from striatum.runtime.store import Store
from striatum.runtime.worker import Worker, WorkerOptions

from .conftest import (
    Proc,
    Procs,
    Record,
    assert_doctor_ok,
    fake,
    kill_lane_processes,
    one_value,
    opened,
    tasks_workflow,
    wait_for,
    worker_argv,
)

FAKETIME = shutil.which("faketime")
LEASE = 2  # seconds; heartbeats every 2/3 s
LANE_SECONDS = 5  # the job outlives its lease more than twice over
# The soak starts more workers at once: on a small machine a first heartbeat could then
# come after a 2 s lease ran out for want of CPU, which is not what this test is about.
SOAK_LEASE, SOAK_LANE_SECONDS = 5, 12
NO_LANE = ["no-such-lane"]  # a worker that only sweeps
# libfaketime 0.9.10 makes Python 3.11's time.sleep (clock_nanosleep) fail with EINVAL;
# the skewed worker sleeps through select() instead. Only the wall clock is skewed.
SLEEP_THROUGH_SELECT = """
import select, time
time.sleep = lambda seconds: select.select([], [], [], max(0.0, seconds)) and None
"""


def start_run(store: Store, workflow: str, repo: Path) -> str:
    run_id = runs.prepare(store, workflow, str(repo), overrides={})
    runs.start(store, run_id)
    return run_id


def skewed_worker(procs: Procs, name: str, dsn: str, skew: int, lease: int,
                  **options: Any) -> Proc:
    assert FAKETIME is not None
    env = {**os.environ, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    argv = [FAKETIME, "-f", f"{skew:+d}", *worker_argv(dsn, preamble=SLEEP_THROUGH_SELECT,
                                                        lease_seconds=lease, poll_seconds=0.2,
                                                        **options)]
    return procs.start(name, argv, env)


def reported_clock(proc: Proc) -> float:
    first = wait_for(lambda: proc.out().splitlines()[:1], 30,
                     lambda: f"{proc.name} to start: {proc.err()[-2000:]}")
    return float(json.loads(first[0])["clock"])


def count(store: Store, run_id: str, kind: str) -> int:
    return int(one_value(store, "SELECT count(*) FROM striatum.events WHERE run_id = %s "
                                "AND type = %s", run_id, kind))


def skew_trial(dsn: str, store: Store, repo: Path, tmp_path: Path, procs: Procs,
               holders: list[int], sweepers: list[int], tag: str, lease: int = LEASE,
               lane_seconds: int = LANE_SECONDS) -> dict[str, Any]:
    """One live lease per holder skew, and one lease whose holder is killed (the
    control); sweepers with their own skews sweep every run throughout."""
    workflow = tasks_workflow(tmp_path / f"flow-{tag}", 1, max_attempts=3,
                              lane={"command": fake("slow", "--seconds", str(lane_seconds)),
                                    "timeout": 60})
    live = [start_run(store, workflow, repo) for _ in holders]
    control = start_run(store, workflow, repo)
    real_start = time.time()
    started: list[tuple[Proc, int]] = []
    try:
        for i, skew in enumerate(sweepers):
            started.append((skewed_worker(procs, f"{tag}-sweeper{i}", dsn, skew, lease,
                                          lanes=NO_LANE), skew))
        for i, (run_id, skew) in enumerate(zip(live, holders, strict=True)):
            started.append((skewed_worker(procs, f"{tag}-holder{i}", dsn, skew, lease,
                                          run=run_id, once=True), skew))
        doomed = skewed_worker(procs, f"{tag}-doomed", dsn, sweepers[0], lease, run=control)
        for proc, skew in [*started, (doomed, sweepers[0])]:
            offset = reported_clock(proc) - real_start
            assert abs(offset - skew) < 30, (
                f"{proc.name} should run {skew:+d} s off, its clock says {offset:+.0f} s")

        # The control: kill the holder once it holds the lease; a skewed sweeper must
        # return the job within the lease plus one sweep interval (and some slack).
        wait_for(lambda: one_value(store, "SELECT fence FROM striatum.jobs WHERE run_id = %s",
                                   control) == 1, 30, "the doomed worker to claim its job")
        doomed.signal_group(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(lambda: count(store, control, "job.expire"), lease + 1 + 10,
                 "a skewed sweeper to reclaim the dead holder's lease")
        reclaimed_after = time.monotonic() - killed_at

        for proc, _ in started[len(sweepers):]:
            code = proc.wait(60)
            assert code == 0, f"{proc.name} exited {code}: {proc.err()[-3000:]}"
    finally:
        for run_id in [*live, control]:
            kill_lane_processes(run=run_id)
    reclaimed = {run_id: count(store, run_id, "job.expire") for run_id in live}
    assert all(n == 0 for n in reclaimed.values()), (
        f"live leases were reclaimed under clock skew: {reclaimed}")
    for run_id in live:
        view = runs.status(store, run_id)
        assert view.run.status == "completed", view.to_json()
        assert [(j.status, j.fence, j.attempt) for j in view.jobs] == [("succeeded", 1, 0)]
    assert reclaimed_after <= lease + max(1, lease / 3) + 4, (
        f"the dead holder's lease was reclaimed only after {reclaimed_after:.1f}s")
    return {"live": len(live), "reclaimed": sum(reclaimed.values()),
            "control_seconds": reclaimed_after}


def run_skew(dsn: str, store: Store, repo: Path, tmp_path: Path, procs: Procs,
             rounds: list[tuple[list[int], list[int]]], figure: Record, lease: int = LEASE,
             lane_seconds: int = LANE_SECONDS) -> None:
    started = time.monotonic()
    live = reclaimed = 0
    slowest = 0.0
    for i, (holders, sweepers) in enumerate(rounds):
        found = skew_trial(dsn, store, repo, tmp_path, procs, holders, sweepers, f"r{i}",
                           lease, lane_seconds)
        live += found["live"]
        reclaimed += found["reclaimed"]
        slowest = max(slowest, found["control_seconds"])
    assert_doctor_ok(store, repo)
    skews = sorted({s for holders, sweepers in rounds for s in holders + sweepers})
    figure("4 clock skew", live,
           f"live leases reclaimed {reclaimed} / {live} (skews {skews[0]:+d}..{skews[-1]:+d} s, "
           f"lease {lease} s; dead holder's lease reclaimed in <= {slowest:.1f} s)",
           time.monotonic() - started)


@pytest.mark.skipif(FAKETIME is None, reason="needs faketime (apt-get install faketime)")
def test_skewed_workers_never_reclaim_a_live_lease(dsn: str, store: Store, repo: Path,
                                                   tmp_path: Path, procs: Procs,
                                                   figure: Record) -> None:
    run_skew(dsn, store, repo, tmp_path, procs, [([-600, 600], [600, -600])], figure)


@pytest.mark.soak
@pytest.mark.timeout(3600)
@pytest.mark.skipif(FAKETIME is None, reason="needs faketime (apt-get install faketime)")
def test_soak_skewed_workers_never_reclaim_a_live_lease(dsn: str, store: Store, repo: Path,
                                                        tmp_path: Path, procs: Procs,
                                                        figure: Record) -> None:
    rng = random.Random(4)
    rounds = []
    for _ in range(6):
        holders = [rng.choice([-1, 1]) * rng.randint(1, 600) for _ in range(4)]
        rounds.append((holders, [600, -600]))
    run_skew(dsn, store, repo, tmp_path, procs, rounds, figure, SOAK_LEASE, SOAK_LANE_SECONDS)


@pytest.mark.skipif(FAKETIME is not None, reason="faketime is installed: the real test runs")
@pytest.mark.parametrize("skew", [-600, 600])
def test_an_injected_clock_skew_reclaims_no_live_lease(dsn: str, store: Store, repo: Path,
                                                       tmp_path: Path, skew: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + skew)
    workflow = tasks_workflow(tmp_path / "flow", 1, lane={
        "command": fake("slow", "--seconds", str(LANE_SECONDS)), "timeout": 60})
    run_id = start_run(store, workflow, repo)
    worker = Worker(dsn, WorkerOptions(run=run_id, once=True, lease_seconds=LEASE,
                                       poll_seconds=0.2))
    stop = threading.Event()
    swept: list[int] = []

    def sweep() -> None:
        with opened(dsn) as sweeper:
            while not stop.wait(0.3):
                swept.append(leases.sweep_expired(sweeper))

    sweeping = threading.Thread(target=sweep, daemon=True)
    sweeping.start()
    try:
        outcomes = worker.run()
    finally:
        stop.set()
        sweeping.join(10)
        kill_lane_processes(run=run_id)
    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    assert len(swept) >= LANE_SECONDS, "the sweeper did not run alongside"
    assert sum(swept) == 0 and count(store, run_id, "job.expire") == 0
