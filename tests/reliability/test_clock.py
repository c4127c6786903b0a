"""Scenario 4, clock skew: workers whose wall clock is minutes off hold and sweep leases
side by side. Lease arithmetic uses the database clock (``now()`` in SQL), so no live
lease is ever reclaimed — while a lease whose holder died is reclaimed on time, which
shows the skewed sweepers really were sweeping.

The workers run in subprocesses under libfaketime (``faketime``, Debian package
``faketime``) with only the wall clock faked (FAKETIME_DONT_FAKE_MONOTONIC=1: a monotonic
clock measures uptime, which skew does not touch); .ci/run installs it. Without it those
tests skip.

In process, whether faketime is installed or not, the lease verbs themselves (claim,
heartbeat, sweep) run under a shifted client clock, and the same trial run with a
heartbeat or a sweep that reads the client clock shows it would catch one that did.
"""

from __future__ import annotations

import contextlib
import datetime as datetime_module
import json
import os
import random
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from striatum.errors import StriatumError
from striatum.runtime import leases, runs
from striatum.runtime.store import Store

from .conftest import (
    Proc,
    Procs,
    Record,
    assert_doctor_ok,
    fake,
    kill_lane_processes,
    one_value,
    owner,
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


# -- in process: the lease verbs under a shifted client clock ----------------------------------
#
# The same claim, without libfaketime: this process's wall clock is shifted (time.time,
# time.time_ns, and datetime.now / utcnow / today wherever striatum's modules and this one
# read them), then a live lease is heartbeated and a dead one left alone while leases are
# swept. Expiry is decided by the database's now(), so neither outcome moves. The
# detection tests run the same trial with a lease verb swapped for one that reads the
# client clock, and show the trial then reports the broken outcome.


def skewed_datetime(skew: float) -> type[datetime]:
    shift = timedelta(seconds=skew)

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> Any:
            return REAL.datetime.now(tz) + shift

        @classmethod
        def utcnow(cls) -> Any:
            return REAL.datetime.now(UTC).replace(tzinfo=None) + shift

        @classmethod
        def today(cls) -> Any:
            return REAL.datetime.now() + shift

    return Skewed


# The real clocks, kept in a namespace of their own, which the skew leaves alone.
REAL = SimpleNamespace(datetime=datetime, time=time.time, time_ns=time.time_ns)


def skew_client_clock(monkeypatch: pytest.MonkeyPatch, skew: int) -> None:
    """Shift this process's wall clock by ``skew`` seconds for striatum and this module."""
    skewed = skewed_datetime(skew)
    module = SimpleNamespace(**{**vars(datetime_module), "datetime": skewed})
    monkeypatch.setattr(time, "time", lambda: REAL.time() + skew)
    monkeypatch.setattr(time, "time_ns", lambda: REAL.time_ns() + skew * 10**9)
    for name, loaded in list(sys.modules.items()):
        if loaded is None or not (name == __name__ or name.startswith("striatum")):
            continue
        for attribute, value in list(vars(loaded).items()):
            if value is REAL.datetime:
                monkeypatch.setattr(loaded, attribute, skewed)
            elif value is datetime_module:
                monkeypatch.setattr(loaded, attribute, module)
            elif value is REAL.time:
                monkeypatch.setattr(loaded, attribute, time.time)
    assert abs(time.time() - REAL.time() - skew) < 5
    assert abs((datetime.now(UTC) - REAL.datetime.now(UTC)).total_seconds() - skew) < 5


Beat = Callable[[Store, str, str, str, int], Any]
Sweep = Callable[[Store], int]


@dataclass
class Trial:
    live_reclaimed: bool
    dead_reclaimed_after: float | None  # seconds after its claim, None if never

    def problems(self, lease: int) -> list[str]:
        found = []
        if self.live_reclaimed:
            found.append("a live lease was reclaimed")
        if self.dead_reclaimed_after is None:
            found.append("the dead holder's lease was never reclaimed")
        elif self.dead_reclaimed_after > lease + 3:
            found.append(f"the dead holder's lease was reclaimed only after "
                         f"{self.dead_reclaimed_after:.1f}s")
        return found


def lease_trial(store: Store, tmp_path: Path, repo: Path, beat: Beat, sweep: Sweep,
                lease: int = LEASE) -> Trial:
    """Claim two jobs with ``lease``-second leases, heartbeat each once (``beat``); then
    keep heartbeating the live one every quarter lease, not the dead one (its holder
    died), and ``sweep`` in between, until the dead one is reclaimed and the live one has
    outlived its first lease twice over, or a problem shows."""
    workflow = tasks_workflow(tmp_path / "flow", 1)
    live_run, dead_run = (start_run(store, workflow, repo) for _ in range(2))
    live = leases.claim(store, live_run, owner="live", lease_seconds=lease)
    dead = leases.claim(store, dead_run, owner="dead", lease_seconds=lease)
    assert live is not None and dead is not None
    claimed = time.monotonic()
    beat(store, dead_run, dead.job, dead.token, lease)
    dead_after = None
    while time.monotonic() - claimed < lease + 4:
        # A refusal means the lease is gone, which the count below tells.
        with contextlib.suppress(StriatumError):
            beat(store, live_run, live.job, live.token, lease)
        sweep(store)
        if count(store, live_run, "job.expire"):
            return Trial(True, dead_after)
        if dead_after is None and count(store, dead_run, "job.expire"):
            dead_after = time.monotonic() - claimed
        if dead_after is not None and time.monotonic() - claimed >= 2 * lease:
            break
        time.sleep(lease / 4)
    return Trial(False, dead_after)


@pytest.mark.parametrize("skew", [-600, 600])
def test_an_injected_clock_skew_reclaims_no_live_lease(store: Store, repo: Path,
                                                       tmp_path: Path, skew: int,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    skew_client_clock(monkeypatch, skew)
    trial = lease_trial(store, tmp_path, repo, leases.heartbeat, leases.sweep_expired)
    assert trial.problems(LEASE) == [], trial


def heartbeat_by_client_clock(dsn: str) -> Beat:
    """A heartbeat that trusted its own clock: the new expiry is the client's now plus the
    lease (the database keeps the row's other columns)."""

    def beat(store: Store, run_id: str, job_id: str, token: str, lease: int) -> None:
        expires = datetime.now(UTC) + timedelta(seconds=lease)
        with owner(dsn) as conn:
            conn.execute("UPDATE striatum.jobs SET lease_expires_at = %s WHERE run_id = %s "
                         "AND job_id = %s AND lease_token = %s",
                         (expires, run_id, job_id, token))

    return beat


def sweep_by_client_clock(dsn: str) -> Sweep:
    """A sweep that trusted its own clock: a lease is over once the client's now has
    passed its expiry (the real sweep then returns the job)."""

    def sweep(store: Store) -> int:
        with owner(dsn) as conn:
            conn.execute("UPDATE striatum.jobs SET lease_expires_at = now() "
                         "WHERE status = 'leased' AND lease_expires_at <= %s",
                         (datetime.now(UTC),))
        return leases.sweep_expired(store)

    return sweep


@pytest.mark.parametrize(("verb", "skew", "problem"), [
    ("heartbeat", -600, "a live lease was reclaimed"),
    ("heartbeat", 600, "the dead holder's lease was never reclaimed"),
    ("sweep", 600, "a live lease was reclaimed"),
])
def test_the_injected_skew_detects_a_lease_verb_that_reads_the_client_clock(
        dsn: str, store: Store, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        verb: str, skew: int, problem: str) -> None:
    skew_client_clock(monkeypatch, skew)
    beat = heartbeat_by_client_clock(dsn) if verb == "heartbeat" else leases.heartbeat
    sweep = sweep_by_client_clock(dsn) if verb == "sweep" else leases.sweep_expired
    trial = lease_trial(store, tmp_path, repo, beat, sweep)
    assert problem in trial.problems(LEASE), trial
