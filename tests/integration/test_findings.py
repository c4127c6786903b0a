"""A reviewer's finding ids are recorded with its verdict; a revision round that returns
the same ids as the round before is said by `why` and the inbox, and with
``on_repeat: escalate`` the review goes to a human instead of another revision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from striatum.runtime import leases, runs
from striatum.runtime.doctor import doctor
from striatum.runtime.inbox import inbox
from striatum.runtime.store import Store
from striatum.runtime.why import explain

from .worker_helpers import fake, git_init, start_run, work, write_workflow


def loop(directory: Path, lanes: dict[str, Any], **revise: Any) -> str:
    return write_workflow(directory, {
        "name": "loop", "lanes": lanes,
        "jobs": [{"id": "draft", "lane": "coder", "prompt": {"text": "Write it."},
                  "produces": ["draft.md"]},
                 {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                  "prompt": {"text": "Review it."},
                  "revise": {"target": "draft", "max": 3, **revise}}]})


def verdict_events(store: Store, run_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e["type"], e["payload"]["data"]) for e in runs.events(store, run_id)
            if e["job"] == "check" and e["type"] in ("job.reset", "job.escalate",
                                                     "job.complete")]


@pytest.mark.parametrize("through", [(), ("--cli",)], ids=["verdict.json", "job-verdict"])
def test_a_loop_returning_the_same_findings_escalates_instead_of_spending_its_budget(
        dsn: str, store: Store, repo: Path, tmp_path: Path, through: tuple[str, ...]) -> None:
    git_init(repo)
    lanes = {"coder": {"command": fake("work"), "timeout": 60},
             "reviewer": {"command": fake("review", "--findings", "F2,F1", *through),
                          "timeout": 60}}
    run_id = start_run(store, loop(tmp_path / "flow", lanes, on_repeat="escalate"), repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    said_by = "done by the agent" if through else "needs_revision"
    assert [(o.job, o.status) for o in outcomes] == [
        ("draft", "succeeded"), ("check", said_by), ("draft", "succeeded"), ("check", said_by)]
    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("blocked", "check")
    check = {j.job_id: j for j in view.jobs}["check"]
    # One revision spent of three: the repeat stopped the loop, not the budget.
    assert (check.status, check.iteration, check.revisions_used) == ("awaiting_decision", 1, 1)
    said = verdict_events(store, run_id)
    assert [kind for kind, _ in said] == ["job.reset", "job.escalate"]
    assert said[0][1]["findings"] == ["F1", "F2"] and "repeated" not in said[0][1]
    # With the digests of what the reviewer saw (it consumes no artifact here).
    assert said[1][1] == {"verdict": "needs_revision", "reason": "still wrong: F2, F1",
                          "findings": ["F1", "F2"], "repeated": True,
                          "judged": {"artifacts": {}}}

    hold = explain(store, run_id)["holds"][0]
    assert (hold["kind"], hold["job"], hold["by"], hold["findings"]) == (
        "escalated", "check", "repeat", ["F1", "F2"])
    assert "returned the same findings as the round before (F1, F2)" in hold["text"]
    items = inbox(store)["items"]
    assert [(i["kind"], i["job"], i.get("by")) for i in items] == [
        ("escalated", "check", "repeat")]
    assert doctor(store, None).ok

    # The human grants one more round (the existing escalation answer), and it runs.
    runs.resume(store, run_id, "revise", "try once more")
    claim = leases.claim(store, run_id, owner="t")
    assert claim is not None and claim.job == "draft"


def test_without_on_repeat_the_loop_goes_on_and_why_and_the_inbox_say_so(
        store: Store, repo: Path, tmp_path: Path) -> None:
    lanes = {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}}
    run_id = start_run(store, loop(tmp_path / "flow", lanes), repo)
    work_file = tmp_path / "draft.md"
    work_file.write_text("a draft\n", encoding="utf-8")

    def round_of(findings: tuple[str, ...] | None, outcome: str = "needs_revision") -> None:
        draft = leases.claim(store, run_id, owner="t")
        assert draft is not None and draft.job == "draft"
        leases.publish(store, run_id, "draft", draft.token, str(work_file), "draft.md")
        leases.complete(store, run_id, "draft", draft.token)
        check = leases.claim(store, run_id, owner="t")
        assert check is not None and check.job == "check"
        leases.verdict(store, run_id, "check", check.token, outcome, "not yet",
                       findings=findings)

    round_of(("a", "b"))
    assert explain(store, run_id)["holds"][0]["kind"] != "findings_repeated"
    round_of(("b", "c"))  # different ids: the loop moved
    assert not [i for i in inbox(store)["items"] if i["kind"] == "findings_repeated"]
    round_of(("c", "b"))  # the same set as the round before, in another order
    said = explain(store, run_id)
    assert said["status"] == "running"
    repeat = [h for h in said["holds"] if h["kind"] == "findings_repeated"]
    assert [(h["job"], h["findings"], h["command"]) for h in repeat] == [
        ("check", ["b", "c"], None)]
    assert "its revision loop is not converging" in repeat[0]["text"]
    assert said["summary"].endswith("review check returned the same findings as the round "
                                    "before")
    items = inbox(store)["items"]
    assert [(i["kind"], i["run"], i["job"]) for i in items] == [
        ("findings_repeated", run_id, "check")]
    # A review that names no findings is never a repeat, and ends the note.
    round_of(None, "accept")
    assert runs.status(store, run_id).run.status == "completed"
    assert inbox(store)["items"] == []
    assert [d.get("findings") for _, d in verdict_events(store, run_id)] == [
        ["a", "b"], ["b", "c"], ["b", "c"], None]
