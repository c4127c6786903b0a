"""The guardian of a worker's lanes: one small process per worker, started once.

    python -I .../striatum/runtime/guardian.py SOCKET_FD WORKER_PID

A lane runs in a session of its own, so that a timeout can signal its whole
group; but then killing the worker (SIGKILL, OOM, a lost machine) would not
reach it, and a second worker would run the same job while the first agent
still changes the repository. The guardian closes that gap without a Python
interpreter per lane: the worker sends it each lane to start over a UNIX
socket, and it forks and execs the lane's own program directly, so every lane
is its child. It is a child subreaper, so a descendant that leaves the lane's
group with ``setsid`` is re-parented to it rather than to init.

When the worker dies, however it dies, the kernel closes the worker's end of
the socket: the guardian reads end-of-file, kills every lane's group and every
process below it (adopted ones included), and exits. ``PR_SET_PDEATHSIG`` is
a second way to learn it, for a worker whose socket end outlived it in a
forked child. The guardian sits in a session of its own, so a signal meant
for the worker's process group does not take it down before the lanes.

Its signal handlers only note that it must stop (the wake-up pipe ends the
``select``): a handler that raised could do so anywhere, the clean-up
included, and a second signal would then cut the clean-up short.

Protocol. A request is a 4-byte big-endian length and a JSON object
(``argv``, ``cwd``, ``env``), sent with the descriptors [status, output] or
[status, output, stdin] attached to the length. The guardian answers on the
status pipe, private to that lane: ``pid N`` or ``error MESSAGE``, then
``exit CODE`` (negative: killed by that signal) when it has reaped the lane.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
HEADER = struct.Struct("!I")
MAX_FDS = 3

try:  # imported now: a signal handler must not be the first to import a module
    import psutil
except ImportError:  # pragma: no cover - a dependency of striatum
    psutil = None


def _prctl(option: int, value: int) -> None:
    # Not Linux: no subreaper, and the socket alone tells of the worker's death.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


@dataclass
class _Lane:
    process: subprocess.Popen[bytes]
    status: int  # the write end of the lane's status pipe


def _tell(fd: int, line: str) -> None:
    # The worker may have stopped listening (it is gone): end-of-file will follow.
    with contextlib.suppress(OSError):
        os.write(fd, line.encode() + b"\n")


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, got = [], 0
    while got < size:
        chunk = sock.recv(size - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _receive(sock: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    """One request and its descriptors, or None at end-of-file (the worker is gone)."""
    header, fds, _, _ = socket.recv_fds(sock, HEADER.size, MAX_FDS)
    for fd in fds:
        os.set_inheritable(fd, False)  # only the lane it is meant for gets it, as 0/1/2
    if len(header) < HEADER.size:
        rest = _receive_exactly(sock, HEADER.size - len(header)) if header else None
        if rest is None:
            for fd in fds:
                os.close(fd)
            return None
        header += rest
    body = _receive_exactly(sock, HEADER.unpack(header)[0])
    if body is None:
        for fd in fds:
            os.close(fd)
        return None
    return json.loads(body), fds


def _start(request: dict[str, Any], fds: list[int], lanes: dict[int, _Lane]) -> None:
    status, output = fds[0], fds[1]
    stdin = fds[2] if len(fds) > 2 else subprocess.DEVNULL
    try:
        process = subprocess.Popen(request["argv"], cwd=request["cwd"], env=request["env"],
                                   stdin=stdin, stdout=output, stderr=output,
                                   start_new_session=True)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        _tell(status, f"error {exc}".replace("\n", " "))
        os.close(status)
        return
    finally:
        for fd in fds[1:]:
            os.close(fd)  # the lane holds its own copies now
    lanes[process.pid] = _Lane(process, status)
    _tell(status, f"pid {process.pid}")


def _reap(lanes: dict[int, _Lane]) -> None:
    """Wait for every child that ended: lanes (their status goes to the worker) and the
    processes adopted as a subreaper (or they would stay zombies)."""
    while True:
        try:
            pid, wait_status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        lane = lanes.pop(pid, None)
        if lane is not None:
            code = os.waitstatus_to_exitcode(wait_status)
            lane.process.returncode = code  # so Popen never waits for it again
            _tell(lane.status, f"exit {code}")
            os.close(lane.status)


def _kill_everything(lanes: dict[int, _Lane]) -> None:
    for pid in lanes:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)  # start_new_session: the group's id is the lane's pid
    # Then every process below this one: what left a lane's group (re-parented here) and
    # what it started since. Repeated, as a process may fork between the listing and the kill.
    for _ in range(20):
        found = psutil.Process().children(recursive=True) if psutil is not None else []
        for child in found:
            with contextlib.suppress(psutil.Error):
                child.kill()
        _reap(lanes)
        if not found:
            return


def main(argv: list[str]) -> int:
    sock = socket.socket(fileno=int(argv[0]))
    worker_pid = int(argv[1])
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    stopping: list[int] = []  # the signals that said to stop

    def on_parent_signal(signum: int, frame: FrameType | None) -> None:
        # PR_SET_PDEATHSIG fires when the *thread* that started the guardian ends, which
        # a live worker does to its pool threads: only a new parent means the worker died.
        if os.getppid() != worker_pid:
            stopping.append(signum)

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        stopping.append(signum)

    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    os.set_blocking(wake_read, False)
    signal.set_wakeup_fd(wake_write)  # every signal below ends the select
    signal.signal(signal.SIGUSR1, on_parent_signal)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, on_terminate)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGUSR1)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    lanes: dict[int, _Lane] = {}
    try:
        if os.getppid() != worker_pid:  # the worker died before the request took hold
            return 0
        while not stopping:
            ready, _, _ = select.select([sock.fileno(), wake_read], [], [])
            if wake_read in ready:
                _drain(wake_read)
            _reap(lanes)
            if stopping:
                break
            if sock.fileno() in ready:
                received = _receive(sock)
                if received is None:
                    return 0
                _start(*received, lanes)
        return 0
    finally:
        for signum in (signal.SIGUSR1, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        _kill_everything(lanes)


def _drain(fd: int) -> None:
    while True:
        try:
            if not os.read(fd, 512):
                return
        except BlockingIOError:
            return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
