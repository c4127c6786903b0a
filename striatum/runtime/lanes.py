"""Run one lane command under supervision.

* its own session (``start_new_session``), so the whole process group can be
  signalled; the timeout sends SIGTERM, then SIGKILL after a grace period;
* the worker is a child subreaper (Linux), so a descendant that escapes the
  group with ``setsid`` is re-parented to the worker instead of init, and is
  found by the lease token in its environment and killed too: no lane leaves
  a process behind;
* stdout and stderr go to one log file, capped, with a marker saying how much
  was cut; the runner never reads the output for meaning;
* the environment is an allowlist: PATH, HOME, LANG, TERM, the lane's own
  ``env`` (where ``"${NAME}"`` passes the worker's NAME through by name), and
  STRIATUM_* for the job. A secret in the worker's environment reaches the
  agent only when the lane names it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ALLOWED_ENV = ("PATH", "HOME", "LANG", "TERM")
PLACEHOLDERS = ("prompt_file", "artifact_dir", "job", "run")
DEFAULT_TIMEOUT = 3600
DEFAULT_LOG_CAP = 8 * 1024 * 1024
GRACE_SECONDS = 3.0
_PR_SET_CHILD_SUBREAPER = 36
# Run by path in isolated mode (-I): it needs only the standard library and
# psutil, and must add nothing to the lane's environment.
SHIM = Path(__file__).resolve().parent / "shim.py"
_subreaper = False
# Lane processes this worker is still waiting for: never reaped by anyone else.
_own: set[int] = set()
_own_lock = threading.Lock()


def become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux); harmless and False elsewhere."""
    global _subreaper
    if _subreaper or not sys.platform.startswith("linux"):
        return _subreaper
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        _subreaper = libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        _subreaper = False
    return _subreaper


def fill(template: str, values: Mapping[str, str]) -> str:
    """Replace {prompt_file}, {artifact_dir}, {job}, {run}; other braces stay as written."""
    for name in PLACEHOLDERS:
        template = template.replace("{" + name + "}", values[name])
    return template


def lane_environment(declared: Mapping[str, str], job_env: Mapping[str, str],
                     worker_env: Mapping[str, str] | None = None) -> dict[str, str]:
    source = os.environ if worker_env is None else worker_env
    env = {name: source[name] for name in ALLOWED_ENV if name in source}
    for name, value in declared.items():
        if value.startswith("${") and value.endswith("}"):
            env[name] = source.get(value[2:-1], "")
        else:
            env[name] = value
    env.update(job_env)
    return env


@dataclass
class LaneResult:
    exit_code: int | None
    timed_out: bool
    seconds: float
    log_bytes: int
    truncated: bool
    killed: int  # descendants still alive at the end, and killed

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


class _LogPump(threading.Thread):
    """Drain the lane's output into a capped log (draining on past the cap, so the
    lane never blocks on a full pipe).

    It reads the raw descriptor through ``select``, so it can be told to stop
    (``give_up``) even while something we could not kill still holds the pipe."""

    def __init__(self, fd: int, path: Path, cap: int) -> None:
        super().__init__(daemon=True)
        self.fd = fd
        self.path = path
        self.cap = cap
        self.total = 0
        self.deadline: float | None = None

    def give_up(self, after: float) -> None:
        self.deadline = time.monotonic() + after

    def run(self) -> None:
        import select

        with open(self.path, "wb") as log:
            while self.deadline is None or time.monotonic() < self.deadline:
                ready, _, _ = select.select([self.fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(self.fd, 65536)
                if not chunk:
                    break
                room = self.cap - self.total
                if room > 0:
                    log.write(chunk[:room])
                self.total += len(chunk)
            if self.total > self.cap:
                log.write(f"\n[striatum: output truncated: {self.total - self.cap:,} of "
                          f"{self.total:,} bytes not kept (cap {self.cap:,})]\n".encode())


def _descendants_tagged(tag: str) -> list[object]:
    import psutil

    found = []
    marker = f"STRIATUM_LEASE={tag}"
    for child in psutil.Process().children(recursive=True):
        try:
            environ = child.environ()
        except (psutil.Error, OSError):
            continue
        if environ.get("STRIATUM_LEASE") == tag or marker in environ.values():
            found.append(child)
    return found


def _reap_adopted() -> None:
    """Collect the exit status of adopted orphans that died (a subreaper must, or they
    stay zombies for the worker's life); lanes still being waited for are left alone."""
    import psutil

    for child in psutil.Process().children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        with _own_lock:
            if child.pid in _own:
                continue
            try:
                os.waitpid(child.pid, os.WNOHANG)
            except ChildProcessError:
                pass


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_leftovers(pgid: int, tag: str) -> int:
    """SIGKILL whatever of the lane is still alive: its group and tagged escapees."""
    import psutil

    _kill_group(pgid, signal.SIGKILL)
    killed = 0
    for process in _descendants_tagged(tag):
        try:
            process.kill()  # type: ignore[attr-defined]
            process.wait(timeout=5)  # type: ignore[attr-defined]
            killed += 1
        except (psutil.Error, OSError):
            pass
    return killed


def run_lane(argv: list[str], *, cwd: Path, env: dict[str, str], stdin: Path | None,
             timeout: float, log_path: Path, log_cap: int = DEFAULT_LOG_CAP,
             tag: str, abandon: threading.Event | None = None) -> LaneResult:
    """Run ``argv`` to its end (or its timeout, or until ``abandon`` is set — the lease
    was lost) and clean up every process it left."""
    become_subreaper()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stdin_file = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115
    # The shim heads the lane's session and takes it down if this worker dies.
    command = [sys.executable, "-I", str(SHIM), str(os.getpid()), "--", *argv]
    try:
        process = subprocess.Popen(command, cwd=cwd, env=env,
                                   stdin=stdin_file, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        log_path.write_text(f"[striatum: could not start {argv[0]!r}: {exc}]\n")
        return LaneResult(127, False, 0.0, 0, False, 0)
    finally:
        if stdin_file is not subprocess.DEVNULL:
            stdin_file.close()  # type: ignore[union-attr]
    with _own_lock:
        _own.add(process.pid)
    assert process.stdout is not None
    pump = _LogPump(process.stdout.fileno(), log_path, log_cap)
    pump.start()
    timed_out = False
    deadline = started + timeout
    while process.poll() is None:
        left = deadline - time.monotonic()
        if left <= 0 or (abandon is not None and abandon.is_set()):
            timed_out = left <= 0
            break
        try:
            process.wait(timeout=min(left, 0.25))
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        _kill_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _kill_group(process.pid, signal.SIGKILL)
            process.wait()
    killed = _kill_leftovers(process.pid, tag)
    # Whatever still holds the pipe now escaped us (it dropped its lease token):
    # keep what it printed in the next seconds, then stop reading.
    pump.give_up(after=3.0)
    pump.join()
    process.stdout.close()
    with _own_lock:
        _own.discard(process.pid)
    _reap_adopted()
    return LaneResult(process.returncode if process.returncode is not None and not timed_out
                      else None, timed_out,
                      time.monotonic() - started, pump.total, pump.total > log_cap, killed)
