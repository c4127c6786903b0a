"""A hostile lane on a server of your own (team mode): the lane is handed the worker's
DSN, so it holds whatever that DSN's user holds. Pinned for the two DSNs a team can
give its workers: a superuser's, and a LOGIN role that is a member of
``striatum_runtime`` and nothing else (docs/runtime.md's advice). Each assertion names
its docs/security.md row. What the lane can log in as beyond its DSN depends on the
server's pg_hba.conf, not on striatum, and is not pinned here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from ..hostile import (
    assert_common_pins,
    attacked_workflow,
    other_workflow,
    outcome,
    read_report,
)
from .worker_helpers import cli, cli_json, spawned, wait_for

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(params=["superuser", "runtime-member"])
def worker_dsn(request: pytest.FixtureRequest, dsn: str) -> Iterator[tuple[str, str]]:
    """(kind, the DSN the workers are given)."""
    if request.param == "superuser":
        with psycopg.connect(dsn) as conn:
            superuser = conn.execute("SELECT rolsuper FROM pg_roles "
                                     "WHERE rolname = current_user").fetchone()
        if not (superuser and superuser[0]):
            pytest.skip("the test server's DSN is not a superuser's")
        yield request.param, dsn
        return
    with runtime_member(dsn) as member:
        yield request.param, member


@contextmanager
def runtime_member(dsn: str) -> Iterator[str]:
    """The DSN of a new LOGIN role that is a member of striatum_runtime and nothing else,
    dropped afterwards."""
    if conninfo_to_dict(dsn).get("password"):
        pytest.skip("the test server asks for passwords: a DSN with one is not passed to lanes")
    role = f"striatum_hostile_{secrets.token_hex(4)}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN IN ROLE striatum_runtime')
    try:
        yield make_conninfo(dsn, user=role)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def _status(dsn: str, repo: Path, run_id: str) -> dict[str, Any]:
    found: dict[str, Any] = cli_json(dsn, repo, "run", "status", run_id)
    return found


def _attack(given: str, repo: Path, tmp_path: Path, *worker_a: str
            ) -> tuple[list[dict[str, Any]], str, str, dict[str, Any]]:
    """The hostile lane's report, run A, run B, and run A's status once it ended."""
    run_b = cli_json(given, repo, "run", "prepare", "--workflow",
                     other_workflow(tmp_path / "other"))["run"]
    cli_json(given, repo, "run", "start", run_b)
    run_a = cli_json(given, repo, "run", "prepare", "--workflow",
                     attacked_workflow(tmp_path / "attacked"))["run"]
    cli_json(given, repo, "run", "start", run_a)
    with spawned(tmp_path / "procs") as procs:
        procs.striatum("worker-b", given, repo, "worker", "--run", run_b,
                       "--poll-seconds", "0.2")
        procs.striatum("worker-a", given, repo, "worker", "--run", run_a, "--concurrency", "2",
                       "--poll-seconds", "0.2", *worker_a)
        status = wait_for(lambda: (s := _status(given, repo, run_a))["status"] in (
            "completed", "failed", "cancelled") and s, 400, f"run {run_a} to end", interval=1)
    return read_report(repo, run_a), run_a, run_b, status


def test_a_hostile_lane_holds_what_the_workers_dsn_holds(
        worker_dsn: tuple[str, str], dsn: str, repo: Path, tmp_path: Path) -> None:
    kind, given = worker_dsn
    report, run_a, run_b, status = _attack(given, repo, tmp_path)
    superuser = kind == "superuser"

    # R1: no password file, no home, no daemon: the DSN is all the lane is given.
    assert outcome(report, "env.dsn") is True
    assert outcome(report, "file.pgpass") is False
    assert outcome(report, "db.connect") is True
    assert outcome(report, "daemon.reach") is False
    # R2: a superuser's DSN is a superuser in the lane (RESET ROLE undoes the runtime's
    # SET ROLE); a member of striatum_runtime alone has nothing more to become.
    assert outcome(report, "db.superuser") is superuser
    assert outcome(report, "db.reset_role_gains") is superuser
    assert outcome(report, "db.set_role", "postgres") is superuser
    # R3: the triggers refuse every rewrite, the superuser's too; but the superuser can
    # turn them off.
    for attack in ("update_events", "delete_events", "update_audit", "delete_audit",
                   "truncate_events", "truncate_audit"):
        assert outcome(report, f"db.{attack}") is False, attack
    assert outcome(report, "db.disable_triggers") is superuser
    assert_common_pins(report, run_a, run_b)  # R4-R10
    # R15: the other lanes' tokens, from /proc, whatever the DSN.
    assert outcome(report, "proc.read_lease_tokens") is True

    review = next(j for j in status["jobs"] if j["job"] == "review")
    assert (status["status"], review["verdict"]) == ("completed", "accept"), status
    # R14: doctor fails (the forged event at least).
    done = cli(dsn, repo, "doctor", "--json")
    assert done.returncode != 0, done.stdout


def _sandbox_shows(dsn: str) -> bool:
    """Whether a sandboxed lane reaches the server of ``dsn``: over the network, or by a
    socket folder outside ``/tmp`` (the sandbox's /tmp is its own)."""
    host = str(conninfo_to_dict(dsn).get("host") or "/tmp")
    return not host.startswith("/") or not (host + "/").startswith("/tmp/")


def test_a_sandboxed_hostile_lane_holds_what_the_dsn_holds_and_nothing_else(
        dsn: str, repo: Path, tmp_path: Path) -> None:
    """The runtime member's DSN, the lanes under the sandbox (worker --sandbox). Each
    attack's outcome is data: the sandbox hides files and processes, not the server.
    Once lanes carry no DSN (socket-only lanes), every row that needs the DSN flips to
    False: R1's DSN half, R2, R4, R5, R6, R8 and R10."""
    with runtime_member(dsn) as given:
        report, run_a, run_b, status = _attack(given, repo, tmp_path, "--sandbox")
    reached = _sandbox_shows(given)
    held = None if not reached else True  # None: not tried, there was no connection
    expected: dict[tuple[str, str | None], bool | None] = {
        ("env.dsn", None): True,  # R1: the DSN is still handed over
        ("db.connect", None): reached,
        ("file.pgpass", None): False,
        ("db.superuser", None): None if not reached else False,  # R2
        ("db.insert_event", None): held,  # R4
        ("db.update_projection", f"{run_b}/held"): held,  # R5
        ("db.read_lease_tokens", None): reached,  # R6
        ("this_run.end_forged_token", f"{run_a}/review"): None if not reached else False,
        ("this_run.end_stolen_token", f"{run_a}/review"): held,  # R8
        ("other_run.end_stolen_token", f"{run_b}/held"): held,
        ("other_run.claim", None): held,  # R10
        ("daemon.reach", None): False,  # R11, R12: no home, no daemon
        ("proc.read_lease_tokens", None): False,  # R15: its own pid namespace
        ("sandbox.unmount", None): False,  # R16
    }
    tried = {(a["attack"], a["target"]) for a in report} | {(a["attack"], None)
                                                           for a in report}
    achieved = {key: (outcome(report, *key) if key in tried else None) for key in expected}
    assert achieved == expected, report
    review = next(j for j in status["jobs"] if j["job"] == "review")
    # With the DSN, a token read in striatum.jobs still steals the review (R8).
    assert review["verdict"] == ("accept" if reached else "reject"), status
