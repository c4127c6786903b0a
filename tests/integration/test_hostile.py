"""A hostile lane on a server of your own (team mode): the lane is handed its worker's
lane socket and its lease, never the worker's DSN, so what the DSN's user holds does
not matter to it. Pinned for the two DSNs a team can give its workers: a superuser's,
and a LOGIN role that is a member of ``striatum_runtime`` and nothing else
(docs/runtime.md's advice); the pins, row by row, are ``tests/hostile.py``'s. The
worker's own environment, which the same OS user reads in /proc, still holds its DSN
(R15): the sandbox closes that. What the lane can log in as beyond that depends on the
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
    assert_nothing_succeeds,
    assert_pins,
    attacked_workflow,
    other_workflow,
    read_report,
    server_pins,
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


def test_a_hostile_lane_holds_no_login_whatever_the_workers_dsn(
        worker_dsn: tuple[str, str], dsn: str, repo: Path, tmp_path: Path) -> None:
    _, given = worker_dsn
    report, run_a, run_b, status = _attack(given, repo, tmp_path)
    # The same pins for either DSN: the lane holds neither.
    assert_pins(report, server_pins(run_a, run_b))  # R1-R11, R15

    review = next(j for j in status["jobs"] if j["job"] == "review")
    assert (status["status"], review["verdict"]) == ("completed", "accept"), status
    # R14: nothing was tampered with: the lane had no login. The stolen verdict (R8)
    # is a legal transition under a live lease, which doctor cannot tell.
    done = cli(dsn, repo, "doctor", "--json")
    assert done.returncode == 0, done.stdout


def test_a_sandboxed_hostile_lane_achieves_nothing(dsn: str, repo: Path,
                                                   tmp_path: Path) -> None:
    """Socket-only lanes under the sandbox (worker --sandbox), on a server of your own:
    the lane holds no login, cannot see the worker's environment or the other lanes'
    (its own pid namespace), and every attack fails; the honest reviewer's verdict
    stands, and doctor finds nothing."""
    with runtime_member(dsn) as given:
        report, run_a, _, status = _attack(given, repo, tmp_path, "--sandbox")
    assert_nothing_succeeds(report)
    review = next(j for j in status["jobs"] if j["job"] == "review")
    assert review["verdict"] == "reject", status
    done = cli(dsn, repo, "doctor", "--json")
    assert done.returncode == 0, done.stdout
