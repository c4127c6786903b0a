"""A worker's lane socket: what its lanes reach striatum through, instead of the database
(docs/workers.md, "The lane's environment"; docs/security.md).

Every worker serves one for as long as it runs, on a thread of its own: the daemon's
connection loop (``daemon.Server``) over a lease-only ``gate.Gate``. No token exists
there: a call must present the live lease of one of this worker's lanes, and only the
lease verbs are served; anything else is refused ``forbidden``, and every call,
served or refused, is audited as the daemon audits. Its database connections are the
worker's own DSN (a small pool); a lane is handed the socket's path
(``STRIATUM_SOCKET``) and its lease, never the DSN.

The socket is ``worker.sock`` in a folder of its own (mode 0700, made with
``tempfile.mkdtemp`` under the temporary folder, or under ``/tmp`` when a deep
``TMPDIR`` would take the socket's path past the 107 bytes a socket address holds),
removed with the folder when the worker stops. The folder's name holds the worker's
pid (``striatum-lanes-PID-XXXXXXXX``): a worker killed with no time to clean up
(SIGKILL) leaves its folder behind, and the next lane socket opened on the machine
removes the folders of the user's workers that are gone (``sweep``).
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import UsageError
from .daemon import Server
from .gate import Gate, Pool
from .place import SOCKET_PATH_MAX, check_socket_path

SOCKET_NAME = "worker.sock"
PREFIX = "striatum-lanes-"


def folder_parent() -> Path:
    """Where a lane socket's folder goes: the temporary folder, unless its path is so long
    (a deep ``TMPDIR``) that the socket's address would not fit; then ``/tmp``."""
    parent = Path(tempfile.gettempdir())
    longest = parent / f"{PREFIX}{os.getpid()}-{'x' * 8}" / SOCKET_NAME
    return parent if len(os.fsencode(longest)) <= SOCKET_PATH_MAX else Path("/tmp")


def sweep(parent: Path | None = None) -> list[Path]:
    """Remove the lane socket folders under ``parent`` (default: the temporary folder)
    whose worker is gone: this user's, named for a pid no process has. Returns them."""
    removed = []
    for found in (parent or Path(tempfile.gettempdir())).glob(PREFIX + "*"):
        pid, sep, _ = found.name[len(PREFIX):].partition("-")
        try:
            held = found.lstat()
        except OSError:
            continue
        if (sep and pid.isdigit() and stat.S_ISDIR(held.st_mode)
                and held.st_uid == os.geteuid() and not _alive(int(pid))):
            shutil.rmtree(found, ignore_errors=True)
            removed.append(found)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's: not a worker of this user's, alive
        return True
    return True


class LaneLeases:
    """The lanes this worker runs now: each one's environment, by its lease token. A lane
    is held from just before it starts until it has exited."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, dict[str, str]] = {}

    def hold(self, token: str, env: Mapping[str, str]) -> None:
        with self._lock:
            self._held[token] = dict(env)

    def drop(self, token: str) -> None:
        with self._lock:
            self._held.pop(token, None)

    def env(self, token: str) -> Mapping[str, str] | None:
        if not isinstance(token, str):
            return None
        with self._lock:
            return self._held.get(token)


class LaneGate(Server):
    """The socket, served on a background thread from ``open`` until ``close``."""

    face = "lane socket"

    def __init__(self, dsn: str, *, connections: int = 2, home: Path | None = None) -> None:
        super().__init__()
        self.dsn = dsn
        self.connections = connections
        self.leases = LaneLeases()
        parent = folder_parent()
        sweep(parent)
        self.folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-",
                                            dir=parent))  # mode 0700
        self.socket = self.folder / SOCKET_NAME
        self._home = home
        self._pool: Pool | None = None
        self._thread: threading.Thread | None = None
        self._failed: BaseException | None = None
        self.started = (datetime.now(UTC), time.monotonic())

    def describe(self) -> dict[str, Any]:
        return {"face": "lane socket", "pid": os.getpid(), "version": __version__,
                "started_at": self.started[0].isoformat(timespec="seconds"),
                "uptime_seconds": int(time.monotonic() - self.started[1]),
                "database": self.database, "socket": str(self.socket)}

    def open(self) -> LaneGate:
        """Start serving; returns once the socket accepts connections."""
        from ..runtime.config import describe
        from ..runtime.embedded import home

        try:
            where = check_socket_path(self.socket)
            self.database = describe(self.dsn)
            self._pool = Pool(self.dsn, self.connections, wait=False,
                              name="striatum lane socket")
            gate = Gate(self._pool, None, self._home or home(), self.describe,
                        lanes=self.leases)
        except BaseException:
            self.close()
            raise
        ready = threading.Event()

        def serve() -> None:
            try:
                with ThreadPoolExecutor(self.connections, "striatum-lane-call") as calls:
                    self.run(where, gate, calls, ready.set)
            except BaseException as exc:  # noqa: BLE001 - reported by open, below
                self._failed = exc
            finally:
                ready.set()

        self._thread = threading.Thread(target=serve, name="striatum-lane-socket",
                                        daemon=True)
        self._thread.start()
        ready.wait()
        if self._failed is not None:
            failed = self._failed
            self.close()
            raise UsageError(f"the worker cannot serve its lanes' socket at {where}: "
                             f"{failed}", hint="check the temporary folder ($TMPDIR): it "
                                               "must be writable") from failed
        return self

    def close(self) -> None:
        """Stop serving (the calls in progress answer first), then remove the socket and
        its folder."""
        self.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        shutil.rmtree(self.folder, ignore_errors=True)
