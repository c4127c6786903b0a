"""A hostile agent in a lane, next to an honest reviewer, on the embedded server.

The lane runs ``fake_agent.py hostile`` (examples/agents/hostile.py), which tries
every attack it can reach and reports each; these tests pin, attack by attack, what
succeeds and what fails today, as docs/security.md's table says (each assertion
names its row, ``R1``...). Today lanes still receive a DSN and, unless sandboxed, run
as the worker's OS user with its files in reach, so several attacks succeed: that is
the documented state, pinned here so that the day socket-only lanes land, these pins
are what must change. The sandboxed variant (``SANDBOXED``) pins the "embedded,
sandboxed" column.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from striatum.runtime.embedded import owner_dsn

from ..hostile import (
    assert_common_pins,
    attacked_workflow,
    other_workflow,
    outcome,
    read_report,
)
from .conftest import executable

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

class Home:
    """A striatum home of this test's own, its CLI, and the processes it started."""

    def __init__(self, root: Path, repo: Path) -> None:
        self.root, self.repo = root, repo
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith("STRIATUM_") and k != "PYTHONPATH"}
        self.env["STRIATUM_HOME"] = str(root)
        self.procs: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([executable(), "--repo", str(self.repo), *args],
                              env=self.env, capture_output=True, text=True, timeout=120)
        assert not check or done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def worker(self, name: str, *args: str) -> None:
        log = open(self.root.parent / f"{self.root.name}-{name}.log", "wb")  # noqa: SIM115
        self.procs.append(subprocess.Popen(
            [executable(), "--repo", str(self.repo), "worker", "--poll-seconds", "0.2", *args],
            env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
            start_new_session=True))
        log.close()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(timeout=30)
        self.cli("daemon", "stop", check=False)
        self.cli("db", "stop", check=False)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    root = Path(tempfile.mkdtemp(prefix="striatum-hostile-"))
    os.chmod(root, 0o755)  # the embedded server may run as its own system user
    repo = tmp_path / "repo"
    repo.mkdir()
    opened = Home(root, repo)
    try:
        yield opened
    finally:
        opened.close()
        shutil.rmtree(root, ignore_errors=True)


def start(home: Home, workflow: str) -> str:
    run_id = str(home.json("run", "prepare", "--workflow", workflow)["run"])
    home.json("run", "start", run_id)
    return run_id


def wait_ended(home: Home, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = home.json("run", "status", run_id)
        if status["status"] in ("completed", "failed", "cancelled"):
            return status
        assert time.monotonic() < deadline, f"run {run_id} did not end: {status}"
        time.sleep(1)


def attack(home: Home, tmp_path: Path, *worker_a: str) -> dict[str, Any]:
    """Run A: ``build`` on the hostile lane beside ``review`` on an honest reviewer that
    would reject, worked by a worker given ``worker_a``; run B, in the same database:
    ``held`` on an honest lane, ``spare`` ready. A daemon runs. Returns the hostile
    report, both run ids and the home."""
    home.json("daemon", "start")
    run_b = start(home, other_workflow(tmp_path / "other"))
    home.worker("b", "--run", run_b, "--concurrency", "1")
    run_a = start(home, attacked_workflow(tmp_path / "attacked"))
    home.worker("a", "--run", run_a, "--concurrency", "2", *worker_a)
    status = wait_ended(home, run_a, 400)
    return {"report": read_report(home.repo, run_a), "run_a": run_a, "run_b": run_b,
            "status": status}


@pytest.fixture
def attacked(home: Home, tmp_path: Path) -> dict[str, Any]:
    return attack(home, tmp_path)


def test_a_hostile_lane_beside_an_honest_reviewer(home: Home, attacked: dict[str, Any]
                                                 ) -> None:
    report, run_a, run_b = attacked["report"], attacked["run_a"], attacked["run_b"]
    # R1: the lane is handed the runtime role's DSN, and its password file is readable.
    assert outcome(report, "env.dsn") is True
    assert outcome(report, "file.pgpass") is True
    assert outcome(report, "db.connect") is True
    # R2: the runtime role is no superuser, and has nothing to RESET or SET ROLE to.
    assert outcome(report, "db.superuser") is False
    assert outcome(report, "db.reset_role_gains") is False
    for role in ("postgres", "pg_write_server_files", "pg_read_server_files"):
        assert outcome(report, "db.set_role", role) is False
    # R3: the append-only tables refuse every rewrite by the runtime role.
    for attack in ("update_events", "delete_events", "update_audit", "delete_audit",
                   "truncate_events", "truncate_audit", "disable_triggers"):
        assert outcome(report, f"db.{attack}") is False, attack
    assert_common_pins(report, run_a, run_b)  # R4-R10
    # R11: the daemon refuses a caller with no token, or with a lease of another job ...
    assert outcome(report, "daemon.reach") is True
    assert outcome(report, "daemon.no_token", run_a) is False
    assert outcome(report, "daemon.own_lease_on_other_job", f"{run_a}/review") is False
    # R12: ... but the principal token sits in the home, readable to the lane.
    assert outcome(report, "file.principal_token") is True
    assert outcome(report, "daemon.principal_token", run_a) is True
    # R15: other lanes' lease tokens are in their environment, which the same OS user
    # reads in /proc, no database needed.
    assert outcome(report, "proc.read_lease_tokens") is True
    # R16: there is nothing mounted over the home to undo.
    assert outcome(report, "sandbox.unmount") is False
    # R13: the owner's password is in the same file: the lane logs in as the superuser
    # and edits the record behind the triggers.
    assert outcome(report, "file.owner_password") is True
    assert outcome(report, "db.owner_login") is True
    assert outcome(report, "owner.superuser") is True
    assert outcome(report, "owner.edit_event") is True

    # The stolen verdict is the run's: the honest reviewer would have rejected.
    review = next(j for j in attacked["status"]["jobs"] if j["job"] == "review")
    assert attacked["status"]["status"] == "completed", attacked["status"]
    assert (review["verdict"], review["reason"]) == ("accept", "hostile: my own work is fine")

    # R14: what doctor sees afterwards: the owner's edit and the forged insert, as
    # tampering; the stolen verdict and completion, legal transitions under live
    # leases, not.
    done = home.cli("doctor", "--json", check=False)
    assert done.returncode != 0, done.stdout
    findings = json.loads(done.stdout)
    failed = [f for f in findings["findings"] if not f["ok"]]
    # Each chain names its first problem, and an illegal step stops the comparison of
    # the tables with the events: so one doctor shows that the record was tampered
    # with (the owner's edit, the forged event), not every change (the projection's).
    assert len(failed) == 2, failed
    edited = next(f for f in failed if f["check"] == "chain")
    assert "row was edited" in edited["message"], failed
    forged = next(f for f in failed if f["check"] == "replay")
    assert forged["seq"] > 1_000_000 and "'verdict'" in forged["message"], failed
    # The audit has the stolen verdict as the one verdict of the run, under the
    # reviewer's lease: nothing in the record tells it from the reviewer's own.
    with psycopg.connect(owner_dsn(home.json("db", "url")["dsn"])) as conn:
        verdicts = conn.execute("SELECT count(*) FROM striatum.audit_log "
                                "WHERE verb = 'job verdict' AND outcome = 'ok'").fetchone()
    assert verdicts == (1,), verdicts


# What the hostile lane achieves under the sandbox (worker --sandbox) on the embedded
# server, attack by attack: True succeeded, False tried and failed, None not tried (it
# needs a connection or a socket it did not get). The striatum home is hidden, and with
# it the server's socket folder (``<home>/pg``), pgpass and the daemon's runtime folder:
# the DSN the lane still carries (R1's first half) leads nowhere, so every database row
# fails here. On a server reached over the network the DSN still logs in, and R2, R4, R5,
# R6, R8 and R10 hold as without the sandbox (tests/integration/test_hostile.py) until
# lanes carry no DSN (socket-only lanes): then ``env.dsn`` flips to False, and a lane's
# own socket (STRIATUM_SOCKET, bound into the sandbox) turns ``daemon.reach`` True with
# R11's refusals tried and failing.
SANDBOXED: dict[str, bool | None] = {
    "env.dsn": True,  # R1: the DSN is in its environment ...
    "db.connect": False,  # ... but its socket folder and password are hidden
    "file.pgpass": False,  # R1, R13: the home is hidden
    "file.owner_password": False,
    "db.owner_login": False,  # R13
    "owner.edit_event": None,
    "db.superuser": None,  # R2
    "db.insert_event": None,  # R4
    "db.read_lease_tokens": False,  # R6: none read, with no connection
    "other_run.claim": None,  # R10
    "this_run.end_stolen_token": None,  # R8
    "replay.earlier_attempt": False,  # R9: the kept token, refused (no database here)
    "daemon.reach": False,  # R11: the runtime folder is hidden
    "file.principal_token": False,  # R12
    "daemon.principal_token": None,
    "proc.read_lease_tokens": False,  # R15: its own pid namespace
    "sandbox.unmount": False,  # R16: no capability to unmount what hides the home
}


def test_a_sandboxed_hostile_lane_beside_an_honest_reviewer(home: Home, tmp_path: Path
                                                           ) -> None:
    attacked = attack(home, tmp_path, "--sandbox")
    report = attacked["report"]
    tried = {a["attack"] for a in report}
    achieved = {attack: (outcome(report, attack) if attack in tried else None)
                for attack in SANDBOXED}
    assert achieved == SANDBOXED, report
    # Nothing of the record was reached: the honest reviewer's verdict is the run's, and
    # doctor finds nothing to report.
    review = next(j for j in attacked["status"]["jobs"] if j["job"] == "review")
    assert review["verdict"] == "reject", attacked["status"]
    done = home.cli("doctor", "--json", check=False)
    assert done.returncode == 0, done.stdout
