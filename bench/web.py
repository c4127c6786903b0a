"""The web UI's page render times on a big run: 1,000 jobs and 100,000 events.

    python -m bench web [--dsn DSN] [--repeat N] [--quick]
    python bench/web.py [--dsn ADMIN_DSN] [--requests 20]

A fresh database; a real run of a 1,000-job fan-out (prepared and started by the
runtime, its root claimed so one lease is live), then its events brought to 100,000
by appending rows that continue the repository's hash chain (as the table owner, by
COPY, the append-only triggers in place). Each page is requested through the app in
this process (Starlette's test client: no socket, the real gate, pool, audit row and
templates) ``--requests`` times after one warm-up; the figure is the time from request
to the last byte of the page. The events page shows one page of 50: nothing reads the
whole chain.

This prints figures only; it asserts nothing, so it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    DEFAULT_DSN,
    Context,
    fanout_jobs,
    fresh_database,
    new_repo,
    summary,
    write_workflow,
)

JOBS = 1_000
EVENTS = 100_000
OWNER = "bench-web"


def big_run(dsn: str, ctx: Context) -> tuple[str, str]:
    """A started run of JOBS jobs with EVENTS events; (run id, a job id in the middle)."""
    from striatum.runtime import leases, runs
    from striatum.runtime.store import Store

    workflow = write_workflow(ctx.tmp, "web-bench", fanout_jobs(JOBS), ["true"])
    repo = new_repo(ctx, "web")
    store = Store.connect(dsn)
    try:
        run = runs.prepare(store, str(workflow), str(repo), overrides={})
        runs.start(store, run)
        assert leases.claim(store, run, owner=OWNER, lease_seconds=3600) is not None
        have = len(runs.events(store, run, 0, EVENTS))
    finally:
        store.close()
    append_events(dsn, run, EVENTS - have)
    return run, f"t{JOBS // 2}"


def append_events(dsn: str, run: str, count: int) -> None:
    """Continue the run's repository chain with ``count`` job note events, each as the
    runtime writes one: stamped with the transaction's clock, its state columns (none)
    agreeing with its payload, which the events table checks."""
    import psycopg

    from striatum.runtime.audit import Event, row_hash

    with psycopg.connect(dsn) as conn:
        repo_id, chain = conn.execute(
            "SELECT r.repo_id, 'repo:' || r.repo_id FROM striatum.runs r WHERE r.id = %s",
            [run]).fetchone()  # type: ignore[misc]
        seq, previous = conn.execute("SELECT seq, hash FROM striatum.chain_heads "
                                     "WHERE chain = %s", [chain]).fetchone()  # type: ignore[misc]
        at = conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
        before = previous
        with conn.cursor() as cur, cur.copy(
                "COPY striatum.events (repo_id, seq, run_id, job_id, type, payload, "
                "previous_hash, row_hash, created_at) FROM STDIN") as copy:
            for n in range(count):
                seq += 1
                job = f"t{1 + n % (JOBS - 2)}"
                payload = Event("bench.note", run, job, None, {"n": n}).payload(at)
                digest = row_hash(previous, payload)
                copy.write_row((repo_id, seq, run, job, "bench.note", payload, previous,
                                digest, at))
                before, previous = previous, digest
        conn.execute("UPDATE striatum.chain_heads SET seq = %s, hash = %s, previous = %s "
                     "WHERE chain = %s", [seq, previous, before, chain])
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE striatum.events")


def measure(dsn: str, ctx: Context, requests: int) -> dict[str, list[float]]:
    from starlette.testclient import TestClient

    from striatum.server.place import RuntimeDir
    from striatum.web.app import create_app
    from striatum.web.guard import allowed_hosts
    from striatum.web.server import web_face

    run, job = big_run(dsn, ctx)
    pages = {"runs": "/", "run": f"/runs/{run}", "job": f"/runs/{run}/jobs/{job}",
             "events": f"/runs/{run}/events",
             "events-old": f"/runs/{run}/events?before={EVENTS // 2}", "inbox": "/inbox"}
    out: dict[str, list[float]] = {}
    with web_face(dsn, RuntimeDir(ctx.tmp / "home" / "run"), mutations=False) as face, \
            TestClient(create_app(face, allowed_hosts("127.0.0.1", 8766)),
                       base_url="http://127.0.0.1:8766") as client:
        for name, path in pages.items():
            assert client.get(path).status_code == 200, path  # warm-up, and a check
            samples = []
            for _ in range(requests):
                began = time.perf_counter()
                response = client.get(path)
                samples.append((time.perf_counter() - began) * 1000)
                assert response.status_code == 200
            out[name] = samples
    return out


def figure_web(ctx: Context) -> dict[str, Any]:
    requests = 5 if ctx.quick else 20
    with fresh_database(ctx, "_web") as dsn:
        found = measure(dsn, ctx, requests)
    rows = [{"name": f"page {name} (median of {requests})", "key": f"web-{name}", "unit": "ms",
             "who": "striatum", "samples": samples, "summary": summary(samples),
             "higher_is_better": False} for name, samples in found.items()]
    return {"rows": rows, "raw": found,
            "notes": [f"a run of {JOBS:,} jobs and {EVENTS:,} events; the app in process "
                      "(no socket), the real gate, pool, audit rows and templates"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        ctx = Context(args.dsn, 1, False, Path(tmp))
        with fresh_database(ctx, "_web") as dsn:
            found = measure(dsn, ctx, args.requests)
    table = {name: {"median_ms": round(statistics.median(s), 1),
                    "p95_ms": round(sorted(s)[int(0.95 * (len(s) - 1))], 1),
                    "max_ms": round(max(s), 1)} for name, s in found.items()}
    if args.json:
        print(json.dumps(table, indent=2))
    else:
        print(f"web page render, {JOBS:,} jobs, {EVENTS:,} events, {args.requests} requests")
        for name, figures in table.items():
            print(f"  {name:<12} median {figures['median_ms']:>7} ms  p95 "
                  f"{figures['p95_ms']:>7} ms  max {figures['max_ms']:>7} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
