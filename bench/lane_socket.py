"""What an agent's `striatum job ...` costs in a lane, through its worker's lane socket,
beside the same command opening the database (the path outside a lane).

    python bench/lane_socket.py [--dsn ADMIN_DSN] [--calls 20] [--json]

A fresh database of ``--dsn``'s server (it must allow CREATE DATABASE), one run of
one job claimed with a long lease, and a lane socket (``server.lanegate.LaneGate``)
served in this process holding that lease as a lane's. Then ``striatum job
heartbeat`` as a subprocess, ``--calls`` times after warm-up, each way: with
STRIATUM_SOCKET (what a lane runs: the client, no psycopg, one socket round trip;
the gate's check of the lease, the heartbeat and its audit row) and with STRIATUM_DSN
(a connection of its own, the runtime role switched to, the heartbeat).

This prints figures only; it asserts nothing, so it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
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

WORKFLOW = {"name": "lane-bench", "lanes": {"agent": {"command": ["true"]}},
            "jobs": [{"id": "job", "lane": "agent", "prompt": {"text": "x"}}]}


def timed(argv: list[str], env: dict[str, str], calls: int) -> list[float]:
    for _ in range(3):
        subprocess.run(argv, env=env, check=True, capture_output=True)
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def figures(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples), 1),
            "min_ms": round(min(samples), 1), "calls": len(samples)}


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
    gate = None
    try:
        (scratch / "workflow.json").write_text(json.dumps(WORKFLOW), encoding="utf-8")
        store = open_store(dsn)
        run_id = runs.prepare(store, str(scratch / "workflow.json"), str(scratch),
                              overrides={})
        runs.start(store, run_id)
        claim = leases.claim(store, run_id, owner="bench", lease_seconds=3600)
        assert claim is not None
        store.close()
        gate = LaneGate(dsn).open()
        gate.leases.hold(claim.token, _job_env(claim, str(gate.socket)))
        argv = [str(Path(sys.executable).parent / "striatum"), "job", "heartbeat"]
        base = {"PATH": os.environ.get("PATH", ""), "STRIATUM_HOME": str(scratch / "home"),
                "STRIATUM_RUN": run_id, "STRIATUM_JOB": "job", "STRIATUM_LEASE": claim.token}
        found: dict[str, Any] = {
            "lane_socket": figures(timed(argv, {**base, "STRIATUM_SOCKET": str(gate.socket)},
                                         args.calls)),
            "direct_dsn": figures(timed(argv, {**base, "STRIATUM_DSN": dsn}, args.calls))}
    finally:
        if gate is not None:
            gate.close()
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        print(json.dumps(found, indent=2))
        return
    print("striatum job heartbeat, a CLI process each call")
    for way, figure in found.items():
        print(f"  {way:12} median {figure['median_ms']:7.1f} ms   min {figure['min_ms']:7.1f} ms"
              f"   ({figure['calls']} calls)")


if __name__ == "__main__":
    main()
