"""Helpers for the worker tests: the installed CLI in subprocesses, fake-agent lanes,
bounded polling, and finding (and cleaning up) the processes a lane left.

Every process a test starts goes through ``Procs``, which SIGKILLs whatever is
still alive (the whole process group) when the test ends, pass or fail. The
reliability suite uses the same helpers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeVar

import psutil
from psycopg.rows import dict_row

from striatum.runtime import runs
from striatum.runtime.store import Store
from striatum.runtime.worker import Outcome, Worker, WorkerOptions

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO_ROOT / "examples"
EXAMPLES = sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/workflow.json"))
FAKE_AGENT = EXAMPLES_DIR / "agents" / "fake_agent.py"
STRIATUM = str(Path(sys.executable).parent / "striatum")
ENDED = ("completed", "failed", "cancelled")

T = TypeVar("T")


def fake(*args: str) -> list[str]:
    """The argv of the fake agent in one of its modes."""
    return [sys.executable, str(FAKE_AGENT), *args]


# -- waiting ---------------------------------------------------------------------------------


def wait_for(check: Callable[[], T | None], timeout: float, what: str | Callable[[], str],
             interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"gave up after {timeout:.0f}s waiting for {described}")
        time.sleep(interval)


# -- the CLI ---------------------------------------------------------------------------------


def cli_env(dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
    env.update(STRIATUM_DSN=dsn, **extra)
    return env


def cli(dsn: str, repo: Path, *args: str, timeout: float = 60,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STRIATUM, "--repo", str(repo), *args], env=env or cli_env(dsn),
                          capture_output=True, text=True, timeout=timeout)


def cli_json(dsn: str, repo: Path, *args: str, timeout: float = 60) -> Any:
    done = cli(dsn, repo, *args, "--json", timeout=timeout)
    assert done.returncode == 0, (f"striatum {' '.join(args)} exited {done.returncode}:\n"
                                  f"{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout)


def doctor_ok(dsn: str, repo: Path) -> None:
    done = cli(dsn, repo, "doctor", "--json")
    report = json.loads(done.stdout) if done.stdout.strip() else {}
    assert done.returncode == 0 and report.get("ok") is True, (
        f"doctor exited {done.returncode}: {json.dumps(report, indent=1)}\n{done.stderr}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    out_path: Path
    err_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def out(self) -> str:
        return self.out_path.read_text(encoding="utf-8", errors="replace")

    def err(self) -> str:
        return self.err_path.read_text(encoding="utf-8", errors="replace")

    def signal_group(self, sig: int) -> None:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def wait(self, timeout: float) -> int:
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} (pid {self.pid}) did not exit within "
                                 f"{timeout:.0f}s; stderr:\n{self.err()[-3000:]}") from None


@dataclass
class Procs:
    """Subprocesses of one test, each in a session of its own; all killed (SIGCONT, then
    SIGKILL to the whole session) at the end, pass or fail."""

    directory: Path
    procs: list[Proc] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        self.directory.mkdir(parents=True, exist_ok=True)
        out_path = self.directory / f"{name}.out"
        err_path = self.directory / f"{name}.err"
        out = open(out_path, "wb")  # noqa: SIM115 - closed in close()
        err = open(err_path, "wb")  # noqa: SIM115
        self._files += [out, err]
        popen = subprocess.Popen(argv, env=env, stdout=out, stderr=err,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        proc = Proc(name, popen, out_path, err_path)
        self.procs.append(proc)
        return proc

    def striatum(self, name: str, dsn: str, repo: Path, *args: str,
                 env: dict[str, str] | None = None) -> Proc:
        return self.start(name, [STRIATUM, "--repo", str(repo), *args], env or cli_env(dsn))

    def close(self) -> None:
        for proc in self.procs:
            if proc.popen.poll() is None:
                proc.signal_group(signal.SIGCONT)
                proc.signal_group(signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)
        for handle in self._files:
            handle.close()
        self._files.clear()


@contextmanager
def spawned(directory: Path) -> Iterator[Procs]:
    procs = Procs(directory)
    try:
        yield procs
    finally:
        procs.close()


# -- lane processes --------------------------------------------------------------------------


def lane_processes(*, run: str | None = None, token: str | None = None) -> list[psutil.Process]:
    """Live processes (anywhere on the machine) whose environment names this run or lease."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            environ = process.environ()
        except (psutil.Error, OSError):
            continue
        if ((token is not None and environ.get("STRIATUM_LEASE") == token)
                or (run is not None and environ.get("STRIATUM_RUN") == run)):
            found.append(process)
    return found


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def describe(processes: list[psutil.Process]) -> str:
    parts = []
    for process in processes:
        parts.append(f"pid {process.pid} ({' '.join(cmdline(process))[:120]})")
    return ", ".join(parts) or "none"


def kill_lane_processes(*, run: str | None = None, token: str | None = None) -> None:
    """Clean-up: SIGKILL whatever a test's lanes left running."""
    if run is None and token is None:
        return
    leftovers = lane_processes(run=run, token=token)
    for process in leftovers:
        try:
            process.send_signal(signal.SIGCONT)
            process.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(leftovers, timeout=5)


# -- runs, workflows, repositories -----------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=striatum tests",
                           "-c", "user.email=tests@example.invalid", "-c", "commit.gpgsign=false",
                           *args], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def git_init(repo: Path, *, commit: bool = False) -> None:
    git(repo, "init", "-q")
    if commit:
        (repo / "README.md").write_text("# target\n", encoding="utf-8")
        (repo / "src").mkdir(exist_ok=True)
        (repo / "src" / "app.py").write_text("print('hello')\n", encoding="utf-8")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "initial")


def copy_example(name: str, repo: Path) -> Path:
    """The example's folder copied into the repository; returns its workflow.json."""
    flow = repo / "flow"
    shutil.copytree(EXAMPLES_DIR / name, flow)
    return flow / "workflow.json"


def write_workflow(directory: Path, document: dict[str, Any]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "workflow.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return str(path)


def one_task(directory: Path, lane: dict[str, Any], **job: Any) -> str:
    """A workflow of one task ``write`` on lane ``agent``, producing out.md."""
    return write_workflow(directory, {
        "name": "one-task",
        "lanes": {"agent": lane},
        "jobs": [{"id": "write", "lane": "agent", "prompt": {"text": "Write out.md."},
                  "produces": ["out.md"], **job}]})


def start_run(store: Store, workflow_file: str, repo: Path,
              lanes: dict[str, Any] | None = None) -> str:
    run_id = runs.prepare(store, workflow_file, str(repo), overrides={}, lanes=lanes or {})
    runs.start(store, run_id)
    return run_id


def rows(store: Store, sql: str, *params: Any) -> list[dict[str, Any]]:
    with store._conn.cursor(row_factory=dict_row) as cur:
        cur.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall()


def job_row(store: Store, run_id: str, job_id: str) -> dict[str, Any]:
    found = rows(store, "SELECT status, fence, attempt, iteration, lease_token, lease_owner "
                        "FROM striatum.jobs WHERE run_id = %s AND job_id = %s", run_id, job_id)
    assert found, f"no job {run_id}/{job_id}"
    return found[0]


def lease_rows(store: Store, run_id: str, job_id: str | None = None) -> list[dict[str, Any]]:
    return [r for r in rows(store, "SELECT job_id, fence, owner, attempt, iteration, "
                                   "acquired_at, ended_at, outcome FROM striatum.leases "
                                   "WHERE run_id = %s ORDER BY job_id, fence", run_id)
            if job_id is None or r["job_id"] == job_id]


def artifact_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    return rows(store, "SELECT job_id, iteration, path, stored_at, bytes, fence "
                       "FROM striatum.artifacts WHERE run_id = %s "
                       "ORDER BY job_id, iteration, path", run_id)


def artifact_file(store: Store, run_id: str, repo: Path, job_id: str, path: str) -> Path:
    found = [r for r in artifact_rows(store, run_id)
             if r["job_id"] == job_id and r["path"] == path]
    assert found, (f"{job_id} published no {path}; artifacts: "
                   f"{[(r['job_id'], r['path']) for r in artifact_rows(store, run_id)]}")
    return repo / found[-1]["stored_at"]


def events_of(store: Store, run_id: str, job_id: str | None = None,
              kind: str | None = None) -> list[dict[str, Any]]:
    return [e for e in runs.events(store, run_id, limit=100_000)
            if (job_id is None or e["job"] == job_id) and (kind is None or e["type"] == kind)]


def run_status(store: Store, run_id: str) -> str:
    return runs.status(store, run_id).run.status


def wait_run_ended(store: Store, run_id: str, timeout: float) -> str:
    return wait_for(lambda: (s := run_status(store, run_id)) in ENDED and s, timeout,
                    lambda: f"run {run_id} to end: {runs.status(store, run_id).to_json()}",
                    interval=0.2)


# -- an in-process worker ----------------------------------------------------------------------


@dataclass
class WorkerThread:
    """A ``Worker`` run in a thread, so the test can watch the lane while it runs."""

    worker: Worker
    thread: threading.Thread | None = None
    outcomes: list[Outcome] | None = None
    error: BaseException | None = None
    seconds: float = 0.0

    def _main(self) -> None:
        started = time.monotonic()
        try:
            self.outcomes = self.worker.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in join()
            self.error = exc
        self.seconds = time.monotonic() - started

    def start(self) -> WorkerThread:
        self.thread = threading.Thread(target=self._main, name="test-worker", daemon=True)
        self.thread.start()
        return self

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: float) -> list[Outcome]:
        assert self.thread is not None
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.worker.request_stop()
            self.thread.join(60)
            raise AssertionError(f"the worker did not finish within {timeout:.0f}s")
        if self.error is not None:
            raise self.error
        assert self.outcomes is not None
        return self.outcomes


def worker_thread(dsn: str, run_id: str, **options: Any) -> WorkerThread:
    options.setdefault("poll_seconds", 0.2)
    return WorkerThread(Worker(dsn, WorkerOptions(run=run_id, **options))).start()


def work(dsn: str, run_id: str, timeout: float = 60, **options: Any) -> list[Outcome]:
    """Run a worker in this process until it returns (``once`` or ``until_run_ends``)."""
    return worker_thread(dsn, run_id, **options).join(timeout)
