"""procrastinate, measured for striatum's side-by-side figures (run in bench/.peers-venv).

    python procrastinate_peer.py --dsn DSN --jobs 1000 --concurrency 4 --repeat 3 \
        [--work noop,true] [--dispatch 500]

It never imports striatum, and striatum never imports it: the harness runs it
as a subprocess of the peers' own venv against a database of its own on the
same server, and reads the one JSON document it prints on stdout.

* throughput: one worker (concurrency 4, LISTEN/NOTIFY on, already running and
  idle) while ``batch_defer_async`` defers N jobs; the clock runs from the
  defer call until the N-th job has run. ``--work noop,true``: each pass runs
  N jobs of each kind, a no-op, and the same work a striatum job does (its
  lane starts the process ``true``: ``asyncio.create_subprocess_exec``).
* dispatch: the same idle worker; one job at a time is deferred and the task
  notes ``time.time_ns()`` when it starts; latency = start - just before defer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from importlib.metadata import version


async def main(args: argparse.Namespace) -> dict[str, object]:
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=args.dsn))
    state: dict[str, object] = {"done": 0, "target": 0, "event": asyncio.Event(),
                                "started_ns": 0}

    def finished() -> None:
        state["done"] = int(state["done"]) + 1  # type: ignore[call-overload]
        if state["done"] == state["target"]:
            state["event"].set()  # type: ignore[union-attr]

    @app.task(name="noop")
    async def noop() -> None:
        finished()

    @app.task(name="true")
    async def run_true() -> None:
        process = await asyncio.create_subprocess_exec("true")
        if await process.wait() != 0:
            raise RuntimeError("true failed")
        finished()

    @app.task(name="stamp")
    async def stamp() -> None:
        state["started_ns"] = time.time_ns()
        state["event"].set()  # type: ignore[union-attr]

    tasks = {"noop": noop, "true": run_true}
    samples: dict[str, list[float]] = {work: [] for work in args.work.split(",") if work}
    latencies_ms: list[float] = []
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = asyncio.create_task(app.run_worker_async(
            concurrency=args.concurrency, wait=True, install_signal_handlers=False,
            listen_notify=True, fetch_job_polling_interval=5.0))
        await asyncio.sleep(1.0)  # the worker connects and starts listening
        for _ in range(args.repeat):
            for work, times in samples.items():  # interleaved: drifting load hits both
                state.update(done=0, target=args.jobs, event=asyncio.Event())
                start = time.perf_counter()
                await tasks[work].batch_defer_async(*([{}] * args.jobs))
                await asyncio.wait_for(state["event"].wait(), timeout=600)  # type: ignore[union-attr]
                times.append(time.perf_counter() - start)
                await asyncio.sleep(0.2)
        for i in range(args.dispatch + 5):  # 5 warm-ups
            state.update(event=asyncio.Event())
            before = time.time_ns()
            await stamp.defer_async()
            await asyncio.wait_for(state["event"].wait(), timeout=60)  # type: ignore[union-attr]
            if i >= 5:
                latencies_ms.append((int(state["started_ns"]) - before) / 1e6)  # type: ignore[call-overload]
            await asyncio.sleep(0.01)
        worker.cancel()
        # Stopping it is all that is wanted here, however it ends.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker
    out: dict[str, object] = {"peer": "procrastinate", "version": version("procrastinate"),
                              "jobs": args.jobs, "concurrency": args.concurrency,
                              "seconds": samples,
                              "jobs_per_s": {work: [args.jobs / s for s in times]
                                             for work, times in samples.items()}}
    if latencies_ms:
        ordered = sorted(latencies_ms)
        out["dispatch_ms"] = {"n": len(ordered), "p50": statistics.median(ordered),
                              "p99": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
                              "samples": ordered}
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dispatch", type=int, default=0)
    parser.add_argument("--work", default="noop,true",
                        help="what each job does: noop, true (a subprocess), or both")
    result = asyncio.run(main(parser.parse_args()))
    json.dump(result, sys.stdout)
    print()
