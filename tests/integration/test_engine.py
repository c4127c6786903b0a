"""The engine on a real PostgreSQL: runs of every example, revisions, checkpoints,
escalations, rejections and illegal transitions, through the core functions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.errors import EXIT_CONFLICT, EXIT_USAGE, Conflict, UsageError
from striatum.runtime import leases, runs
from striatum.runtime.doctor import doctor
from striatum.runtime.engine import LIVE_JOB_STATES
from striatum.runtime.store import Store
from tests.unit.strategies import valid_workflows

from .helpers import (
    EXAMPLES,
    Agent,
    compiled_jobs,
    event_types,
    example,
    planned_worst_case,
    scripted,
    start_run,
    statuses,
    write_workflow,
)


def spend_every_budget(store: Store, run_id: str) -> dict[str, list[str]]:
    """Each reviewer with a budget asks for a revision until it is spent, then accepts."""
    return {job_id: ["needs_revision"] * spec["revise"]["max"]
            for job_id, spec in compiled_jobs(store, run_id).items() if spec["revise"]}


def claim_next(store: Store, run_id: str, owner: str = "agent") -> leases.Claim:
    claim = leases.claim(store, run_id, owner=owner)
    assert claim is not None, runs.status(store, run_id).to_json()
    return claim


def assert_doctor_ok(store: Store, repo: Path) -> None:
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def assert_refused(exc: pytest.ExceptionInfo[Any], state: str) -> None:
    assert exc.value.exit_code == EXIT_CONFLICT
    assert repr(state) in exc.value.message
    assert exc.value.details.get("state") == state


def drawing_agent(store: Store, run_id: str, workdir: Path, data: st.DataObject) -> Agent:
    """An agent whose verdicts and checkpoint choices hypothesis draws."""
    specs = compiled_jobs(store, run_id)

    def verdict(claim: leases.Claim) -> str:
        options = ["accept", "needs_revision", "reject"] if specs[claim.job]["revise"] \
            else ["accept", "reject"]
        return str(data.draw(st.sampled_from(options), label=f"{claim.job}@{claim.iteration}"))

    def choose(job_id: str, options: list[str]) -> str:
        return str(data.draw(st.sampled_from(options), label=job_id))

    return Agent(store, run_id, workdir, verdict=verdict, choose=choose)


# -- every example, to completion ---------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_example_with_every_budget_spent_runs_exactly_its_worst_case(
        store: Store, repo: Path, tmp_path: Path, name: str) -> None:
    run_id = start_run(store, example(name), repo)
    agent = Agent(store, run_id, tmp_path, verdict=scripted(spend_every_budget(store, run_id)))
    view = agent.drive()
    assert view.run.status == "completed", view.to_json()
    assert all(job.status == "succeeded" for job in view.jobs)
    assert view.run.worst_case == planned_worst_case(example(name))
    # Every job of every example runs when each checkpoint continues, and no example
    # has a side branch off a revision target, so the bound is reached exactly.
    assert view.executions == view.run.worst_case
    assert len(agent.steps) == view.executions  # claims plus checkpoint decisions
    assert_doctor_ok(store, repo)


def test_code_change_worst_case_is_five_executions(store: Store, repo: Path,
                                                    tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    view = Agent(store, run_id, tmp_path, verdict=scripted({"check": ["needs_revision"]})).drive()
    assert (view.run.status, view.run.worst_case, view.executions) == ("completed", 5, 5)
    assert {j.job_id: j.executions for j in view.jobs} == {"draft": 2, "check": 2, "apply": 1}


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_where_every_review_accepts_runs_each_job_once(
        store: Store, repo: Path, tmp_path: Path, name: str) -> None:
    run_id = start_run(store, example(name), repo)
    view = Agent(store, run_id, tmp_path).drive()
    assert view.run.status == "completed"
    assert [j.executions for j in view.jobs] == [1] * len(view.jobs)
    assert [j.iteration for j in view.jobs] == [0] * len(view.jobs)
    assert view.executions <= view.run.worst_case


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(EXAMPLES), data=st.data())
def test_random_verdicts_always_terminate_within_the_worst_case(
        store: Store, repo: Path, tmp_path: Path, name: str, data: st.DataObject) -> None:
    run_id = start_run(store, example(name), repo)
    view = drawing_agent(store, run_id, tmp_path, data).drive()
    assert view.run.status in ("completed", "failed", "blocked"), view.to_json()
    assert view.executions <= view.run.worst_case
    found = statuses(view)
    if view.run.status == "completed":
        assert set(found.values()) <= {"succeeded", "skipped"}
    elif view.run.status == "failed":
        assert not set(found.values()) & set(LIVE_JOB_STATES), found
    else:
        assert view.run.blocked_on is not None
        assert found[view.run.blocked_on] == "awaiting_decision"
        assert leases.claim(store, run_id, owner="agent") is None
    report = doctor(store)
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(document=valid_workflows(max_jobs=8), data=st.data())
def test_random_workflows_never_stall_and_replay(
        store: Store, repo: Path, tmp_path: Path, document: dict[str, Any],
        data: st.DataObject) -> None:
    """A completion resolves only the dependents of what it settled (and a skip's, on): in
    any workflow shape, with any verdicts and choices, no pending job is left waiting on
    needs that are all settled, and the run ends once every job has."""
    workflow = write_workflow(tmp_path / f"wf-{data.draw(st.integers(0, 10**9))}", document)
    run_id = start_run(store, workflow, repo)
    view = drawing_agent(store, run_id, tmp_path, data).drive()
    found = statuses(view)
    assert view.run.status in ("completed", "failed", "blocked"), (view.to_json(), document)
    if view.run.status == "completed":
        assert set(found.values()) <= {"succeeded", "skipped"}, found
    assert view.executions <= view.run.worst_case
    assert_doctor_ok(store, repo)


def test_a_skip_reaches_a_dependent_listed_before_its_need_in_the_file(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """Found by the test above: j7 needs j4, but comes first in the file. When j1's
    completion skips j4 (j0's choice allows neither), j7 must be looked at after j4, in
    topological order, or it waits forever."""
    document = {"name": "w", "lanes": {"a": {"command": ["x"]}, "b": {"command": ["y"]}},
                "jobs": [{"id": "j0", "lane": "a", "kind": "checkpoint",
                          "choices": {"go": [], "stop": []}},
                         {"id": "j7", "lane": "a", "needs": ["j0", "j1", "j4"]},
                         {"id": "j2", "lane": "a"}, {"id": "j3", "lane": "a"},
                         {"id": "j4", "lane": "a", "kind": "review", "needs": ["j0", "j1"]},
                         {"id": "j5", "lane": "a"}, {"id": "j6", "lane": "a"},
                         {"id": "j1", "lane": "a"}]}
    run_id = start_run(store, write_workflow(tmp_path / "wf", document), repo)
    runs.decide(store, run_id, "j0", "go")
    view = Agent(store, run_id, tmp_path).drive()
    assert view.run.status == "completed", view.to_json()
    assert statuses(view)["j7"] == statuses(view)["j4"] == "skipped"
    assert_doctor_ok(store, repo)


# -- a revision -----------------------------------------------------------------------------

def test_code_change_revision_reruns_the_draft_with_the_reviewers_reason(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    agent = Agent(store, run_id, tmp_path,
                  verdict=scripted({"check": ["needs_revision", "accept"]}))
    view = agent.drive()
    assert view.run.status == "completed"
    jobs = {j.job_id: j for j in view.jobs}
    assert (jobs["draft"].iteration, jobs["check"].iteration, jobs["apply"].iteration) == (1, 1, 0)
    assert jobs["check"].revisions_used == 1

    first, second = agent.claims_of("draft")
    sent_back = agent.claims_of("check")[0]
    assert (first.iteration, second.iteration, sent_back.outcome) == (0, 1, "needs_revision")
    assert sent_back.reason and sent_back.reason in Path(second.prompt_file or "").read_text()
    assert sent_back.reason not in Path(first.prompt_file or "").read_text()
    assert "sent the previous draft back" not in Path(first.prompt_file or "").read_text()

    rows = store._conn.execute(
        "SELECT job_id, iteration, path, stored_at, sha256 FROM striatum.artifacts "
        "WHERE run_id = %s AND job_id = 'draft' ORDER BY iteration", (run_id,)).fetchall()
    assert [tuple(r[:3]) for r in rows] == [("draft", 0, "draft.md"), ("draft", 1, "draft.md")]
    assert rows[0][3] != rows[1][3]
    for row in rows:
        stored = repo / row[3]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == row[4]
        assert f"iteration {row[1]}" in stored.read_text()
    # The second review reads the second draft, not the first.
    second_check = agent.claims_of("check")[1]
    assert "draft iteration 1" in Path(second_check.prompt_file or "").read_text()
    assert event_types(store, run_id, "draft").count("job.reset") == 1


def test_a_revision_resets_a_side_branch_of_its_target_even_while_it_is_leased(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """The region is the target and what hangs off it outside the reviewer's descendants:
    a side branch already running when the reviewer sends work back runs again, its old
    lease is fenced off, and the run still stays within the worst case."""
    document = {
        "name": "side-branch",
        "lanes": {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
        "jobs": [
            {"id": "draft", "lane": "coder", "prompt": {"text": "d"}, "produces": ["d.md"]},
            {"id": "side", "lane": "coder", "needs": ["draft"], "prompt": {"text": "s"}},
            {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
             "prompt": {"text": "c"}, "consumes": ["d.md"],
             "revise": {"target": "draft", "max": 1}},
            {"id": "apply", "lane": "coder", "needs": ["check", "side"],
             "prompt": {"text": "a"}}]}
    run_id = start_run(store, write_workflow(tmp_path / "wf", document), repo)
    agent = Agent(store, run_id, tmp_path, verdict=scripted({"check": ["needs_revision"]}))
    agent.act(claim_next(store, run_id))
    side, check = claim_next(store, run_id, "side-holder"), claim_next(store, run_id)
    assert (side.job, check.job) == ("side", "check")
    agent.act(check)
    found = statuses(runs.status(store, run_id))
    assert found == {"draft": "ready", "side": "pending", "check": "pending", "apply": "pending"}
    with pytest.raises(leases.LeaseLost):
        leases.complete(store, run_id, "side", side.token)
    view = agent.drive()
    assert view.run.status == "completed"
    assert {j.job_id: j.executions for j in view.jobs} == {"draft": 2, "side": 2, "check": 2,
                                                           "apply": 1}
    assert view.executions == view.run.worst_case == 7
    assert_doctor_ok(store, repo)


# -- checkpoints ----------------------------------------------------------------------------

def _to_the_checkpoint(store: Store, run_id: str, agent: Agent) -> None:
    for expected in ("analysis", "review"):
        claim = claim_next(store, run_id)
        assert claim.job == expected
        agent.act(claim)


def test_checkpoint_pauses_the_run_until_a_human_decides_continue(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("human-checkpoint"), repo)
    agent = Agent(store, run_id, tmp_path)
    _to_the_checkpoint(store, run_id, agent)
    view = runs.status(store, run_id)
    assert view.run.status == "running"
    assert statuses(view) == {"analysis": "succeeded", "review": "succeeded",
                              "decide": "awaiting_decision", "implement": "pending"}
    assert leases.claim(store, run_id, owner="agent") is None
    assert leases.claim(store, run_id, owner="human", lane="principal") is None
    assert statuses(runs.status(store, run_id)) == statuses(view)

    tx = runs.decide(store, run_id, "decide", "continue")
    assert tx.run.status == "running" and tx.jobs["implement"].status == "ready"
    claim = claim_next(store, run_id)
    assert claim.job == "implement"
    agent.act(claim)
    view = runs.status(store, run_id)
    assert view.run.status == "completed"
    assert {j.job_id: j.chosen for j in view.jobs}["decide"] == "continue"
    assert view.executions == 4


def test_checkpoint_cancel_skips_the_branch_and_completes_the_run(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("human-checkpoint"), repo)
    _to_the_checkpoint(store, run_id, Agent(store, run_id, tmp_path))
    tx = runs.decide(store, run_id, "decide", "cancel")
    assert tx.run.status == "completed"
    view = runs.status(store, run_id)
    assert statuses(view) == {"analysis": "succeeded", "review": "succeeded",
                              "decide": "succeeded", "implement": "skipped"}
    assert view.executions == 3
    assert "job.skip" in event_types(store, run_id, "implement")
    assert_doctor_ok(store, repo)


def test_checkpoint_refuses_an_unknown_choice_and_changes_nothing(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("human-checkpoint"), repo)
    _to_the_checkpoint(store, run_id, Agent(store, run_id, tmp_path))
    before = runs.status(store, run_id).to_json()
    with pytest.raises(UsageError) as exc:
        runs.decide(store, run_id, "decide", "maybe")
    assert exc.value.exit_code == EXIT_USAGE
    assert "maybe" in exc.value.message and "continue" in (exc.value.hint or "")
    assert runs.status(store, run_id).to_json() == before


def test_decide_on_a_job_that_is_not_awaiting_a_decision_is_a_conflict(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("human-checkpoint"), repo)
    with pytest.raises(Conflict) as exc:
        runs.decide(store, run_id, "decide", "continue")
    assert_refused(exc, "pending")
    _to_the_checkpoint(store, run_id, Agent(store, run_id, tmp_path))
    with pytest.raises(Conflict):
        runs.decide(store, run_id, "review", "continue")  # a review, not a checkpoint
    runs.decide(store, run_id, "decide", "continue")
    events_before = len(runs.events(store, run_id))
    with pytest.raises(Conflict) as exc:
        runs.decide(store, run_id, "decide", "cancel")
    assert exc.value.details.get("state") == "succeeded"
    assert len(runs.events(store, run_id)) == events_before
    assert statuses(runs.status(store, run_id))["implement"] == "ready"


# -- escalation and on_exhausted ------------------------------------------------------------

def _blocked_code_change(store: Store, repo: Path, tmp_path: Path) -> tuple[str, Agent]:
    run_id = start_run(store, example("code-change"), repo)
    agent = Agent(store, run_id, tmp_path,
                  verdict=scripted({"check": ["needs_revision", "needs_revision"]}))
    view = agent.drive()
    assert view.run.status == "blocked", view.to_json()
    assert view.run.blocked_on == "check"
    assert statuses(view) == {"draft": "succeeded", "check": "awaiting_decision",
                              "apply": "pending"}
    assert view.executions == 4
    assert leases.claim(store, run_id, owner="agent") is None
    return run_id, agent


def test_exhausted_budget_escalates_then_resume_accept_completes(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id, agent = _blocked_code_change(store, repo, tmp_path)
    tx = runs.resume(store, run_id, "accept", "good enough")
    assert (tx.run.status, tx.run.blocked_on) == ("running", None)
    view = agent.drive()
    assert view.run.status == "completed"
    assert [s.job for s in agent.steps][-1] == "apply"
    assert view.executions == 5
    types = event_types(store, run_id)
    assert types.index("run.block") < types.index("run.resume") < types.index("run.complete")
    assert_doctor_ok(store, repo)


def test_exhausted_budget_escalates_then_resume_fail_fails_the_run(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id, _ = _blocked_code_change(store, repo, tmp_path)
    tx = runs.resume(store, run_id, "fail", "not worth it")
    assert (tx.run.status, tx.run.blocked_on) == ("failed", None)
    assert statuses(runs.status(store, run_id)) == {"draft": "succeeded", "check": "failed",
                                                    "apply": "cancelled"}
    assert_doctor_ok(store, repo)


def test_exhausted_budget_escalates_then_resume_revise_grants_one_more_pass(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id, _ = _blocked_code_change(store, repo, tmp_path)
    tx = runs.resume(store, run_id, "revise", "one more try")
    assert tx.run.status == "running"
    assert (tx.jobs["draft"].status, tx.jobs["draft"].iteration) == ("ready", 2)
    assert tx.jobs["check"].revisions_used == 1  # a human's grant spends no budget
    resets = [e for e in runs.events(store, run_id) if e["type"] == "job.reset"]
    assert resets[-1]["payload"]["data"]["granted"] is True
    agent = Agent(store, run_id, tmp_path)
    for expected in ("draft", "check", "apply"):
        assert agent.act(claim_next(store, run_id)).job == expected
    view = runs.status(store, run_id)
    assert view.run.status == "completed"
    assert view.executions == 7  # beyond the plan's 5, by the human's decision


def test_a_granted_pass_that_needs_revision_again_escalates_again(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id, _ = _blocked_code_change(store, repo, tmp_path)
    runs.resume(store, run_id, "revise", "one more try")
    agent = Agent(store, run_id, tmp_path, verdict=scripted({"check": ["needs_revision"]}))
    agent.act(claim_next(store, run_id))
    agent.act(claim_next(store, run_id))
    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("blocked", "check")


def test_on_exhausted_fail_fails_the_run(store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("support-ledger"), repo)
    agent = Agent(store, run_id, tmp_path,
                  verdict=scripted({"final-review": ["needs_revision", "needs_revision"]}))
    view = agent.drive()
    assert (view.run.status, view.run.blocked_on) == ("failed", None)
    jobs = {j.job_id: j for j in view.jobs}
    assert (jobs["final-review"].status, jobs["final-review"].verdict) == ("failed",
                                                                          "needs_revision")
    assert jobs["final-review"].revisions_used == 1
    assert view.executions == 8 <= view.run.worst_case
    assert event_types(store, run_id)[-1] == "run.fail"


def test_on_exhausted_accept_accepts_and_continues(store: Store, repo: Path,
                                                    tmp_path: Path) -> None:
    document = {
        "name": "lenient",
        "lanes": {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
        "jobs": [
            {"id": "draft", "lane": "coder", "prompt": {"text": "d"}, "produces": ["d.md"]},
            {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
             "prompt": {"text": "c"}, "consumes": ["d.md"],
             "revise": {"target": "draft", "max": 1, "on_exhausted": "accept"}},
            {"id": "apply", "lane": "coder", "needs": ["check"], "prompt": {"text": "a"}}]}
    run_id = start_run(store, write_workflow(tmp_path / "wf", document), repo)
    view = Agent(store, run_id, tmp_path,
                 verdict=scripted({"check": ["needs_revision", "needs_revision"]})).drive()
    assert view.run.status == "completed"
    assert view.executions == view.run.worst_case == 5


# -- reject ---------------------------------------------------------------------------------

def test_reject_fails_the_run_and_cancels_every_live_job(store: Store, repo: Path,
                                                         tmp_path: Path) -> None:
    run_id = start_run(store, example("multi-review"), repo)
    agent = Agent(store, run_id, tmp_path, verdict=scripted({"review-correctness": ["reject"]}))
    agent.act(claim_next(store, run_id))  # draft
    held = {c.job: c for c in (claim_next(store, run_id, f"reviewer-{i}") for i in range(3))}
    assert sorted(held) == ["review-correctness", "review-operability", "review-security"]
    agent.act(held.pop("review-correctness"))

    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("failed", None)
    assert statuses(view) == {
        "draft": "succeeded", "review-correctness": "failed", "review-operability": "cancelled",
        "review-security": "cancelled", "findings": "cancelled", "synthesis": "cancelled",
        "final-review": "cancelled"}
    assert all(j.lease_owner is None for j in view.jobs)
    open_leases = store._conn.execute(
        "SELECT count(*) FROM striatum.leases WHERE run_id = %s AND ended_at IS NULL",
        (run_id,)).fetchone()
    assert open_leases == (0,)
    for claim in held.values():
        with pytest.raises(leases.LeaseLost):
            leases.verdict(store, run_id, claim.job, claim.token, "accept", "too late")
    assert (repo / "striatum" / "runs" / run_id / "manifest.json").is_file()
    assert_doctor_ok(store, repo)


# -- illegal transitions --------------------------------------------------------------------

def test_starting_a_run_twice_is_a_conflict_naming_its_state(store: Store,
                                                             repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    before = runs.events(store, run_id)
    with pytest.raises(Conflict) as exc:
        runs.start(store, run_id)
    assert_refused(exc, "running")
    assert runs.events(store, run_id) == before


def test_resuming_a_run_that_is_not_blocked_is_a_conflict(store: Store, repo: Path) -> None:
    run_id = runs.prepare(store, example("code-change"), str(repo), overrides={})
    with pytest.raises(Conflict) as exc:
        runs.resume(store, run_id, "accept", "nothing to resume")
    assert_refused(exc, "prepared")
    runs.start(store, run_id)
    with pytest.raises(Conflict) as exc:
        runs.resume(store, run_id, "accept", "nothing to resume")
    assert_refused(exc, "running")
    assert runs.status(store, run_id).run.status == "running"


def test_ended_runs_refuse_start_cancel_and_resume(store: Store, repo: Path,
                                                   tmp_path: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    Agent(store, run_id, tmp_path).drive()
    for verb in (lambda: runs.start(store, run_id),
                 lambda: runs.cancel(store, run_id, "too late"),
                 lambda: runs.resume(store, run_id, "accept", "too late")):
        with pytest.raises(Conflict) as exc:
            verb()
        assert_refused(exc, "completed")
    cancelled = runs.prepare(store, example("minimal"), str(repo), overrides={})
    runs.cancel(store, cancelled, "changed my mind")
    with pytest.raises(Conflict) as exc:
        runs.start(store, cancelled)
    assert_refused(exc, "cancelled")


def test_completing_a_job_twice_is_refused_and_changes_nothing(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    agent = Agent(store, run_id, tmp_path)
    claim = claim_next(store, run_id)
    agent.act(claim)
    before = (runs.status(store, run_id).to_json(), runs.events(store, run_id))
    # The lease ended with the first completion: the token no longer holds the job.
    with pytest.raises(leases.LeaseLost) as exc:
        leases.complete(store, run_id, claim.job, claim.token)
    assert "'succeeded'" in exc.value.message and exc.value.details["state"] == "succeeded"
    assert (runs.status(store, run_id).to_json(), runs.events(store, run_id)) == before
    assert event_types(store, run_id, "draft").count("job.complete") == 1


def test_a_task_takes_no_verdict_and_a_review_is_not_completed(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    agent = Agent(store, run_id, tmp_path)
    draft = claim_next(store, run_id)
    agent.publish_all(draft)
    with pytest.raises(Conflict):
        leases.verdict(store, run_id, "draft", draft.token, "accept", "not a review")
    leases.complete(store, run_id, "draft", draft.token)
    check = claim_next(store, run_id)
    with pytest.raises(Conflict):
        leases.complete(store, run_id, "check", check.token)
    with pytest.raises(UsageError):
        leases.verdict(store, run_id, "check", check.token, "maybe", "not a verdict")
    assert statuses(runs.status(store, run_id))["check"] == "leased"


def test_cancel_cancels_every_live_job(store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    claim = claim_next(store, run_id)
    tx = runs.cancel(store, run_id, "stop")
    assert tx.run.status == "cancelled"
    assert set(statuses(runs.status(store, run_id)).values()) == {"cancelled"}
    with pytest.raises(leases.LeaseLost):
        leases.complete(store, run_id, claim.job, claim.token)
    assert_doctor_ok(store, repo)


def test_deciding_a_checkpoint_twice_says_it_was_decided(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("human-checkpoint"), repo)
    _to_the_checkpoint(store, run_id, Agent(store, run_id, tmp_path))
    runs.decide(store, run_id, "decide", "continue")
    with pytest.raises(Conflict) as exc:
        runs.decide(store, run_id, "decide", "cancel")
    said = exc.value.message + " " + (exc.value.hint or "")
    assert "already decided" in said and "'continue'" in said, said
    assert "reset" not in said, said


def test_a_checkpoint_decided_while_the_run_is_blocked_releases_its_branch_on_resume(
        store: Store, repo: Path, tmp_path: Path) -> None:
    workflow = write_workflow(tmp_path, {
        "name": "blocked-and-deciding",
        "lanes": {"a": {"kind": "operator"}, "b": {"kind": "operator"}},
        "jobs": [{"id": "draft", "lane": "a", "prompt": {"text": "d"}},
                 {"id": "rev", "lane": "b", "kind": "review", "needs": ["draft"],
                  "prompt": {"text": "r"}, "revise": {"target": "draft", "max": 1}},
                 {"id": "chk", "lane": "a", "kind": "checkpoint",
                  "choices": {"go": ["after"], "stop": []}},
                 {"id": "after", "lane": "a", "needs": ["chk"], "prompt": {"text": "x"}}]})
    run_id = start_run(store, workflow, repo)
    agent = Agent(store, run_id, tmp_path, verdict=scripted({"rev": ["needs_revision"] * 2}),
                  choose=lambda job, options: "unused")
    while (claim := leases.claim(store, run_id, owner="agent")) is not None:
        agent.act(claim)
    assert runs.status(store, run_id).run.status == "blocked"
    runs.decide(store, run_id, "chk", "go")  # the human answers the checkpoint meanwhile

    runs.resume(store, run_id, "accept", "good enough")

    view = runs.status(store, run_id)
    assert statuses(view)["after"] == "ready", view.to_json()
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None and claim.job == "after"
