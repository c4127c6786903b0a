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
