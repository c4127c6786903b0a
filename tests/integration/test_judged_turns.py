"""Verdicts bound to what was judged, at their edges, on a real PostgreSQL: two accepts
that lapse at once and each wait their turn for a human, the tree a reviewer was claimed
against (not the one it left), and a needs_revision accepted by ``on_exhausted: accept``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from striatum.errors import NotFound, NotWaiting
from striatum.runtime import judged, leases, runs
from striatum.runtime.doctor import doctor
from striatum.runtime.inbox import inbox
from striatum.runtime.store import Store
from striatum.runtime.why import explain
from striatum.server import schemas

from .helpers import owner_connection, start_run, statuses, to_checkpoint, write_workflow
from .test_judged import claim, finish, git_repo, payloads, publish, republish, workflow


def two_reviews(directory: Path) -> str:
    """draft -> check and audit (reviews of draft.md, no revise) -> apply."""
    def review(name: str) -> dict[str, Any]:
        return {"id": name, "lane": "reviewer", "kind": "review", "needs": ["draft"],
                "prompt": {"text": "judge {{ artifacts['draft.md'] }}"},
                "consumes": ["draft.md"]}
    return write_workflow(directory, {
        "name": "two-reviews",
        "lanes": {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
        "jobs": [{"id": "draft", "lane": "coder", "prompt": {"text": "draft"},
                  "produces": ["draft.md"]}, review("check"), review("audit"),
                 {"id": "apply", "lane": "coder", "needs": ["check", "audit"],
                  "prompt": {"text": "apply"}, "consumes": ["draft.md"]}]})


def two_lapsed(store: Store, dsn: str, repo: Path, tmp_path: Path) -> tuple[str, str, str]:
    """A run of ``two_reviews`` whose two accepts lapsed at once: the run, the review it
    is blocked on, and the other one, waiting too."""
    run_id = start_run(store, two_reviews(tmp_path / "wf"), repo)
    taken = claim(store, run_id, "draft")
    publish(store, tmp_path, taken, "draft.md", "the draft\n")
    leases.complete(store, run_id, "draft", taken.token)
    for name in ("check", "audit"):
        review = claim(store, run_id, name)
        leases.verdict(store, run_id, name, review.token, "accept", "fine")
    republish(dsn, repo, run_id, "republished after both accepts\n")
    assert leases.claim(store, run_id, owner="agent") is None  # apply lapses, unstarted
    first = runs.status(store, run_id).run.blocked_on
    assert first in ("check", "audit")
    return run_id, first, "audit" if first == "check" else "check"


def test_two_accepts_that_lapse_at_once_each_reach_a_human_in_turn(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id, first, second = two_lapsed(store, dsn, repo, tmp_path)
    view = runs.status(store, run_id)
    assert view.run.status == "blocked"
    assert statuses(view)[second] == "awaiting_decision"
    # Both are named, each with what answers it: the second after the first.
    said = explain(store, run_id)
    assert [(h["kind"], h["job"]) for h in said["holds"]] == [
        ("lapsed", first), ("lapsed", second), ("needs", "apply")]
    holds = {h["job"]: h for h in said["holds"]}
    assert "after" not in holds[first]
    assert holds[second]["after"] == first
    assert f"blocks the run on {second} next" in holds[second]["text"]
    queue = inbox(store)
    for document, schema in ((said, schemas.RUN_WHY), (queue, schemas.INBOX)):
        Draft202012Validator(schema).validate(document)
    items = {i["job"]: i for i in queue["items"]}
    assert {job: i["kind"] for job, i in items.items()} == {"check": "lapsed",
                                                            "audit": "lapsed"}
    assert items[second]["after"] == first and "after" not in items[first]

    # Answering the first blocks the run on the second, which `run resume` then reaches.
    runs.resume(store, run_id, "accept", "the new draft is fine")
    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("blocked", second)
    assert statuses(view)[first] == "succeeded"
    assert [h["kind"] for h in explain(store, run_id)["holds"]][:1] == ["lapsed"]
    assert leases.claim(store, run_id, owner="agent") is None
    runs.resume(store, run_id, "accept", "the new draft is fine")
    finish(store, run_id, repo)


def test_the_tree_judged_is_the_one_the_reviewer_was_claimed_against(
        store: Store, repo: Path, tmp_path: Path) -> None:
    git_repo(repo)
    run_id = start_run(store, workflow(tmp_path / "wf", writes=True), repo)
    taken = claim(store, run_id, "draft")
    publish(store, tmp_path, taken, "draft.md", "the draft\n")
    (repo / "src" / "app.py").write_text("print('v1')\n", encoding="utf-8")
    leases.complete(store, run_id, "draft", taken.token)
    review = claim(store, run_id, "check")
    root = runs.get_run(store, run_id).artifact_root
    claimed = judged.tree_id(repo, root)
    # The reviewer edits what it reviews, then accepts.
    (repo / "src" / "app.py").write_text("print('the reviewer's own')\n", encoding="utf-8")
    left = judged.tree_id(repo, root)
    leases.verdict(store, run_id, "check", review.token, "accept", "looks right")
    accept = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][0]
    assert accept["data"]["judged"]["tree"] == claimed != left
    assert accept["data"]["judged"]["tree_at_verdict"] == left
    row = store._conn.execute("SELECT judged FROM striatum.verdicts WHERE run_id = %s",
                              (run_id,)).fetchone()
    assert row is not None and row[0] == accept["data"]["judged"]

    # Its edits were judged by no one: apply does not start, the reviewer runs again.
    found = leases.take(store, run_id, owner="w", lanes=["coder"], lane_kinds=None,
                        lease_seconds=60, check_run=True)
    assert isinstance(found, leases.Unprepared) and found.status == "lapsed"
    assert "during the review" in found.reason
    reset = [e for e in payloads(store, run_id, "check") if e["type"] == "job.reset"][-1]
    assert "during the review" in reset["data"]["lapsed"]
    hold = next(h for h in explain(store, run_id)["holds"] if h["job"] == "check")
    assert hold["kind"] == "ready" and "during the review" in hold["text"]
    again = claim(store, run_id, "check")
    assert again.iteration == 1

    # Judged as it now is (the reviewer's edit included), and left alone, it holds.
    leases.verdict(store, run_id, "check", again.token, "accept", "still right")
    second = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][-1]
    assert second["data"]["judged"]["tree"] == left
    assert "tree_at_verdict" not in second["data"]["judged"]
    finish(store, run_id, repo)


def republish_all(dsn: str, repo: Path, run_id: str, text: str) -> None:
    """Every publication of draft.md now names other bytes (the newest is what counts)."""
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with owner_connection(dsn) as conn:
        for (stored,) in conn.execute("SELECT stored_at FROM striatum.artifacts WHERE "
                                      "run_id = %s AND path = 'draft.md'", (run_id,)):
            (repo / stored).write_text(text, encoding="utf-8")
        conn.execute("UPDATE striatum.artifacts SET sha256 = %s WHERE run_id = %s "
                     "AND path = 'draft.md'", (sha, run_id))


def exhausted_accept(store: Store, repo: Path, tmp_path: Path) -> str:
    """A run whose check asked twice for a revision, the second time with its budget
    (1) spent, so ``on_exhausted: accept`` accepted the draft."""
    source = Path(workflow(tmp_path / "wf"))
    document = json.loads(source.read_text(encoding="utf-8"))
    document["jobs"][1]["revise"]["on_exhausted"] = "accept"
    source.write_text(json.dumps(document), encoding="utf-8")
    run_id = start_run(store, str(source), repo)
    for _ in range(2):
        taken = claim(store, run_id, "draft")
        publish(store, tmp_path, taken, "draft.md", f"draft at fence {taken.fence}\n")
        leases.complete(store, run_id, "draft", taken.token)
        review = claim(store, run_id, "check")
        leases.verdict(store, run_id, "check", review.token, "needs_revision", "shorter")
    done = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][-1]
    assert done["data"]["exhausted"] is True and done["state"]["verdict"] == "accept"
    return run_id


def test_an_exhausted_accept_binds_the_job_after_it_and_doctor_checks_it(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = exhausted_accept(store, repo, tmp_path)
    taken = claim(store, run_id, "apply")
    done = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][-1]
    used = [e for e in payloads(store, run_id, "apply") if e["type"] == judged.USED]
    assert [(u["data"]["review"], u["data"]["judged"], u["state"]["fence"]) for u in used] == [
        ("check", judged.digest(done["data"]["judged"]), taken.fence)]
    leases.complete(store, run_id, "apply", taken.token)
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]
    assert [f.message for f in report.findings if f.check == "verdicts"] == [
        "1 job start(s) ran on the digests their accepts name"]


def test_an_exhausted_accept_lapses_when_what_it_judged_changes(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = exhausted_accept(store, repo, tmp_path)
    republish_all(dsn, repo, run_id, "republished after the exhausted accept\n")
    assert leases.claim(store, run_id, owner="agent") is None  # apply does not start
    view = runs.status(store, run_id)
    # The budget is spent: a human decides on the work as it now is.
    assert (view.run.status, view.run.blocked_on) == ("blocked", "check")
    assert statuses(view) == {"draft": "succeeded", "check": "awaiting_decision",
                              "apply": "pending"}
    assert "apply" not in {e["job"] for e in payloads(store, run_id) if e["type"] == judged.USED}
    runs.resume(store, run_id, "accept", "the new draft is fine")
    finish(store, run_id, repo)


def test_the_second_of_two_waiting_jobs_is_answered_first_by_name(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id, first, second = two_lapsed(store, dsn, repo, tmp_path)
    # Each waiting job has the command that answers it by name, in why and the inbox.
    commands = {h["job"]: h["command"] for h in explain(store, run_id)["holds"]
                if h["kind"] == "lapsed"}
    assert commands == {job: f"striatum run resume {run_id} --job {job} "
                             "--decision accept|fail|revise" for job in (first, second)}
    assert {i["job"]: i["command"] for i in inbox(store)["items"]} == commands
    assert [(w.job, w.command) for w in runs.waiting(store, run_id)] == sorted(
        commands.items(), key=lambda kv: ["check", "audit"].index(kv[0]))
    before = len(payloads(store, run_id))

    runs.resume(store, run_id, "accept", "the second is fine", job_id=second)
    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("blocked", first)
    assert statuses(view) == {"draft": "succeeded", first: "awaiting_decision",
                              second: "succeeded", "apply": "pending"}
    added = [(e["type"], e["job"], e["data"]) for e in payloads(store, run_id)[before:]]
    said = {"decision": "accept", "reason": "the second is fine", "by": "human"}
    assert added[0] == ("run.resume", None, {**said, "job": second})
    assert added[1][:2] == ("job.decide", second) and added[1][2]["decision"] == "accept"
    assert added[-1][:2] == ("run.block", None) and added[-1][2]["job"] == first
    assert [kind for kind, job, _ in added[2:-1] if job == first] == []  # it still waits
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]
    assert [h["job"] for h in explain(store, run_id)["holds"] if h["kind"] == "lapsed"] == [
        first]
    assert leases.claim(store, run_id, owner="agent") is None  # still blocked: nothing runs

    # A job that no longer waits, one that never did, one not in the run: refused, the
    # run untouched, the refusal naming what does wait.
    for job, error in ((second, NotWaiting), ("draft", NotWaiting), ("nope", NotFound)):
        with pytest.raises(error) as refused:
            runs.resume(store, run_id, "accept", "again", job_id=job)
        assert refused.value.hint is not None and f"run resume`: {first}" in refused.value.hint
    assert refused.value.exit_code == 3 and refused.value.code == "not_found"
    assert len(payloads(store, run_id)) == before + len(added)

    runs.resume(store, run_id, "accept", "the first is fine too", job_id=first)
    finish(store, run_id, repo)


def test_a_job_is_not_answered_by_name_while_the_budget_holds_the_run(
        store: Store, repo: Path, tmp_path: Path) -> None:
    source = Path(two_reviews(tmp_path / "wf"))
    document = json.loads(source.read_text(encoding="utf-8"))
    document["budget"] = {"max_job_runs": 1}
    source.write_text(json.dumps(document), encoding="utf-8")
    run_id = start_run(store, str(source), repo)
    taken = claim(store, run_id, "draft")
    publish(store, tmp_path, taken, "draft.md", "the draft\n")
    leases.complete(store, run_id, "draft", taken.token)
    assert leases.claim(store, run_id, owner="agent") is None
    assert runs.status(store, run_id).run.blocked_on == "budget:max_job_runs"
    with pytest.raises(NotWaiting):
        runs.resume(store, run_id, "accept", "go", job_id="check")  # ready, not waiting
    with pytest.raises(NotFound):
        runs.resume(store, run_id, "accept", "go", job_id="nope")


def test_a_checkpoint_named_to_run_resume_is_pointed_to_checkpoint_decide(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = to_checkpoint(store, repo, tmp_path)  # running: a checkpoint blocks nothing
    with pytest.raises(NotWaiting) as refused:
        runs.resume(store, run_id, "accept", "go", job_id="decide")
    assert "is a checkpoint" in refused.value.message
    assert refused.value.hint is not None and "checkpoint decide" in refused.value.hint
    assert runs.status(store, run_id).run.status == "running"
