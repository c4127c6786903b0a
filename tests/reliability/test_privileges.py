"""Scenario 8, the privilege matrix: as the runtime role (what every striatum connection
runs as), no statement that changes, removes or unguards the record succeeds, on either
table. tests/integration/test_store.py checks ten of these; this is the whole matrix.

What the role cannot stop: the session's login user (the owner, often a superuser) can
leave the role again (``RESET ROLE``), and anyone holding the DSN can log in as that user;
the triggers then refuse changes, and the owner can still disable them. doctor detects
what follows (see test_tamper.py and docs/reliability.md).
"""

from __future__ import annotations

import time

import psycopg
import pytest

from striatum.runtime.store import Store

from .conftest import Record

TABLES = {"events": ("events_append_only", "events_no_truncate"),
          "audit_log": ("audit_log_append_only", "audit_log_no_truncate")}


def statements(table: str) -> list[str]:
    qualified = f"striatum.{table}"
    row_trigger, truncate_trigger = TABLES[table]
    return [
        f"UPDATE {qualified} SET payload = payload",
        f"UPDATE {qualified} SET row_hash = previous_hash WHERE seq = 1",
        f"DELETE FROM {qualified}",
        f"DELETE FROM {qualified} WHERE seq = 1",
        f"TRUNCATE {qualified}",
        f"TRUNCATE {qualified} CASCADE",
        f"ALTER TABLE {qualified} DISABLE TRIGGER {row_trigger}",
        f"ALTER TABLE {qualified} DISABLE TRIGGER {truncate_trigger}",
        f"ALTER TABLE {qualified} DISABLE TRIGGER USER",
        f"ALTER TABLE {qualified} DISABLE TRIGGER ALL",
        f"ALTER TABLE {qualified} ADD COLUMN forged int",
        f"ALTER TABLE {qualified} DROP COLUMN row_hash",
        f"ALTER TABLE {qualified} RENAME TO {table}_old",
        f"ALTER TABLE {qualified} OWNER TO striatum_runtime",
        f"DROP TABLE {qualified}",
        f"DROP TABLE {qualified} CASCADE",
        f"DROP TRIGGER {row_trigger} ON {qualified}",
        f"DROP TRIGGER {truncate_trigger} ON {qualified}",
        f"CREATE RULE forged AS ON INSERT TO {qualified} DO INSTEAD NOTHING",
        f"CREATE TRIGGER forged BEFORE INSERT ON {qualified} FOR EACH ROW "
        "EXECUTE FUNCTION striatum.refuse_change()",
        f"CREATE INDEX forged ON {qualified} (seq)",
        # A GRANT without the grant option only warns; the UPDATE after it must fail.
        f"GRANT UPDATE, DELETE, TRUNCATE ON {qualified} TO striatum_runtime; "
        f"UPDATE {qualified} SET payload = payload",
        f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY",
        f"LOCK TABLE {qualified} IN ACCESS EXCLUSIVE MODE",
    ]


COMMON = [
    "CREATE OR REPLACE FUNCTION striatum.refuse_change() RETURNS trigger LANGUAGE plpgsql "
    "AS $$ BEGIN RETURN NEW; END $$",
    "DROP FUNCTION striatum.refuse_change() CASCADE",
    "ALTER FUNCTION striatum.refuse_change() RENAME TO refuse_nothing",
    "DROP SCHEMA striatum CASCADE",
    "CREATE TABLE striatum.shadow (x int)",
    "SET session_replication_role = replica",
    "ALTER ROLE striatum_runtime SUPERUSER",
]
MATRIX = [s for table in TABLES for s in statements(table)] + COMMON


def refused(store: Store, statement: str) -> str | None:
    """The SQLSTATE that refused ``statement``, or None if it succeeded (rolled back)."""
    try:
        with store._conn.transaction(force_rollback=True):
            for part in statement.split("; "):
                store._conn.execute(part)
    except psycopg.Error as exc:
        return exc.sqlstate or "?"
    return None


def test_the_runtime_role_cannot_change_the_record(store: Store, figure: Record) -> None:
    assert store.runtime_role, "the store did not take the runtime role"
    store._conn.execute("INSERT INTO striatum.repos (path) VALUES ('/privileges')")
    started = time.monotonic()
    succeeded = [s for s in MATRIX if refused(store, s) is None]
    assert store._conn.execute("SELECT current_user").fetchone() == ("striatum_runtime",)
    figure("8 privilege matrix", len(MATRIX),
           f"statements that succeeded {len(succeeded)} / {len(MATRIX)}",
           time.monotonic() - started)
    assert not succeeded, f"the runtime role could run: {succeeded}"


@pytest.mark.parametrize("statement", ["SELECT count(*) FROM striatum.events",
                                       "SELECT count(*) FROM striatum.audit_log"])
def test_the_runtime_role_can_still_read_the_record(store: Store, statement: str) -> None:
    """The control: the matrix fails for want of privilege, not for a broken connection."""
    assert refused(store, statement) is None
