"""The daemon's runtime folder under the striatum home: where its socket, pid file, log
and tokens are, and whether a daemon holds it (docs/daemon.md).

Standard library only: ``daemon status`` and ``stop`` look here without importing
the daemon (nor psycopg).
"""

from __future__ import annotations

import fcntl
import os
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from . import where
from .where import dsn_digest

__all__ = ["RuntimeDir", "dsn_digest", "prepare", "running", "runtime_dir", "take_lock",
           "write_secret"]


@dataclass(frozen=True)
class RuntimeDir:
    """The daemon's folder under the striatum home (mode 0700): its socket, its pid file
    (locked while it runs), its log and the capability tokens (mode 0600)."""

    path: Path

    @property
    def socket(self) -> Path:
        return self.path / where.SOCKET

    @property
    def pidfile(self) -> Path:
        return self.path / "daemon.pid"

    @property
    def log(self) -> Path:
        return self.path / "daemon.log"

    @property
    def client_token(self) -> Path:
        return self.path / where.CLIENT_TOKEN

    @property
    def viewer_token(self) -> Path:
        return self.path / where.VIEWER_TOKEN

    @property
    def dsn_digest(self) -> Path:
        """The sha256 of the DSN the daemon was started with (of "" for none): a CLI given
        a DSN uses the daemon only when it serves that one, and reads no DSN to know."""
        return self.path / where.DSN_DIGEST


def runtime_dir(home: Path | None = None) -> RuntimeDir:
    if home is None:
        from ..runtime.embedded import home as striatum_home

        home = striatum_home()
    return RuntimeDir(home / where.RUNTIME_DIR)


SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes on Linux, its last a NUL


def check_socket_path(path: Path) -> str:
    text = str(path)
    if len(text.encode()) > SOCKET_PATH_MAX:
        raise UsageError(f"the daemon's socket path is {len(text.encode())} bytes long, more "
                         f"than a UNIX socket address holds ({SOCKET_PATH_MAX}): {text}",
                         hint="set STRIATUM_HOME to a shorter folder")
    return text


def prepare(place: RuntimeDir) -> None:
    """The runtime folder, made (or made again) 0700 and checked to be the user's own."""
    place.path.parent.mkdir(parents=True, exist_ok=True)
    place.path.mkdir(mode=0o700, exist_ok=True)
    found = place.path.stat()
    if found.st_uid != os.geteuid():
        raise UsageError(f"{place.path} belongs to uid {found.st_uid}, not to you",
                         hint="give the striatum home to the user who runs the daemon")
    if found.st_mode & 0o777 != 0o700:
        os.chmod(place.path, 0o700)


def write_secret(path: Path, value: str) -> None:
    """Write ``value`` to a new file of mode 0600 and put it in place atomically, so no
    reader ever sees a wider mode or half a token."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}")
    fresh.unlink(missing_ok=True)
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(value + "\n")
    os.replace(fresh, path)


def take_lock(place: RuntimeDir, patience: float = 1.0) -> int | None:
    """The pid file's descriptor, locked for this process, this pid written in it; None
    when another holds it. A little patience: ``running`` takes the lock for a moment
    to look."""
    fd = os.open(place.pidfile, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + patience
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # At once: a killed daemon's pid, left in the file, must never be read as
            # this one's (``stop`` would signal whatever process has it now).
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)


def running(place: RuntimeDir) -> int | None:
    """The pid of the daemon that holds the runtime folder's lock, or None."""
    try:
        fd = os.open(place.pidfile, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1  # locked, its pid not written yet
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
