"""Run one lane command under supervision.

* the lane is started by this worker's guardian (``guardian.py``), one small process
  per worker started once, which forks and execs the lane's own program: no
  interpreter per lane. Killing the worker, even with SIGKILL, makes the
  guardian kill every lane and everything below them;
* its own session, so the whole process group can be signalled; the timeout
  sends SIGTERM, then SIGKILL after a grace period;
* the guardian is a child subreaper (Linux), so a descendant that escapes the
  group with ``setsid`` is re-parented to it instead of init, and is found by
  the lease token in its environment and killed too: no lane leaves a process
  behind;
* stdout and stderr go to one log file, capped, with a marker saying how much
  was cut; the runner never reads the output for meaning;
* the environment is an allowlist: PATH, HOME, LANG, TERM, the lane's own
  ``env`` (where ``"${NAME}"`` passes the worker's NAME through by name, and
  leaves the variable unset when the worker has no NAME), and
  STRIATUM_* for the job. A secret in the worker's environment reaches the
  agent only when the lane names it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..compiler.ir import DEFAULT_LANE_TIMEOUT

ALLOWED_ENV = ("PATH", "HOME", "LANG", "TERM")
PLACEHOLDERS = ("prompt_file", "artifact_dir", "job", "run")
DEFAULT_TIMEOUT = DEFAULT_LANE_TIMEOUT
DEFAULT_LOG_CAP = 8 * 1024 * 1024
GRACE_SECONDS = 3.0
# Run by path in isolated mode (-I): it needs only the standard library and psutil.
GUARDIAN = Path(__file__).resolve().parent / "guardian.py"
HEADER = struct.Struct("!I")  # a request's length, as guardian.HEADER reads it


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
            # Passed through by name; one the worker does not have stays unset, since an
            # empty ANTHROPIC_BASE_URL (say) is not the same as none.
            if value[2:-1] in source:
                env[name] = source[value[2:-1]]
            else:
                env.pop(name, None)
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


class _NotStarted(Exception):
    pass


class _Lane:
    """A lane as its guardian reports it on the lane's status pipe: the pid, then the exit
    code once the guardian has reaped it."""

    def __init__(self, status: int, guardian: int) -> None:
        self._status = status
        self._buffer = b""
        self._ended = False
        self.guardian = guardian  # its parent, and the parent of what escaped its group
        self.pid = 0
        self.returncode: int | None = None
        self.orphaned = False  # the guardian died before it reported the lane's end

    def _line(self, timeout: float | None) -> str | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            if self._ended:
                return None
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._status], [], [], left)
            if not ready:
                return None
            chunk = os.read(self._status, 512)
            if not chunk:
                self._ended = True
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8", "replace")

    def started(self) -> None:
        # No timeout: the guardian answers at once, or dies and the pipe ends.
        line = self._line(None)
        if line is None:
            raise _NotStarted("the worker's lane guardian exited")
        kind, _, rest = line.partition(" ")
        if kind != "pid":
            raise _NotStarted(rest)
        self.pid = int(rest)

    def wait(self, timeout: float) -> int | None:
        """The exit code, waiting up to ``timeout``; None while it runs or once orphaned."""
        if self.returncode is None and not self.orphaned:
            line = self._line(timeout)
            if line is not None and line.startswith("exit "):
                self.returncode = int(line[5:])
            elif self._ended:
                self.orphaned = True
        return self.returncode

    def close(self) -> None:
        os.close(self._status)


class _Guardian:
    """This process's end of its lane guardian (``guardian.py``): started with the first lane,
    started again if it died. Every lane thread of the worker shares it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None

    def _connect(self) -> tuple[socket.socket, int]:
        if (self._socket is not None and self._process is not None
                and self._process.poll() is None):
            return self._socket, self._process.pid
        self._drop()
        ours, theirs = socket.socketpair()
        try:
            # Its own session: a signal to the worker's process group (a terminal's ^C,
            # a supervisor's kill) must leave it to clean up after the worker. It needs
            # none of the worker's environment, and so does not carry its secrets.
            self._process = subprocess.Popen(
                [sys.executable, "-I", str(GUARDIAN), str(theirs.fileno()), str(os.getpid())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env={"PATH": os.environ.get("PATH", os.defpath)},
                start_new_session=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        return ours, self._process.pid

    def _drop(self) -> None:
        if self._socket is not None:
            self._socket.close()  # a guardian still alive reads end-of-file and exits
        self._socket = None
        self._process = None

    def start(self, argv: list[str], cwd: Path, env: Mapping[str, str],
              stdin: IO[bytes] | None, output: int) -> _Lane:
        body = json.dumps({"argv": argv, "cwd": str(cwd), "env": dict(env)}).encode()
        status_read, status_write = os.pipe()
        fds = [status_write, output] + ([stdin.fileno()] if stdin is not None else [])
        try:
            with self._lock:
                for attempt in (1, 2):
                    sock, guardian = self._connect()
                    try:
                        socket.send_fds(sock, [HEADER.pack(len(body))], fds)
                        sock.sendall(body)
                        break
                    except OSError:  # it died since the last lane: start another one
                        self._drop()
                        if attempt == 2:
                            raise
        except BaseException:
            os.close(status_read)
            raise
        finally:
            os.close(status_write)
        lane = _Lane(status_read, guardian)
        try:
            lane.started()
        except BaseException:
            lane.close()
            raise
        return lane

    def ensure(self) -> None:
        with self._lock:
            self._connect()


_guardian = _Guardian()


def start_guardian() -> None:
    """Start this process's lane guardian now rather than with the first lane (whose
    start would otherwise wait ~50 ms for the interpreter)."""
    _guardian.ensure()


def _below(pid: int) -> list[int]:
    """Every process below ``pid``: its children, theirs, and so on."""
    if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
        import psutil  # no CONFIG_PROC_CHILDREN, or not Linux: psutil reads every process

        try:
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        except psutil.Error:
            return []
    # ~0.1 ms for a few lanes, where psutil would read all of /proc (~8 ms) for every lane.
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", "rb") as listing:
                    children = [int(child) for child in listing.read().split()]
            except (OSError, ValueError):
                continue
            found += children
            stack += children
    return found


def _everyone() -> list[int]:
    import psutil

    return [int(pid) for pid in psutil.pids()]


def _environment(pid: int) -> list[bytes]:
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                return environ.read().split(b"\0")
        except OSError:  # it ended, or is not ours to read
            return []
    import psutil  # no /proc: the slower way

    try:
        return [f"{k}={v}".encode() for k, v in psutil.Process(pid).environ().items()]
    except (psutil.Error, OSError):
        return []


def _tagged(pids: list[int], tag: str) -> list[int]:
    marker = f"STRIATUM_LEASE={tag}".encode()
    return [pid for pid in pids
            if any(entry == marker or entry.endswith(b"=" + marker)
                   for entry in _environment(pid))]


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _kill_leftovers(lane: _Lane, tag: str) -> int:
    """SIGKILL whatever of the lane is still alive: its group and tagged escapees."""
    _kill_group(lane.pid, signal.SIGKILL)
    # Escapees are the guardian's (a subreaper); once it is gone they went to init or to
    # another subreaper, so every process of the machine is looked at.
    tagged = _tagged(_everyone() if lane.orphaned else _below(lane.guardian), tag)
    if not tagged:
        return 0
    import psutil

    killed = 0
    for pid in tagged:
        try:
            process = psutil.Process(pid)
            process.kill()
            process.wait(timeout=5)
            killed += 1
        except (psutil.Error, OSError):
            pass
    return killed


def run_lane(argv: list[str], *, cwd: Path, env: dict[str, str], stdin: Path | None,
             timeout: float, log_path: Path, log_cap: int = DEFAULT_LOG_CAP,
             tag: str, abandon: threading.Event | None = None) -> LaneResult:
    """Run ``argv`` to its end (or its timeout, or until ``abandon`` is set — the lease
    was lost) and clean up every process it left."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    stdin_file = open(stdin, "rb") if stdin else None  # noqa: SIM115
    output, output_write = os.pipe()
    try:
        lane = _guardian.start(argv, cwd, env, stdin_file, output_write)
    except (OSError, _NotStarted) as exc:
        os.close(output)
        log_path.write_text(f"[striatum: could not start {argv[0]!r}: {exc}]\n")
        return LaneResult(127, False, 0.0, 0, False, 0)
    except BaseException:
        os.close(output)
        raise
    finally:
        os.close(output_write)  # the lane holds the only write end now
        if stdin_file is not None:
            stdin_file.close()
    pump = _LogPump(output, log_path, log_cap)
    pump.start()
    timed_out = False
    deadline = started + timeout
    while lane.returncode is None and not lane.orphaned:
        left = deadline - time.monotonic()
        if left <= 0 or (abandon is not None and abandon.is_set()):
            timed_out = left <= 0
            break
        lane.wait(min(left, 0.25))
    if lane.returncode is None:
        _kill_group(lane.pid, signal.SIGTERM)
        if lane.wait(GRACE_SECONDS) is None:
            _kill_group(lane.pid, signal.SIGKILL)
            lane.wait(GRACE_SECONDS)
    killed = _kill_leftovers(lane, tag)
    # Whatever still holds the pipe now escaped us (it dropped its lease token):
    # keep what it printed in the next seconds, then stop reading.
    pump.give_up(after=3.0)
    pump.join()
    os.close(output)
    lane.close()
    if lane.orphaned:
        with open(log_path, "ab") as log:
            log.write(b"\n[striatum: the worker's lane guardian died; the lane was killed]\n")
    return LaneResult(lane.returncode if not timed_out else None, timed_out,
                      time.monotonic() - started, pump.total, pump.total > log_cap, killed)
