"""An agent hands its job to a human (`job escalate`): the job waits, the run blocks, the
reason is in the record, `why` and the inbox say it, and `run resume` answers it: accept
the job as it stands, fail the run, or grant another attempt; doctor stays clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from striatum.errors import Conflict
from striatum.runtime import leases, runs
from striatum.runtime.artifacts import stage
from striatum.runtime.doctor import doctor
from striatum.runtime.inbox import inbox
from striatum.runtime.store import Store
from striatum.runtime.why import explain

from ..unit.test_cli import invoke as cli
from .helpers import Agent, event_types, example, start_run
from .worker_helpers import write_workflow


def escalated(store: Store, repo: Path, reason: str = "the spec contradicts itself") -> str:
    run_id = start_run(store, example("code-change"), repo)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None and claim.job == "draft"
    tx = leases.escalate(store, run_id, "draft", claim.token, reason)
    assert tx.jobs["draft"].status == "awaiting_decision"
    assert (tx.run.status, tx.run.blocked_on) == ("blocked", "draft")
    return run_id


def test_an_escalated_job_blocks_its_run_and_every_face_says_why(store: Store,
                                                                  repo: Path) -> None:
    run_id = escalated(store, repo)
    said = explain(store, run_id)
    assert said["holds"][0]["kind"] == "escalated" and said["holds"][0]["by"] == "agent"
    assert "handed to a human by its agent: the spec contradicts itself" in said["summary"]
    assert said["next"] == f"striatum run resume {run_id} --job draft --decision accept|fail|revise"
    assert [(w.job, w.kind) for w in runs.waiting(store, run_id)] == [("draft", "escalation")]
    assert [(i["kind"], i["job"]) for i in inbox(store)["items"]] == [("escalated", "draft")]
    events = runs.events(store, run_id)
    escalation = next(e for e in events if e["type"] == "job.escalate")
    assert escalation["payload"]["data"] == {"reason": "the spec contradicts itself",
                                             "by": "agent"}


def test_accept_takes_the_job_as_it_stands_and_the_run_goes_on(store: Store, repo: Path,
                                                                tmp_path: Path) -> None:
    run_id = escalated(store, repo)
    with pytest.raises(Conflict, match="escalated before it published draft.md"):
        runs.resume(store, run_id, "accept", "nothing to accept yet")
    assert runs.status(store, run_id).run.status == "blocked"  # refused: nothing changed

    run_id = start_run(store, example("code-change"), repo)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    work = tmp_path / "draft.md"
    work.write_text("--- a\n+++ b\n")
    leases.escalate(store, run_id, "draft", claim.token, "is this what you meant?",
                    files=[stage(str(work), "draft.md")])
    runs.resume(store, run_id, "accept", "good enough, go on")
    view = runs.status(store, run_id)
    assert view.run.status == "running"
    assert {j.job_id: j.status for j in view.jobs}["draft"] == "succeeded"
    assert Agent(store, run_id, tmp_path).drive().run.status == "completed"
    assert doctor(store, None).ok


def test_revise_grants_another_attempt_beyond_the_plan_and_doctor_counts_it(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = escalated(store, repo)
    runs.resume(store, run_id, "revise", "clarified: follow section 2")
    again = leases.claim(store, run_id, owner="agent")
    assert again is not None and (again.job, again.attempt) == ("draft", 0)
    agent = Agent(store, run_id, tmp_path)
    agent.act(again)
    view = agent.drive()
    assert view.run.status == "completed" and view.granted == 1
    assert "job.reset" in event_types(store, run_id, "draft")
    report = doctor(store, None)
    assert report.ok, report.to_json()


def test_fail_ends_the_run_with_the_humans_reason(store: Store, repo: Path) -> None:
    run_id = escalated(store, repo)
    runs.resume(store, run_id, "fail", "not worth doing")
    assert explain(store, run_id)["holds"][0]["kind"] == "failed"
    assert "not worth doing" in runs.status(store, run_id).reason


def test_a_second_escalation_while_the_run_waits_is_refused_and_the_job_kept(
        store: Store, repo: Path, tmp_path: Path) -> None:
    flow = write_workflow(tmp_path / "flow", {
        "name": "pair", "lanes": {"agent": {"command": ["true"]}},
        "jobs": [{"id": job, "lane": "agent", "prompt": {"text": job}}
                 for job in ("left", "right")]})
    run_id = start_run(store, flow, repo)
    left, right = (leases.claim(store, run_id, owner=o) for o in ("a", "b"))
    assert left is not None and right is not None
    leases.escalate(store, run_id, left.job, left.token, "needs a human")
    with pytest.raises(Conflict, match="already waits for a human"):
        leases.escalate(store, run_id, right.job, right.token, "me too")
    jobs = {j.job_id: j.status for j in runs.status(store, run_id).jobs}
    assert jobs == {"left": "awaiting_decision", "right": "leased"}
    leases.complete(store, run_id, right.job, right.token)  # its holder may still end it


def test_the_cli_escalates_with_the_lanes_environment(store: Store, dsn: str,
                                                      repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    done = cli("--dsn", dsn, "job", "escalate", "--run", run_id, "--job", claim.job,
               "--lease", claim.token, "--reason", "which file?", "--json")
    assert done.code == 0, done.err
    assert json.loads(done.out)["run_status"] == "blocked"
    shown = cli("--dsn", dsn, "--repo", str(repo), "why", run_id)
    assert "handed to a human by its agent: which file?" in shown.out
