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
        return Database(dsn, embedded=False)
    from .embedded import ensure_running

    return Database(ensure_running(), embedded=True)


def open_store(dsn: str | None) -> Store:
    """Connect as the runtime role, migrating the schema first if it is behind."""
    from .migrate import ensure_migrated

    database = resolve(dsn)
    ensure_migrated(database.dsn)
    return Store.connect(database.dsn)
