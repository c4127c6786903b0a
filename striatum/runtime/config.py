"""Where the database is: an explicit DSN (team mode) or the embedded server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, StoreUnavailable
from .store import Store, open_connection

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Database:
    dsn: str
    embedded: bool

    @property
    def owner_dsn(self) -> str:
        """Whom migrations log in as: on the embedded server its owner (the runtime role
        that ``dsn`` names may not create tables); on a server of the user's, ``dsn``."""
        if not self.embedded:
            return self.dsn
        from .embedded import owner_dsn

        return owner_dsn(self.dsn)


def resolve(dsn: str | None) -> Database:
    if dsn:
        _check_dsn(dsn)
        return Database(dsn, embedded=False)
    from .embedded import ensure_running

    return Database(ensure_running(), embedded=True)


def describe(dsn: str | None) -> str:
    """A DSN to show (a status, a log): its password, if it holds one, left out; the
    embedded server named by its folder when no DSN is given."""
    if not dsn:
        from .embedded import home

        return f"embedded PostgreSQL in {home() / 'pg'}"
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(dsn)
    except ProgrammingError:
        return "(a DSN that does not parse)"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo(**params)  # type: ignore[arg-type]


def _check_dsn(dsn: str) -> None:
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    from ..errors import UsageError

    try:
        conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        raise UsageError(f"--dsn / STRIATUM_DSN is not a PostgreSQL connection string: {exc}",
                         hint="e.g. postgresql://user@host:5432/dbname or "
                              "'host=... dbname=...'") from exc


def open_store(dsn: str | None, *, actor: str = "") -> Store:
    """Connect as the runtime role, migrating the schema first if it is behind, on behalf
    of ``actor`` (whom the audit rows name; default: ``audit.default_actor``).

    One connection does it all: the embedded server is probed by connecting to
    it, the check (and any migration) runs as the connecting role, then the
    same session switches to the runtime role, as ``Store.connect`` would. A
    connection costs more than every query here, on each command an agent runs.
    """
    from .migrate import ensure_migrated

    database, conn = _connect(dsn)
    try:
        ensure_migrated(conn, owner=None if dsn else Database(database, True).owner_dsn)
    except BaseException:
        conn.close()
        raise
    return Store.adopt(database, conn, actor=actor)


def checked(dsn: str | None) -> Database:
    """The database a face that keeps connections (the daemon, the web UI, the MCP
    server) opens its pool on: the schema checked, and migrated if it is behind, and the
    embedded server started if it is the one and is not running, all by one login,
    whose DSN the pool then uses."""
    opened = open_store(dsn)
    opened.close()
    return Database(opened.dsn, embedded=not dsn)


def _connect(dsn: str | None) -> tuple[str, psycopg.Connection[Any]]:
    if dsn:
        _check_dsn(dsn)
        return dsn, open_connection(dsn)
    from .embedded import cached_dsn, ensure_running

    cached = cached_dsn()
    if cached:
        try:
            # The same patience as ensure_running's own probe before it starts one.
            return cached, open_connection(cached, timeout=3)
        except (StoreUnavailable, StoreError):
            pass  # not running, or its database is gone: ensure_running sees to it
    started = ensure_running()
    return started, open_connection(started)
