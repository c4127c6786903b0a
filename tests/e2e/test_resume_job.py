"""``run resume --job`` through the installed command: two jobs handed to a human at
once, the second answered first by name, and the refusals' exit codes and documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli

pytestmark = pytest.mark.e2e


def two_reviews(tmp_path: Path) -> Path:
    """Two operator tasks side by side, each with a review that may send it back once,
    then a join that needs both reviews."""
    def review(task: str) -> dict[str, Any]:
        return {"id": f"check-{task}", "lane": "op", "kind": "review", "needs": [task],
                "prompt": {"text": "check"}, "revise": {"target": task, "max": 1}}
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps({
        "name": "two-reviews", "lanes": {"op": {"kind": "operator"}},
        "jobs": [{"id": "left", "lane": "op", "prompt": {"text": "left"}},
                 {"id": "right", "lane": "op", "prompt": {"text": "right"}},
                 review("left"), review("right"),
                 {"id": "join", "lane": "op", "needs": ["check-left", "check-right"],
                  "prompt": {"text": "join"}}]}), encoding="utf-8")
    return path


def test_the_second_escalation_is_answered_first_by_name(cli: Cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()

    def ok(*args: str) -> dict[str, Any]:
        done = cli("--repo", str(repo), *args, "--json")
        assert done.returncode == 0, (args, done.stderr)
        return dict(json.loads(done.stdout))

    def claim_both(*jobs: str) -> dict[str, str]:
        leases = {}
        for _ in jobs:
            claimed = ok("job", "claim", "--run", run_id)
            leases[claimed["job"]] = claimed["lease"]
        assert sorted(leases) == sorted(jobs)
        return leases

    run_id = ok("run", "prepare", "--workflow", str(two_reviews(tmp_path)),
                "--start")["run"]
    # Both reviews ask for a revision twice: the second time, with their budget spent,
    # each is handed to a human; the run blocks on the first.
    for _ in range(2):
        for job, lease in claim_both("left", "right").items():
            ok("job", "complete", "--run", run_id, "--job", job, "--lease", lease)
        for job, lease in claim_both("check-left", "check-right").items():
            ok("job", "verdict", "needs_revision", "--run", run_id, "--job", job,
               "--lease", lease, "--reason", "not yet")
    left, right = "check-left", "check-right"
    why = ok("why", run_id)
    commands = {h["job"]: h["command"] for h in why["holds"] if h["kind"] == "escalated"}
    assert commands == {job: f"striatum run resume {run_id} --job {job} "
                             "--decision accept|fail|revise" for job in (left, right)}
    assert why["next"] == commands[left]  # the run is blocked on the first

    view = ok("run", "resume", run_id, "--job", right, "--decision", "revise",
              "--reason", "try right again")
    jobs = {j["job"]: j["status"] for j in view["jobs"]}
    assert (view["status"], view["blocked_on"]) == ("blocked", left)
    assert jobs == {"left": "succeeded", left: "awaiting_decision", "right": "ready",
                    right: "pending", "join": "pending"}

    for job, code, error in ((right, 4, "not_waiting"), ("join", 4, "not_waiting"),
                             ("nope", 3, "not_found")):
        refused = cli("--repo", str(repo), "run", "resume", run_id, "--job", job,
                      "--decision", "accept", "--json")
        assert refused.returncode == code, refused.stderr
        assert not refused.stdout
        document = json.loads(refused.stderr)
        assert document["error"] == error, document
        assert f"waiting for `run resume`: {left}" in document["hint"], document
    both = cli("--repo", str(repo), "run", "resume", run_id, "--job", left,
               "--raise-budget", "max_job_runs=9")
    assert both.returncode == 1 and "--job" in both.stderr and "Traceback" not in both.stderr

    events = ok("run", "events", run_id)["events"]
    resumed = [e for e in events if e["type"] == "run.resume"]
    assert [e["payload"]["data"]["job"] for e in resumed] == [right]

    view = ok("run", "resume", run_id, "--decision", "accept", "--reason", "left is fine")
    assert view["status"] == "running"
    assert {j["job"]: j["status"] for j in view["jobs"]}[left] == "succeeded"
    doctor = cli("--repo", str(repo), "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
