"""The zero-set-up default through the installed command: no DSN, so the embedded server
starts on first use, is reused, and stops with `striatum db stop`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from striatum.runtime.embedded import owner_dsn

from .conftest import executable, private_home

pytestmark = pytest.mark.e2e

Embedded = Callable[..., Any]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    """`striatum ARGS --json` with no DSN and a striatum home of this test's own; the
    server it starts there is stopped when the test ends, pass or fail."""
    with private_home() as env:

        def run(*args: str) -> Any:
            done = subprocess.run([executable(), *args, "--json"], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (args, done.stderr)
            return json.loads(done.stdout)

        yield run


def test_the_embedded_server_starts_on_first_use_and_stops(embedded: Embedded) -> None:
    assert embedded("db", "status")["running"] is False
    assert embedded("run", "list") == {"runs": []}
    started = embedded("db", "status")
    assert started["running"] is True and isinstance(started["pid"], int)
    assert started["schema_version"] == started["latest"]
    assert embedded("run", "list") == {"runs": []}  # reused, not started again
    assert embedded("db", "status")["pid"] == started["pid"]
    assert embedded("db", "stop") == {"stopped": True}
    assert embedded("db", "status")["running"] is False
    assert embedded("db", "stop") == {"stopped": False}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0
                    or shutil.which("setpriv") is None,
                    reason="as root only (the server then runs as its own user), with setpriv")
def test_a_process_without_capabilities_reaches_the_server_after_every_start(
        embedded: Embedded, tmp_path: Path) -> None:
    """An agent's sandbox (codex's workspace-write) keeps root's uid but drops every
    capability, CAP_DAC_OVERRIDE with them: the socket's folder must let it in."""
    for _ in range(2):  # the first start, then a start after a stop
        embedded("run", "list")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
        env["STRIATUM_DSN"] = embedded("db", "url")["dsn"]
        done = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                               executable(), "run", "list", "--json"],
                              env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"runs": []}
        assert embedded("db", "stop") == {"stopped": True}


def _home_of(embedded_dsn: str) -> Path:
    passfile = conninfo_to_dict(embedded_dsn)["passfile"]
    return Path(str(passfile)).parent


def _refused(dsn: str) -> str:
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(dsn, connect_timeout=5).close()
    return str(refused.value)


def test_nobody_logs_in_to_the_embedded_server_without_a_password(
        embedded: Embedded) -> None:
    """The wheel's server trusts every local connection as its superuser; striatum's
    commands, and so the lanes they start, must get neither."""
    embedded("run", "list")
    dsn = embedded("db", "url")["dsn"]
    params = conninfo_to_dict(dsn)
    assert params["user"] == "striatum_runtime" and "password" not in params
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                           "FROM pg_roles WHERE rolname = current_user").fetchone()
        assert row == (False, False, False, False)
        # No role to become: a lane cannot RESET or SET its way to more.
        member_of = conn.execute("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r "
                                 "ON r.oid = m.member WHERE r.rolname = current_user"
                                 ).fetchone()
        assert member_of == (0,)
    home = _home_of(dsn)
    assert (home / "pgpass").stat().st_mode & 0o777 == 0o600
    hba = (home / "pg" / "pg_hba.conf").read_text(encoding="utf-8")
    assert "trust" not in hba.replace("# Written", "")
    for role in ("postgres", "striatum_runtime"):
        bare = f"host={params['host']} dbname=striatum user={role} passfile=/nonexistent"
        assert "password" in _refused(bare)
        assert "password" in _refused(bare + " password=guessed")
    # The owner's secret works, and migrating is its business alone.
    assert embedded("db", "migrate")["version"] == embedded("db", "status")["latest"]


def test_a_home_an_older_release_left_open_is_secured_at_its_next_start(
        embedded: Embedded) -> None:
    """Releases before password logins cached the superuser's DSN in pg.dsn and left
    pg_hba.conf trusting everyone: the next start closes both, keeping the data."""
    embedded("run", "list")
    dsn = embedded("db", "url")["dsn"]
    home, host = _home_of(dsn), str(conninfo_to_dict(dsn)["host"])
    superuser = f"postgresql://postgres:@/striatum?host={host}"
    with psycopg.connect(owner_dsn(dsn), autocommit=True) as conn:
        conn.execute("INSERT INTO striatum.repos (path) VALUES ('/kept')")
    embedded("db", "stop")
    pgdata = home / "pg"
    hba = pgdata / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all all 127.0.0.1/32 trust\n", encoding="utf-8")
    (home / "runtime.dsn").unlink(missing_ok=True)  # db stop removed it
    (home / "pgpass").unlink()
    (home / "pg.dsn").write_text(superuser + "\n", encoding="utf-8")

    assert embedded("run", "list") == {"runs": []}
    assert not (home / "pg.dsn").exists()
    assert "trust" not in hba.read_text(encoding="utf-8").replace("# Written", "")
    assert "password" in _refused(superuser)
    with psycopg.connect(embedded("db", "url")["dsn"]) as conn:
        assert conn.execute("SELECT path FROM striatum.repos WHERE path = '/kept'"
                            ).fetchone() == ("/kept",)


def test_a_lost_password_file_is_named_with_the_way_back(
        embedded: Embedded, tmp_path: Path) -> None:
    embedded("run", "list")
    home = _home_of(embedded("db", "url")["dsn"])
    (home / "pgpass").unlink()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STRIATUM_") and k != "PYTHONPATH"}
    env["STRIATUM_HOME"] = str(home)
    done = subprocess.run([executable(), "run", "list"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 6, done.stderr
    assert "refused the owner's password" in done.stderr
    assert "Traceback" not in done.stderr
    embedded("db", "stop")
    hba = home / "pg" / "pg_hba.conf"
    hba.write_text("local all all trust\n" + hba.read_text(encoding="utf-8"),
                   encoding="utf-8")
    assert embedded("run", "list") == {"runs": []}
    assert "trust" not in hba.read_text(encoding="utf-8").replace("# Written", "")


def test_the_server_runs_from_a_copy_in_the_home_not_from_the_virtualenv(
        embedded: Embedded) -> None:
    """A backend loads plpgsql from the install the first time it needs it: run from the
    virtualenv, the server would break when that virtualenv is removed (make clean)."""
    import psutil

    embedded("run", "list")
    home = _home_of(embedded("db", "url")["dsn"])
    pid = embedded("db", "status")["pid"]
    program = Path(psutil.Process(pid).exe())
    assert program.is_relative_to(home / "pgsql"), program
    assert sys.prefix not in str(program)
    assert embedded("doctor")["ok"] is True  # plpgsql works from the copy
