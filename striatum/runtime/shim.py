"""The head of every lane's session: it dies with the worker, and takes the lane with it.

    python -I .../striatum/runtime/shim.py WORKER_PID -- ARGV...

A lane runs in a session of its own, so that a timeout can signal the whole
group; but then killing the worker (SIGKILL, OOM, a lost machine) would not
reach it, and a second worker would run the same job while the first agent
still changes the repository. The shim closes that gap: it asks the kernel
for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), adopts descendants
that leave the group with ``setsid`` (it is a child subreaper), runs the
lane's command, and on that signal kills its group and every process it
adopted before exiting. Otherwise it exits with the command's status.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the worker's own cleanup is all there is


try:  # imported now: a signal handler must not be the first to import a module
    import psutil
except ImportError:  # pragma: no cover - a dependency of striatum
    psutil = None


def _kill_everything(signum: int, frame: FrameType | None) -> None:
    # The signal can come more than once; a second run of this handler must not
    # interrupt the first halfway, so later ones are ignored.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        if psutil is not None:
            for child in psutil.Process().children(recursive=True):
                try:
                    child.kill()
                except psutil.Error:
                    pass
    finally:
        os.killpg(os.getpgid(0), signal.SIGKILL)  # the group, this shim included


def main(argv: list[str]) -> int:
    worker_pid, separator, command = int(argv[0]), argv[1], argv[2:]
    assert separator == "--" and command
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGTERM, _kill_everything)
    if os.getppid() != worker_pid:  # the worker died before the request took hold
        return 128 + signal.SIGTERM
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        print(f"[striatum: could not start {command[0]!r}: {exc}]", file=sys.stderr)
        return 127
    status = child.wait()
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
