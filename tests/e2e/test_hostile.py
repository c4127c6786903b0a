"""A hostile agent in a lane, next to an honest reviewer, on the embedded server.

The lane runs ``fake_agent.py hostile`` (examples/agents/hostile.py), which tries
every attack it can reach and reports each; these tests pin, attack by attack, what
succeeds and what fails today, as docs/security.md's table says (the pins are data,
row by row: ``tests/hostile.py``). A lane is handed its worker's lane socket and its
lease, no DSN, but runs unsandboxed as the worker's OS user: what it reads in /proc
(the other lanes' tokens, the worker's environment, so the home) still works, and
that is the documented state, pinned here so that the day the sandbox lands, these
pins are what must change.
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
    assert_nothing_succeeds,
    assert_pins,
    attacked_workflow,
    embedded_pins,
    other_workflow,
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
    assert_pins(report, embedded_pins(run_a, run_b))  # R1-R13, R15

    # The stolen verdict is the run's: the honest reviewer would have rejected.
    review = next(j for j in attacked["status"]["jobs"] if j["job"] == "review")
    assert attacked["status"]["status"] == "completed", attacked["status"]
    assert (review["verdict"], review["reason"]) == ("accept", "hostile: my own work is fine")

    # R14: what doctor sees afterwards: the owner's edit, as tampering; the stolen
    # verdict and completion, legal transitions under live leases, not. (The lane had
    # no login to forge an event or change a projection with.)
    done = home.cli("doctor", "--json", check=False)
    assert done.returncode != 0, done.stdout
    findings = json.loads(done.stdout)
    failed = [f for f in findings["findings"] if not f["ok"]]
    assert len(failed) == 1, failed
    assert failed[0]["check"] == "chain" and "row was edited" in failed[0]["message"], failed
    # The audit has the stolen verdict as the one verdict of the run, under the
    # reviewer's lease, through the lane socket: nothing in the record tells it from
    # the reviewer's own. Every refusal on a lane socket has its row.
    with psycopg.connect(owner_dsn(home.json("db", "url")["dsn"])) as conn:
        verdicts = conn.execute("SELECT actor FROM striatum.audit_log "
                                "WHERE verb = 'job verdict' AND outcome = 'ok'").fetchall()
        refused = conn.execute("SELECT verb FROM striatum.audit_log WHERE outcome = "
                               "'forbidden' AND actor LIKE '%% lane:none'").fetchall()
    assert len(verdicts) == 1 and verdicts[0][0].endswith(" lane:lease"), verdicts
    assert {"run.cancel", "run.status", "job.claim"} <= {r[0] for r in refused}, refused


def test_a_sandboxed_hostile_lane_beside_an_honest_reviewer(home: Home, tmp_path: Path
                                                           ) -> None:
    """Socket-only lanes under the sandbox on the embedded default with a daemon up: the
    home (pgpass, the daemon's tokens) is hidden, and with it the worker's environment and
    the other lanes (its own pid namespace): every attack fails."""
    attacked = attack(home, tmp_path, "--sandbox")
    assert_nothing_succeeds(attacked["report"])
    # Nothing of the record was reached: the honest reviewer's verdict is the run's, and
    # doctor finds nothing to report.
    review = next(j for j in attacked["status"]["jobs"] if j["job"] == "review")
    assert review["verdict"] == "reject", attacked["status"]
    done = home.cli("doctor", "--json", check=False)
    assert done.returncode == 0, done.stdout
