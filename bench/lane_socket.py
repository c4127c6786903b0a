"""What an agent's `striatum job ...` costs in a lane, through its worker's lane socket,
beside the same command opening the database (the path outside a lane).

    python bench/lane_socket.py [--dsn ADMIN_DSN] [--calls 20] [--json]

A fresh database of ``--dsn``'s server (it must allow CREATE DATABASE), one run of
review jobs, each claimed with a long lease before it is called, and a lane socket
(``server.lanegate.LaneGate``) served in this process holding those leases as its
lanes'. Then ``striatum job heartbeat`` and ``striatum job verdict accept`` as
subprocesses, ``--calls`` times after 3 warm-ups, each way: in a lane (STRIATUM_SOCKET)
as an agent calls them, served by the fast path (no click, no psycopg, one socket round
trip); the same command lines ended by ``--``, which the fast path leaves to click
(click's path to the same socket); and, for the heartbeat, with STRIATUM_DSN (a
connection of its own, the runtime role switched to, the heartbeat). A verdict ends its
job: each call has a job of its own. Medians of wall time and of CPU time (user +
system, the child's), and the load average when it started.

This prints figures only; it asserts nothing, so it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from striatum.runtime import leases, runs  # noqa: E402
from striatum.runtime.attempt import _job_env  # noqa: E402
from striatum.runtime.config import open_store  # noqa: E402
from striatum.server.lanegate import LaneGate  # noqa: E402

WARMUPS = 3


def workflow(jobs: int) -> dict[str, Any]:
    return {"name": "lane-bench", "lanes": {"agent": {"command": ["true"]}},
            "jobs": [{"id": f"r{n}", "lane": "agent", "kind": "review",
                      "prompt": {"text": "x"}} for n in range(jobs)]}


def timed(argv: list[str], env: Callable[[], dict[str, str]], calls: int
          ) -> tuple[list[float], list[float]]:
    """Wall and CPU milliseconds of ``calls`` runs of ``argv`` after the warm-ups, each
    with the environment ``env`` gives (a verdict's: a new job's lease each call)."""
    walls, cpus = [], []
    for n in range(WARMUPS + calls):
        given = env()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        began = time.perf_counter()
        subprocess.run(argv, env=given, check=True, capture_output=True)
        wall = (time.perf_counter() - began) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if n >= WARMUPS:
            walls.append(wall)
            cpus.append((after.ru_utime - before.ru_utime + after.ru_stime
                         - before.ru_stime) * 1000)
    return walls, cpus


def figures(samples: tuple[list[float], list[float]]) -> dict[str, float]:
    walls, cpus = samples
    return {"median_ms": round(statistics.median(walls), 1),
            "min_ms": round(min(walls), 1), "cpu_median_ms": round(statistics.median(cpus), 1),
            "calls": len(walls)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres "
                                         "dbname=postgres")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    name = f"striatum_bench_lanes_{os.getpid()}"
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    scratch = Path(tempfile.mkdtemp(prefix="striatum-bench-lanes-"))
    os.environ["STRIATUM_HOME"] = str(scratch / "home")
    dsn = make_conninfo(args.dsn, dbname=name)
    load = " ".join(f"{n:.2f}" for n in os.getloadavg())
    try:
        found = measured(dsn, scratch, args.calls)
    finally:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps({"load": load, **found}, indent=2))
        return
    print(f"a CLI process each call; load average {load}")
    for way, figure in found.items():
        print(f"  {way:30} median {figure['median_ms']:7.1f} ms   min {figure['min_ms']:7.1f} ms"
              f"   CPU {figure['cpu_median_ms']:6.1f} ms   ({figure['calls']} calls)")


def measured(dsn: str, scratch: Path, calls: int) -> dict[str, dict[str, float]]:
    """Each way's figures: the run prepared, the lane socket served, the commands timed."""
    (scratch / "workflow.json").write_text(json.dumps(workflow(2 * (WARMUPS + calls) + 1)),
                                           encoding="utf-8")
    store = open_store(dsn)
    gate = LaneGate(dsn).open()
    try:
        run_id = runs.prepare(store, str(scratch / "workflow.json"), str(scratch),
                              overrides={})
        runs.start(store, run_id)

        def lane(socket: bool = True) -> dict[str, str]:
            """A new job claimed and held as a lane's; the environment its lane has."""
            claim = leases.claim(store, run_id, owner="bench", lease_seconds=3600)
            assert claim is not None
            gate.leases.hold(claim.token, _job_env(claim, str(gate.socket)))
            env = {"PATH": os.environ.get("PATH", ""), "STRIATUM_HOME": str(scratch / "home"),
                   "STRIATUM_RUN": run_id, "STRIATUM_JOB": claim.job,
                   "STRIATUM_LEASE": claim.token}
            env.update({"STRIATUM_SOCKET": str(gate.socket)} if socket else
                       {"STRIATUM_DSN": dsn})
            return env

        held = lane()
        beating = {k: v for k, v in held.items() if k != "STRIATUM_SOCKET"}
        cli = str(Path(sys.executable).parent / "striatum")
        heartbeat = [cli, "job", "heartbeat"]
        verdict = [cli, "job", "verdict", "accept", "--reason", "fine"]
        return {
            "heartbeat, lane (fast path)": figures(timed(heartbeat, lambda: held, calls)),
            "heartbeat, lane, click's path": figures(timed([*heartbeat, "--"],
                                                           lambda: held, calls)),
            "heartbeat, direct (DSN)": figures(timed(
                heartbeat, lambda: {**beating, "STRIATUM_DSN": dsn}, calls)),
            "verdict, lane (fast path)": figures(timed(verdict, lane, calls)),
            "verdict, lane, click's path": figures(timed([*verdict, "--"], lane, calls))}
    finally:
        gate.close()
        store.close()


if __name__ == "__main__":
    main()
