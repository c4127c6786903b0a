"""What every figure of ``python -m bench`` shares: databases, workflows, stats, subprocesses.

Nothing here asserts on a time: the harness reports, a slow machine never fails.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
LANE = "l"


# ------------------------------------------------------------------------ context

@dataclass
class Context:
    """One invocation of the harness: where the server is, how hard to try."""

    dsn: str
    repeat: int
    quick: bool
    tmp: Path
    peers_python: Path | None = None  # None: the peers could not be installed
    peers_why: str = ""
    log: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)
        self.log.append(text)


# ------------------------------------------------------- CPU and wait sampling

def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks (0 when it is gone or unreadable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Sampler(threading.Thread):
    """Every 50 ms: what the database's backends wait on (pg_stat_activity), how many
    locks are waited for (pg_locks), and each backend's pid (for its CPU time)."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.halt = threading.Event()
        self.samples = 0
        self.active = 0
        self.waits: Counter[str] = Counter()
        self.lock_waits = 0
        self.pids: dict[int, int] = {}
        self.last: dict[int, int] = {}

    def run(self) -> None:
        while not self.halt.is_set():
            found = self.conn.execute(
                "SELECT pid, state, coalesce(wait_event_type || ':' || wait_event, 'CPU') "
                "FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()").fetchall()
            waiting = self.conn.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE NOT l.granted AND a.datname = current_database()").fetchone()
            self.samples += 1
            self.lock_waits += int(waiting[0]) if waiting else 0
            for pid, state, wait in found:
                ticks = cpu_ticks(pid)
                self.pids.setdefault(pid, ticks)
                if ticks:  # the last reading while it lived: a backend gone reads 0
                    self.last[pid] = ticks
                if state == "active":
                    self.active += 1
                    self.waits[wait] += 1
            self.halt.wait(0.05)

    def stop(self) -> dict[str, Any]:
        for pid in self.pids:
            self.last[pid] = cpu_ticks(pid) or self.last.get(pid, 0)
        backend_ticks = sum(max(0, self.last.get(pid, 0) - first)
                            for pid, first in self.pids.items())
        self.halt.set()
        self.join(timeout=5)
        self.conn.close()
        return {"samples": self.samples, "active_per_sample": self.active / max(1, self.samples),
                "waits": dict(self.waits.most_common(8)),
                "lock_waits_per_sample": self.lock_waits / max(1, self.samples),
                "backend_ticks": backend_ticks, "shares": wait_shares(self.waits)}


def wait_shares(waits: Counter[str]) -> dict[str, float]:
    """Of the active backends' samples, the share on CPU, waiting for a row or object
    lock (another transaction's commit), for the WAL (its write or its flush at COMMIT),
    and anything else (the client, a buffer, ...)."""
    total = sum(waits.values()) or 1
    lock = sum(n for w, n in waits.items() if w.startswith("Lock:"))
    wal = sum(n for w, n in waits.items() if w.startswith(("IO:WAL", "LWLock:WAL")))
    cpu = waits.get("CPU", 0)
    return {"cpu": cpu / total, "lock": lock / total, "wal": wal / total,
            "other": (total - cpu - lock - wal) / total}



# ---------------------------------------------------------------------- databases

def conninfo(dsn: str, **changes: Any) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(dsn, **changes)


def dsn_parts(dsn: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(dsn).items() if v is not None}


def sqlalchemy_url(dsn: str) -> str:
    """The same database as a postgresql:// URL (what DBOS takes)."""
    from urllib.parse import quote

    parts = dsn_parts(dsn)
    user = quote(parts.get("user", os.environ.get("USER", "postgres")), safe="")
    password = parts.get("password")
    auth = user + (":" + quote(password, safe="") if password else "")
    host = parts.get("host", "127.0.0.1")
    if host.startswith("/"):
        return (f"postgresql://{auth}@/{parts.get('dbname', 'postgres')}"
                f"?host={quote(host, safe='')}&port={parts.get('port', '5432')}")
    return f"postgresql://{auth}@{host}:{parts.get('port', '5432')}/{parts.get('dbname', '')}"


def pg_env(dsn: str) -> dict[str, str]:
    """libpq environment variables for a client program such as pgbench."""
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
             "dbname": "PGDATABASE", "sslmode": "PGSSLMODE"}
    env = dict(os.environ)
    for key, value in dsn_parts(dsn).items():
        if key in names:
            env[names[key]] = value
    return env


@contextmanager
def fresh_database(ctx: Context, suffix: str = "", *, migrate: bool = True) -> Iterator[str]:
    """A new database ``striatum_bench_<pid><suffix>`` on the server, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"striatum_bench_{os.getpid()}{suffix}"
    ident = sql.Identifier(name)
    with psycopg.connect(ctx.dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(ident))
    dsn = conninfo(ctx.dsn, dbname=name)
    try:
        if migrate:
            from striatum.runtime.migrate import migrate as run_migrations

            run_migrations(dsn)
        yield dsn
    finally:
        with psycopg.connect(ctx.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def server_version(dsn: str) -> str:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT version()").fetchone()
        settings = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('synchronous_commit', 'fsync', 'shared_buffers', 'max_connections')").fetchall()
    text = str(row[0]).split(" on ")[0] if row else "?"
    return text + " (" + ", ".join(f"{k}={v}" for k, v in sorted(settings)) + ")"


# ---------------------------------------------------------------------- workflows

def _job(job_id: str, needs: list[str], kind: str = "task") -> dict[str, Any]:
    job: dict[str, Any] = {"id": job_id, "lane": LANE, "prompt": {"text": f"Do {job_id}."}}
    if needs:
        job["needs"] = needs
    if kind != "task":
        job["kind"] = kind
    return job


def fanout_jobs(n: int) -> list[dict[str, Any]]:
    """One root, n-2 parallel tasks, one join that needs them all."""
    middle = [_job(f"t{i}", ["root"]) for i in range(1, n - 1)]
    return [_job("root", []), *middle, _job("join", [j["id"] for j in middle])]


def chain_jobs(n: int) -> list[dict[str, Any]]:
    return [_job(f"c{i}", [f"c{i - 1}"] if i else []) for i in range(n)]


def reviews_jobs(n: int) -> list[dict[str, Any]]:
    """A task, then n reviews of it in parallel (for the verdict verb)."""
    return [_job("work", []), *[_job(f"r{i}", ["work"], "review") for i in range(n)]]


def write_workflow(directory: Path, name: str, jobs: list[dict[str, Any]],
                   command: list[str]) -> Path:
    path = directory / name / "workflow.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"name": name, "lanes": {LANE: {"command": command}}, "jobs": jobs}
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def new_repo(ctx: Context, name: str) -> Path:
    path = ctx.tmp / "repos" / f"{name}-{time.monotonic_ns()}"
    path.mkdir(parents=True)
    return path


# ------------------------------------------------------------------------- stats

def summary(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "n": len(samples)}


def percentile(ordered: list[float], p: float) -> float:
    """Nearest-rank percentile of a sorted list."""
    if not ordered:
        raise ValueError("no samples")
    rank = max(1, int(-(-p * len(ordered) // 100)))  # ceil(p/100 * n)
    return ordered[min(rank, len(ordered)) - 1]


def machine(dsn: str) -> dict[str, Any]:
    from .compile_scaling import machine as host

    memory = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    try:
        server = server_version(dsn)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal
        server = f"unreachable: {exc}"
    return {**host(), "memory": memory, "postgres": server}


# -------------------------------------------------------------------- subprocesses

def striatum_argv() -> list[str]:
    """The console script next to this interpreter (as bench/cli_startup.py times it)."""
    script = Path(sys.executable).parent / "striatum"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from striatum.cli.entry import main; main()"]


def striatum_env(dsn: str, ctx: Context) -> dict[str, str]:
    """Time this checkout (PYTHONPATH), on this database, never the embedded server."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["STRIATUM_DSN"] = dsn
    env["STRIATUM_HOME"] = str(ctx.tmp / "home")
    env["STRIATUM_ACTOR"] = "bench"
    # An installed wheel runs from compiled bytecode; a checkout run with
    # PYTHONDONTWRITEBYTECODE would compile every module on every call. The warm-up
    # calls fill a private cache instead, so the timed ones measure what a user runs.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(ctx.tmp / "pycache")
    return env


def run_timed(argv: list[str], *, env: dict[str, str], cwd: Path | None = None
              ) -> tuple[float, str, str]:
    """(wall seconds, stdout, stderr); raises when the command fails."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    out, err = process.communicate()
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {process.returncode}: "
                           f"{err.decode(errors='replace').strip()[-2000:]}")
    return elapsed, out.decode(errors="replace"), err.decode(errors="replace")


_MEASURED = """\
import os, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(child.pid, 0)
elapsed = time.perf_counter() - start
with open(sys.argv[1], "w") as report:
    report.write(f"{elapsed} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_with_rss(argv: list[str], *, env: dict[str, str], stdout_path: Path
                 ) -> tuple[float, int, int]:
    """Run to the end; (wall seconds, exit status, peak RSS in KiB of that command).

    A small interpreter starts the command and reports its ru_maxrss: started straight
    from this process, a child is charged the memory this process holds when it forks
    (a million payloads, here), whatever the command itself uses."""
    report = stdout_path.with_suffix(".rss")
    with open(stdout_path, "wb") as out:
        process = subprocess.Popen([sys.executable, "-c", _MEASURED, str(report), *argv],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)
        process.wait()
    elapsed, rss = report.read_text(encoding="utf-8").split()
    return float(elapsed), process.returncode, int(rss)
