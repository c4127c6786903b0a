"""Apply the numbered migrations in order, once each, safely from many processes.

A session advisory lock serializes concurrent migrators on one database; each
migration runs in its own transaction with its record in ``striatum.migrations``.
A migration whose text changed after it was applied is refused: shipped
migrations are never edited.

``ensure_migrated`` works on a connection the caller already holds: a command
checks the schema on the connection it then works on, since opening a second
one costs more than all the queries of the check.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..canonical import sha256_hex
from ..errors import MigrationEdited, SchemaTooNew
from .sql import migrations, query
from .store import open_connection, wrap_errors

if TYPE_CHECKING:
    import psycopg

LATEST = len(migrations())
NOTICE_PREFIX = "striatum: "


@dataclass(frozen=True)
class MigrationReport:
    applied: list[int]
    latest: int
    # What the migrations said (their `RAISE NOTICE 'striatum: ...'`): a grant the
    # database refused, events that disagree with their payloads. psycopg drops notices
    # unless a handler keeps them.
    notices: list[str] = field(default_factory=list)


def schema_version(dsn: str) -> int:
    with wrap_errors(), open_connection(dsn) as conn:
        return _schema_version(conn)


def _schema_version(conn: psycopg.Connection[Any]) -> int:
    """0 for a database never migrated. Asked in one round trip, the table's absence
    told by the error (on an autocommit connection, which it leaves usable): every
    command asks, and a new session's first look at a table costs more than a query."""
    import psycopg

    try:
        row = conn.execute(query("schema_version")).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row and row[0] is not None else 0


def migrate(dsn: str) -> MigrationReport:
    with wrap_errors(), open_connection(dsn) as conn:
        return _migrate(conn)


def _too_new(version: int) -> SchemaTooNew:
    # A newer striatum migrated this database: this one would not keep what the newer
    # schema keeps (a run's count of unsettled jobs, say), and would corrupt it.
    return SchemaTooNew(
        f"the database's schema is version {version}, newer than this striatum knows "
        f"({LATEST})", hint="upgrade striatum on this machine; stop every older worker "
        "before a newer striatum migrates a shared database")


def _migrate(conn: psycopg.Connection[Any]) -> MigrationReport:
    applied: list[int] = []
    notices: list[str] = []
    current: list[int] = []

    def said(diagnostic: psycopg.errors.Diagnostic) -> None:
        message = diagnostic.message_primary or ""
        # Only a migration's own words: not the server's "already exists, skipping".
        if current and message.startswith(NOTICE_PREFIX):
            notices.append(f"migration {current[0]:04d}: {message[len(NOTICE_PREFIX):]}")

    conn.execute(query("migrate_lock"))
    conn.add_notice_handler(said)
    try:
        conn.execute(query("create_migrations_table"))
        done = {int(v): c for v, c in conn.execute(query("applied_migrations")).fetchall()}
        if done and max(done) > LATEST:
            raise _too_new(max(done))
        for version, name, text in migrations():
            checksum = sha256_hex(text.encode("utf-8"))
            if version in done:
                if done[version] != checksum:
                    raise MigrationEdited(
                        f"migration {version:04d}_{name} was changed after it was applied",
                        hint="never edit a shipped migration: add a new one")
                continue
            current[:] = [version]
            with conn.transaction():
                conn.execute(text.encode("utf-8"))
                conn.execute(query("record_migration"),
                             {"version": version, "name": name, "checksum": checksum})
            current.clear()
            applied.append(version)
    finally:
        conn.remove_notice_handler(said)
        conn.execute(query("migrate_unlock"))
    return MigrationReport(applied, LATEST, notices)


def ensure_migrated(conn: psycopg.Connection[Any], *, owner: str | None = None) -> None:
    """Bring the schema up to date when it is behind (two short queries when it is not).

    ``conn`` is an autocommit connection, checked before it switches to the runtime
    role. The migration runs on it, as the role it logged in as, unless ``owner``
    names the DSN of the schema's owner: the embedded server's commands log in as the
    runtime role, which may not create tables.
    """
    with wrap_errors():
        version = _schema_version(conn)
    if version > LATEST:
        raise _too_new(version)
    if version < LATEST:
        if version:
            # An upgrade can take minutes on a long record (docs/runtime.md, "Upgrading"):
            # say why the command is waiting.
            print(f"striatum: migrating the schema from version {version} to {LATEST}",
                  file=sys.stderr)
        if owner is not None:
            report = migrate(owner)
        else:
            with wrap_errors():
                report = _migrate(conn)
        # The command's own output is its result (JSON, often): what the migrations said
        # goes to stderr, where the user still sees it.
        for notice in report.notices:
            print(f"striatum: {notice}", file=sys.stderr)
