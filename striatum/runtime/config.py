"""Where the database is: an explicit DSN (team mode) or the embedded server."""

from __future__ import annotations

from dataclasses import dataclass

from .store import Store


@dataclass(frozen=True)
class Database:
    dsn: str
    embedded: bool


def resolve(dsn: str | None) -> Database:
    if dsn:
        _check_dsn(dsn)
        return Database(dsn, embedded=False)
    from .embedded import ensure_running

    return Database(ensure_running(), embedded=True)


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


def open_store(dsn: str | None) -> Store:
    """Connect as the runtime role, migrating the schema first if it is behind."""
    from .migrate import ensure_migrated

    database = resolve(dsn)
    ensure_migrated(database.dsn)
    return Store.connect(database.dsn)
