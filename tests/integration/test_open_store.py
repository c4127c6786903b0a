"""A command's store: the schema check, any migration and the role switch on one connection."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from striatum.errors import SchemaTooNew, StoreUnavailable
from striatum.runtime import embedded
from striatum.runtime.config import Database, checked, open_store
from striatum.runtime.migrate import LATEST, migrate, schema_version

from .conftest import scratch_database


@pytest.fixture
def empty_dsn(admin_dsn: str) -> Iterator[str]:
    """A database no migration has touched."""
    with scratch_database(admin_dsn, f"striatum_e_{secrets.token_hex(6)}") as empty:
        yield empty


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The DSN of every connection opened from here on."""
    opened: list[str] = []
    real = psycopg.connect

    def counting(conninfo: str = "", **kwargs: Any) -> Any:
        opened.append(conninfo)
        return real(conninfo, **kwargs)

    monkeypatch.setattr(psycopg, "connect", counting)
    return opened


def _session(conn: Any) -> tuple[str, str]:
    row = conn.execute("SELECT current_user, current_setting('application_name')").fetchone()
    return str(row[0]), str(row[1])


def test_a_migrated_database_takes_one_connection_as_the_runtime_role(
        dsn: str, connections: list[str]) -> None:
    opened = open_store(dsn)
    try:
        assert connections == [dsn]
        assert opened.runtime_role
        assert _session(opened._conn) == ("striatum_runtime", "striatum")
    finally:
        opened.close()


def test_an_empty_database_is_migrated_on_the_commands_own_connection(
        empty_dsn: str, connections: list[str]) -> None:
    opened = open_store(empty_dsn)
    try:
        assert connections == [empty_dsn]
        # The role the migration created is usable at once, on the same session.
        assert opened.runtime_role
        assert _session(opened._conn) == ("striatum_runtime", "striatum")
        opened.execute("now")
    finally:
        opened.close()
    assert schema_version(empty_dsn) == LATEST


def test_an_unreachable_server_is_store_unavailable() -> None:
    with pytest.raises(StoreUnavailable, match="cannot reach PostgreSQL"):
        open_store("host=127.0.0.1 port=1 dbname=nothing connect_timeout=2")


def _embedded_home(monkeypatch: pytest.MonkeyPatch, home: Path, cached: str) -> None:
    monkeypatch.setenv("STRIATUM_HOME", str(home))
    home.mkdir(parents=True, exist_ok=True)
    (home / "runtime.dsn").write_text(cached + "\n", encoding="utf-8")


def test_a_running_embedded_server_is_probed_by_the_commands_own_connection(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        connections: list[str]) -> None:
    _embedded_home(monkeypatch, tmp_path / "home", dsn)

    def not_needed() -> str:
        raise AssertionError("the cached server answered: nothing to start")

    monkeypatch.setattr(embedded, "ensure_running", not_needed)
    opened = open_store(None)
    try:
        assert connections == [dsn]
        assert opened.dsn == dsn and opened.runtime_role
    finally:
        opened.close()


def test_a_face_checks_the_running_embedded_server_by_one_login_whose_dsn_it_keeps(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        connections: list[str]) -> None:
    _embedded_home(monkeypatch, tmp_path / "home", dsn)
    assert checked(None) == Database(dsn, embedded=True)
    assert connections == [dsn]
    connections.clear()
    assert checked(dsn) == Database(dsn, embedded=False)
    assert connections == [dsn]


def test_an_embedded_server_that_does_not_answer_is_started(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        connections: list[str]) -> None:
    gone = "host=127.0.0.1 port=1 dbname=striatum"
    _embedded_home(monkeypatch, tmp_path / "home", gone)
    started: list[bool] = []

    def start() -> str:
        started.append(True)
        return dsn

    monkeypatch.setattr(embedded, "ensure_running", start)
    opened = open_store(None)
    try:
        assert started == [True]
        assert connections == [gone, dsn]
        assert opened.dsn == dsn
    finally:
        opened.close()


def test_a_database_a_newer_striatum_migrated_is_refused_and_left_alone(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO striatum.migrations (version, name, checksum) "
                     "VALUES (%s, 'from_the_future', 'x')", (LATEST + 1,))
    with pytest.raises(SchemaTooNew, match="newer than this striatum") as refused:
        open_store(dsn)
    assert refused.value.exit_code == 4
    with pytest.raises(SchemaTooNew):
        migrate(dsn)
    assert schema_version(dsn) == LATEST + 1


def _at_version(dsn: str, version: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Migrate a database only up to ``version``, as an older striatum left it."""
    from striatum.runtime import migrate as migrating

    older = [m for m in migrating.migrations() if m[0] <= version]
    with monkeypatch.context() as patched:
        patched.setattr(migrating, "migrations", lambda: older)
        patched.setattr(migrating, "LATEST", version)
        assert migrate(dsn).applied == list(range(1, version + 1))


def test_an_upgrade_says_that_it_migrates_and_what_the_migrations_said(
        empty_dsn: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Migration 0013 cannot validate its constraint over a payload that does not parse; it
    says so with a NOTICE, which the user sees on stderr, not psycopg's silence."""
    from striatum.runtime.migrate import ensure_migrated

    _at_version(empty_dsn, 12, monkeypatch)
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO striatum.repos (path) VALUES ('/x')")
        conn.execute("INSERT INTO striatum.events (repo_id, seq, type, payload, previous_hash, "
                     "row_hash) SELECT id, 1, 't', 'not json', 'p', 'h' FROM striatum.repos")
        capsys.readouterr()
        ensure_migrated(conn)
    said = capsys.readouterr().err
    assert f"striatum: migrating the schema from version 12 to {LATEST}" in said
    assert ("striatum: migration 0013: some events disagree with their payloads; doctor "
            "names them") in said, said
    assert schema_version(empty_dsn) == LATEST
    assert migrate(empty_dsn).notices == []


def test_migrations_need_no_temp_privilege(admin_dsn: str) -> None:
    """A hardened database may deny its owner temporary objects: no migration makes any."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    owner, name = f"striatum_o_{secrets.token_hex(6)}", f"striatum_e_{secrets.token_hex(6)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN')
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
            conn.execute(f'REVOKE TEMPORARY ON DATABASE "{name}" FROM PUBLIC, "{owner}"')
        params = conninfo_to_dict(admin_dsn)
        params.update(dbname=name, user=owner)
        as_owner = make_conninfo(**params)  # type: ignore[arg-type]
        with psycopg.connect(as_owner, autocommit=True) as conn:
            assert conn.execute("SELECT has_database_privilege(%s, 'TEMPORARY')",
                                (name,)).fetchone() == (False,)
        assert migrate(as_owner).applied[-1] == LATEST
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{owner}"')
