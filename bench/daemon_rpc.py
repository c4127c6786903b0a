"""Round trips through the daemon's socket beside the same verbs called in-process.

    python bench/daemon_rpc.py [--dsn ADMIN_DSN] [--calls 1000] [--json]

The daemon runs as its own process (``striatum daemon start --foreground``, a
temporary striatum home) on a fresh database: of ``--dsn``'s server (it must
allow CREATE DATABASE), else of an embedded server started for the bench in
that home and stopped after. Two verbs, each called ``--calls`` times after
warm-up:

- ``server.status``: no database in the verb itself; through the socket, the
  daemon still writes the call's audit row (one transaction);
- ``run.status``: a run of examples/code-change read back (the reads a
  dashboard or an agent's loop make).

Three ways each: in-process (``registry.invoke`` on one open store, no audit row:
the core audits only changes), through the socket on one kept connection, and
through the socket with a new connection per call (what one CLI process pays).
The difference between the first two is the daemon's cost per call: framing,
JSON, a thread hop, the capability check and the audit row.

This prints figures only; it asserts nothing, so it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from striatum.server.client import Client  # noqa: E402
from striatum.server.place import RuntimeDir  # noqa: E402


def timed(call: Callable[[], Any], calls: int) -> list[float]:
    for _ in range(min(50, calls)):
        call()
    samples = []
    for _ in range(calls):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def figures(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 3),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
            "min_ms": round(ordered[0], 3)}


@contextlib.contextmanager
def database(admin: str | None, home: Path) -> Iterator[str]:
    """A fresh migrated database: on ``admin``'s server, else on an embedded one."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    from striatum.runtime.migrate import migrate

    started = admin is None
    if admin is None:
        os.environ["STRIATUM_HOME"] = str(home)
        from striatum.runtime.embedded import ensure_running, owner_dsn

        # The owner creates the bench's database; the runtime role may not.
        admin = make_conninfo(owner_dsn(ensure_running()), dbname="postgres")
    name = f"striatum_bench_rpc_{os.getpid()}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = make_conninfo(admin, dbname=name)
    try:
        migrate(dsn)
        yield dsn
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))
        if started:
            from striatum.runtime.embedded import stop

            stop()


@contextlib.contextmanager
def daemon(dsn: str, home: Path) -> Iterator[RuntimeDir]:
    place = RuntimeDir(home / "run")
    env = {**os.environ, "STRIATUM_HOME": str(home), "PYTHONPATH": str(ROOT)}
    log = open(home / "daemon.log", "wb")  # noqa: SIM115 - closed below, after the process
    served = subprocess.Popen([sys.executable, "-m", "striatum", "--dsn", dsn, "daemon",
                               "start", "--foreground"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(place) as client:
                    client.call("server.status")
                break
            except Exception:  # noqa: BLE001 - not up yet
                if served.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the daemon did not start: see {home / 'daemon.log'}"
                                     ) from None
                time.sleep(0.05)
        yield place
    finally:
        served.terminate()
        served.wait(60)
        log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="an admin DSN that may CREATE DATABASE "
                                      "(default: an embedded server for the bench)")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()

    from striatum.runtime.config import open_store
    from striatum.server.registry import VERBS, Session, invoke

    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="sbd-") as scratch:
        home = Path(scratch)
        with database(options.dsn, home / "pg-home") as dsn, daemon(dsn, home) as place:
            store = open_store(dsn, actor="bench")
            session = Session(str(ROOT), lambda: store, lambda: {"face": "bench"})
            workflow = str(ROOT / "examples" / "code-change" / "workflow.json")
            run = invoke(VERBS["run.prepare"], {"workflow": workflow, "start": True},
                         session)["run_id"]
            verbs = {"server.status": {}, "run.status": {"run": run}}
            with Client(place) as kept:
                for name, params in verbs.items():
                    def fresh(name: str = name, params: dict[str, Any] = params) -> Any:
                        with Client(place) as client:
                            return client.call(name, params)

                    results[name] = {
                        "in_process": figures(timed(
                            lambda n=name, p=params: invoke(VERBS[n], p, session),
                            options.calls)),
                        "socket_kept_connection": figures(timed(
                            lambda n=name, p=params: kept.call(n, p), options.calls)),
                        "socket_new_connection": figures(timed(fresh, options.calls)),
                    }
            store.close()
    if options.json:
        print(json.dumps({"calls": options.calls, "load": os.getloadavg(),
                          "results": results}, indent=2))
        return 0
    print(f"{options.calls} calls each; load average {os.getloadavg()[0]:.2f}")
    print(f"{'verb':<15} {'path':<24} {'median ms':>10} {'p90 ms':>8} {'min ms':>8}")
    for name, paths in results.items():
        for path, found in paths.items():
            print(f"{name:<15} {path:<24} {found['median_ms']:>10.3f} "
                  f"{found['p90_ms']:>8.3f} {found['min_ms']:>8.3f}")
        overhead = (paths["socket_kept_connection"]["median_ms"]
                    - paths["in_process"]["median_ms"])
        print(f"{'':<15} {'daemon overhead':<24} {overhead:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
