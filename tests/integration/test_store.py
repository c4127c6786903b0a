"""The schema as migrations build it, and the guards on the record."""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg
import pytest

from striatum.errors import StoreError
from striatum.runtime.migrate import LATEST, migrate, schema_version
from striatum.runtime.records import JobRow, RunRow
from striatum.runtime.store import Store, fetch, send

EXPECTED_TABLES = {
    "artifacts", "chain_heads", "events", "audit_log", "jobs", "leases", "migrations", "repos",
    "runs", "verdicts", "workflows", "identity", "workers",
}
EXPECTED_COLUMNS = {
    "events": ["repo_id", "seq", "run_id", "job_id", "type", "payload", "previous_hash",
               "row_hash", "created_at", "status", "iteration", "attempt", "executions",
               "revisions_used", "fence", "lease_owner", "chosen", "verdict", "blocked_on"],
    "jobs": ["run_id", "job_id", "position", "kind", "lane", "lane_kind", "status",
             "iteration", "attempt", "max_attempts", "executions", "revisions_used", "fence",
             "lease_token", "lease_owner", "lease_expires_at", "heartbeat_at", "chosen",
             "verdict", "reason", "updated_at"],
    "chain_heads": ["chain", "seq", "hash", "previous"],
}


def test_migrations_build_the_expected_schema(dsn: str) -> None:
    assert schema_version(dsn) == LATEST
    with psycopg.connect(dsn) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'striatum' "
            "AND table_type = 'BASE TABLE'")}
        assert tables == EXPECTED_TABLES
        for table, columns in EXPECTED_COLUMNS.items():
            found = [r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = "
                "'striatum' AND table_name = %s ORDER BY ordinal_position", (table,))]
            assert found == columns, table


def test_migrate_is_idempotent(dsn: str) -> None:
    assert migrate(dsn).applied == []
    assert migrate(dsn).applied == []


@pytest.mark.parametrize("statement", [
    "UPDATE striatum.events SET type = 'x'",
    "DELETE FROM striatum.events",
    "TRUNCATE striatum.events",
    "UPDATE striatum.audit_log SET verb = 'x'",
    "DELETE FROM striatum.audit_log",
    "TRUNCATE striatum.audit_log",
    "ALTER TABLE striatum.events DISABLE TRIGGER events_append_only",
    "ALTER TABLE striatum.audit_log ADD COLUMN x int",
    "DROP TABLE striatum.events",
    "DROP TRIGGER events_append_only ON striatum.events",
])
def test_runtime_role_cannot_change_the_record(store: Store, statement: str) -> None:
    assert store.runtime_role
    with pytest.raises(psycopg.errors.InsufficientPrivilege), store._conn.transaction():
        store._conn.execute(statement)


@pytest.mark.parametrize("statement", [
    "UPDATE striatum.events SET type = 'x'",
    "DELETE FROM striatum.audit_log",
    "TRUNCATE striatum.events",
])
def test_triggers_refuse_even_the_owner(dsn: str, statement: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute("INSERT INTO striatum.repos (path) VALUES ('/x')")
        # A payload that says what the columns say (the events' constraint holds).
        conn.execute("INSERT INTO striatum.events (repo_id, seq, type, payload, previous_hash, "
                     "row_hash) SELECT id, 1, 't', '{\"at\":\"' || striatum.event_time(now()) "
                     "|| '\",\"type\":\"t\"}', 'p', 'h' FROM striatum.repos")
        conn.execute("INSERT INTO striatum.audit_log (seq, actor, verb, args_digest, outcome, "
                     "payload, previous_hash, row_hash) VALUES (1, 'a', 'v', 'd', 'ok', '{}', "
                     "'p', 'h')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(statement)


def test_a_pipelined_transaction_that_failed_leaves_no_phantom_prepared_statement(
        store: Store) -> None:
    """psycopg prepares a statement on its fifth run; when an error aborts a pipeline, the
    rollback must leave psycopg's idea of what is prepared matching the server's, or later
    runs fail with "prepared statement does not exist" (found by the retry soak: eight
    failures in a row at one statement of a transition)."""
    fail = "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '40001'; END $$"

    def work(cur: psycopg.Cursor[Any], at: int | None) -> Any:
        for i in range(4):
            if i == at:
                cur.execute(fail)  # type: ignore[arg-type]
            found = fetch(cur, "now")
            send(cur, "notify_ready", {"run": f"r{i}"})
        return found[0][0]

    for at in range(4):
        for _ in range(8):
            with pytest.raises(StoreError):
                store.transaction(lambda cur, at=at: work(cur, at), pipelined=True)
            assert store._conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert store.transaction(lambda cur: work(cur, None), pipelined=True) is not None


@pytest.mark.parametrize("view, record", [("job_records", JobRow), ("run_records", RunRow)])
def test_each_record_is_its_view_column_for_column(dsn: str, view: str, record: type) -> None:
    """Rows are read by name: the record's fields are exactly the view's columns."""
    with psycopg.connect(dsn) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'striatum' AND table_name = %s ORDER BY ordinal_position", (view,))]
    assert columns == [f.name for f in dataclasses.fields(record)]


def test_a_role_password_is_set_only_from_a_scram_verifier_and_only_by_the_owner(
        dsn: str, store: Store) -> None:
    """The server must never receive a password itself (its logs would keep it), and the
    runtime role must not give itself, or the owner, a login."""
    from striatum.runtime.sql import query

    from .helpers import owner_connection

    with owner_connection(dsn) as conn, pytest.raises(psycopg.errors.RaiseException,
                                                      match="SCRAM-SHA-256 verifier"):
        conn.execute(query("set_role_password"),
                     {"role": "striatum_runtime", "verifier": "plain-text-secret"})
    with pytest.raises(StoreError, match="permission denied for function set_role_password"):
        store.execute("set_role_password",
                      {"role": "postgres", "verifier": "SCRAM-SHA-256$4096:x$y:z"})
