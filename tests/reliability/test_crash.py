"""Scenarios 1 and 2: workers that die or freeze mid-job.

1. SIGKILL a worker at a random point between its claim and its completion, again and
   again, with one worker and with four: no job is lost (each run completes), each
   lease of a killed worker is taken back within its expiry plus one sweep, no job
   completes twice, and every extra attempt is in the chain (a claim and an expiry).
2. SIGSTOP a worker (and its lane) past its lease; another worker takes the job over and
   completes it; then every late verb of the frozen holder — heartbeat, publish, verdict,
   complete, release, fail — is refused, and after SIGCONT it gives the job up.

tests/integration/test_workers.py has one trial of each; these are the repeated forms.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from striatum.runtime import leases, runs
from striatum.runtime.store import Store

from .conftest import (
    FAKE_AGENT,
    Proc,
    Procs,
    Record,
    assert_doctor_ok,
    count_attempts,
    kill_lane_processes,
    lane_processes,
    one_value,
    opened,
    tasks_workflow,
    wait_for,
    worker_argv,
    write_workflow,
)

LEASE = 2  # seconds
SWEEP = 1.0  # a worker sweeps every max(1 s, lease / 3)
LANE_SECONDS = 0.6


# -- 1. SIGKILL at random points -----------------------------------------------------------------


@dataclass
class Kill:
    worker: str
    at: Any  # the database clock when it died
    held: list[tuple[str, str, int]]  # (run, job, fence) it held


@dataclass
class Crashes:
    kills: list[Kill] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    spawned: int = 0


def worker_name(proc: Proc) -> str:
    first = wait_for(lambda: proc.out().splitlines()[:1], 30,
                     lambda: f"{proc.name} to start: {proc.err()[-2000:]}")
    return str(json.loads(first[0])["name"])


def held_by(store: Store, name: str) -> list[tuple[str, str, int]]:
    return [(r[0], r[1], int(r[2])) for r in store._conn.execute(
        "SELECT run_id, job_id, fence FROM striatum.jobs WHERE status = 'leased' "
        "AND lease_owner = %s", (name,))]


def kill_workers(dsn: str, store: Store, repo: Path, tmp_path: Path, procs: Procs,
                 workers: int, kills: int, width: int, rng: random.Random) -> Crashes:
    """Runs of ``width`` independent tasks (a new one whenever the last ends) worked by
    ``workers`` workers, one of which is killed at a random point, ``kills`` times."""
    workflow = tasks_workflow(tmp_path / "flow", width, max_attempts=100, produces=True,
                              lane={"command": [sys.executable, str(FAKE_AGENT), "slow",
                                                "--seconds", str(LANE_SECONDS)],
                                    "timeout": 60})
    crashes = Crashes()

    def new_run() -> str:
        run_id = runs.prepare(store, workflow, str(repo), overrides={})
        runs.start(store, run_id)
        crashes.runs.append(run_id)
        return run_id

    def spawn() -> tuple[Proc, str]:
        crashes.spawned += 1
        proc = procs.start(f"worker{crashes.spawned}", worker_argv(
            dsn, lease_seconds=LEASE, poll_seconds=0.1))
        return proc, worker_name(proc)

    def holders() -> list[int]:
        """The alive workers holding a lease (a new run starts when the last one ended)."""
        if runs.status(store, crashes.runs[-1]).run.status != "running":
            new_run()
        return [i for i, (_, name) in enumerate(alive) if held_by(store, name)]

    new_run()
    alive = [spawn() for _ in range(workers)]
    try:
        while len(crashes.kills) < kills:
            # A worker may rightly sit idle while others hold every ready job, so the
            # victim is drawn from the workers that hold one, at a random point between
            # its claim and its completion.
            index = rng.choice(wait_for(holders, 30, "a worker to claim a job"))
            proc, name = alive[index]
            time.sleep(rng.uniform(0, LANE_SECONDS + 0.5))
            proc.signal_group(signal.SIGKILL)
            proc.wait(10)
            time.sleep(0.3)  # let the server finish (or roll back) what the dead one sent
            at = one_value(store, "SELECT clock_timestamp()")
            crashes.kills.append(Kill(name, at, held_by(store, name)))
            alive[index] = spawn()
        # Let the survivors finish every run.
        for run_id in crashes.runs:
            wait_for(lambda run_id=run_id: runs.status(store, run_id).run.status != "running",
                     120, lambda run_id=run_id: f"run {run_id} to end: "
                                                f"{runs.status(store, run_id).to_json()}")
        for proc, _ in alive:
            proc.signal_group(signal.SIGTERM)
        for proc, _ in alive:
            assert proc.wait(30) == 0, proc.err()[-3000:]
    finally:
        for run_id in crashes.runs:
            kill_lane_processes(run=run_id)
    return crashes


def check_crashes(store: Store, repo: Path, crashes: Crashes) -> dict[str, Any]:
    statuses = Counter(runs.status(store, r).run.status for r in crashes.runs)
    assert statuses == Counter({"completed": len(crashes.runs)}), statuses
    per_job, ended = count_attempts(store._conn, crashes.runs)
    expiries = sum(c["job.expire"] for c in per_job.values())
    # Each lease a dead worker held ended (was swept) within its expiry plus one sweep.
    slowest = 0.0
    for kill in crashes.kills:
        for key in kill.held:
            outcome, at = ended[key]
            assert outcome == "expire", (kill, outcome)
            slowest = max(slowest, (at - kill.at).total_seconds())
    bound = LEASE + SWEEP + 2.0
    assert slowest <= bound, f"a dead worker's lease was taken back after {slowest:.1f}s"
    assert_doctor_ok(store, repo)
    return {"jobs": len(per_job), "extra": expiries, "slowest": slowest,
            "killed_holding": sum(1 for k in crashes.kills if k.held)}


def run_kills(dsn: str, store: Store, repo: Path, tmp_path: Path, procs: Procs,
              workers: int, kills: int, width: int, figure: Record) -> None:
    started = time.monotonic()
    crashes = kill_workers(dsn, store, repo, tmp_path, procs, workers, kills, width,
                           random.Random(workers * 1000 + kills))
    found = check_crashes(store, repo, crashes)
    figure(f"1 SIGKILL mid-job ({workers} worker{'s' if workers > 1 else ''})", kills,
           f"jobs lost 0 / {found['jobs']}; duplicate completions 0; extra attempts recorded "
           f"{found['extra']}; dead holder's lease back in <= {found['slowest']:.1f}s "
           f"(bound {LEASE + SWEEP:.0f}s + 2s)", time.monotonic() - started)


@pytest.mark.parametrize("workers", [1, 4])
def test_sigkilled_workers_lose_no_job(dsn: str, store: Store, repo: Path, tmp_path: Path,
                                       procs: Procs, workers: int, figure: Record) -> None:
    run_kills(dsn, store, repo, tmp_path, procs, workers, 3, 2 + 2 * workers, figure)


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("workers", [1, 4])
def test_soak_sigkilled_workers_lose_no_job(dsn: str, store: Store, repo: Path, tmp_path: Path,
                                            procs: Procs, workers: int,
                                            figure: Record) -> None:
    run_kills(dsn, store, repo, tmp_path, procs, workers, 200, 40, figure)


# -- 2. a frozen worker ----------------------------------------------------------------------------

# The first attempt outlives its lease by far (its worker is frozen long before it ends);
# the retry is quick.
ATTEMPT_DEPENDENT = (
    "import os, sys; first = os.environ['STRIATUM_ATTEMPT'] == '0'; "
    "os.execv(sys.executable, [sys.executable, sys.argv[1], 'slow', '--seconds', "
    "'30' if first else '0.3'])")
STALE_VERBS = ("heartbeat", "publish", "verdict", "complete", "release", "fail")


def stale_verb(store: Store, run_id: str, job: str, token: str, verb: str, source: Path
               ) -> None:
    if verb == "heartbeat":
        leases.heartbeat(store, run_id, job, token, LEASE)
    elif verb == "publish":
        leases.publish(store, run_id, job, token, str(source), "write.md")
    elif verb == "verdict":
        leases.verdict(store, run_id, job, token, "accept", "from a frozen worker")
    elif verb == "complete":
        leases.complete(store, run_id, job, token)
    elif verb == "release":
        leases.release(store, run_id, job, token)
    else:
        leases.fail(store, run_id, job, token, "from a frozen worker")


def freeze_trial(dsn: str, repo: Path, tmp_path: Path, procs: Procs, n: int) -> dict[str, int]:
    folder = tmp_path / f"trial{n}"
    workflow = write_workflow(folder / "flow", {
        "name": "frozen", "lanes": {"agent": {"command": [sys.executable, "-c",
                                                         ATTEMPT_DEPENDENT, str(FAKE_AGENT)],
                                              "timeout": 120}},
        "jobs": [{"id": "write", "lane": "agent", "prompt": {"text": "write"},
                  "produces": ["write.md"]}]})
    stale_file = folder / "stale.md"
    stale_file.write_text("from a frozen worker\n", encoding="utf-8")
    refused = 0
    with opened(dsn) as store:
        run_id = runs.prepare(store, workflow, str(repo), overrides={})
        runs.start(store, run_id)
        try:
            frozen = procs.start(f"frozen{n}", worker_argv(dsn, run=run_id, lease_seconds=LEASE,
                                                           poll_seconds=0.1))
            token = wait_for(lambda: one_value(store, "SELECT lease_token FROM striatum.jobs "
                                                      "WHERE run_id = %s", run_id), 30,
                             lambda: f"the first worker to claim: {frozen.err()[-2000:]}")
            lanes = wait_for(lambda: lane_processes(token=token), 20, "its lane to start")
            groups = {os.getpgid(p.pid) for p in lanes}
            frozen.signal_group(signal.SIGSTOP)
            for group in groups:
                os.killpg(group, signal.SIGSTOP)

            rescuer = procs.start(f"rescuer{n}", worker_argv(dsn, run=run_id, once=True,
                                                             lease_seconds=LEASE,
                                                             poll_seconds=0.1))
            assert rescuer.wait(60) == 0, rescuer.err()[-3000:]
            assert runs.status(store, run_id).run.status == "completed"
            for verb in STALE_VERBS:
                with pytest.raises(leases.LeaseLost):
                    stale_verb(store, run_id, "write", token, verb, stale_file)
                refused += 1

            for group in groups:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(group, signal.SIGCONT)
            frozen.signal_group(signal.SIGCONT)
            wait_for(lambda: "lease lost" in frozen.err() or "done by the agent"
                     in frozen.err(), 30,
                     lambda: f"the thawed worker to give the job up: {frozen.err()[-2000:]}")
            frozen.signal_group(signal.SIGTERM)
            assert frozen.wait(30) == 0, frozen.err()[-3000:]
            assert "write: succeeded" not in frozen.err(), frozen.err()
        finally:
            kill_lane_processes(run=run_id)
        completes = one_value(store, "SELECT count(*) FROM striatum.events WHERE run_id = %s "
                                     "AND type = 'job.complete'", run_id)
        fences = [r[0] for r in store._conn.execute(
            "SELECT DISTINCT fence FROM striatum.artifacts WHERE run_id = %s", (run_id,))]
        assert completes == 1, completes
        assert fences == [2], f"the frozen holder published: fences {fences}"
        left = [p for p in lanes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not left, f"the frozen worker's lane outlived it: {left}"
    return {"refused": refused, "completions": int(completes)}


def run_freezes(dsn: str, store: Store, repo: Path, tmp_path: Path, procs: Procs,
                trials: int, parallel: int, figure: Record) -> None:
    started = time.monotonic()
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def one(n: int) -> None:
        try:
            results.append(freeze_trial(dsn, repo, tmp_path, procs, n))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for first in range(0, trials, parallel):
        batch = [threading.Thread(target=one, args=(n,), daemon=True)
                 for n in range(first, min(trials, first + parallel))]
        for thread in batch:
            thread.start()
        for thread in batch:
            thread.join(180)
            assert not thread.is_alive(), "a frozen-worker trial hung"
    if errors:
        raise errors[0]
    assert_doctor_ok(store, repo)
    refused = sum(r["refused"] for r in results)
    figure("2 zombie worker (SIGSTOP)", trials,
           f"late verbs of the frozen holder refused {refused} / {trials * len(STALE_VERBS)}; "
           f"completions {sum(r['completions'] for r in results)} / {trials}",
           time.monotonic() - started)


def test_frozen_workers_are_fenced_out(dsn: str, store: Store, repo: Path, tmp_path: Path,
                                       procs: Procs, figure: Record) -> None:
    run_freezes(dsn, store, repo, tmp_path, procs, 2, 2, figure)


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_soak_frozen_workers_are_fenced_out(dsn: str, store: Store, repo: Path, tmp_path: Path,
                                            procs: Procs, figure: Record) -> None:
    run_freezes(dsn, store, repo, tmp_path, procs, 100, 3, figure)
