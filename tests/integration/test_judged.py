"""Verdicts bound to what was judged, on a real PostgreSQL: the digests a verdict records,
the accept that lapses when what it covers changes before the job that needs it starts,
and doctor's check that every such job ran on the digest its verdict names."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from striatum.runtime import judged, leases, runs
from striatum.runtime.audit import Event, append_events, verb
from striatum.runtime.doctor import doctor
from striatum.runtime.engine import apply_verdict
from striatum.runtime.inbox import inbox
from striatum.runtime.records import JobRow
from striatum.runtime.store import Store, fetch_one, send
from striatum.runtime.why import explain

from .helpers import owner_connection, start_run, statuses, write_workflow


def workflow(directory: Path, *, writes: bool = False, revise_max: int | None = 1) -> str:
    """draft -> check (a review of draft.md) -> apply."""
    draft: dict[str, Any] = {"id": "draft", "lane": "coder", "prompt": {"text": "draft"},
                             "produces": ["draft.md"]}
    if writes:
        draft["writes"] = ["src/**"]
    check: dict[str, Any] = {"id": "check", "lane": "reviewer", "kind": "review",
                             "needs": ["draft"],
                             "prompt": {"text": "check {{ artifacts['draft.md'] }}"},
                             "consumes": ["draft.md"]}
    if revise_max is not None:
        check["revise"] = {"target": "draft", "max": revise_max}
    return write_workflow(directory, {
        "name": "judged",
        "lanes": {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
        "jobs": [draft, check, {"id": "apply", "lane": "coder", "needs": ["check"],
                                "prompt": {"text": "apply"}, "consumes": ["draft.md"]}]})


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def git_repo(repo: Path) -> Path:
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.invalid")
    git(repo, "config", "user.name", "t")
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text("print('v0')\n", encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    return repo


def claim(store: Store, run_id: str, job: str) -> leases.Claim:
    found = leases.claim(store, run_id, owner="agent")
    assert found is not None and found.job == job, (found, statuses(runs.status(store, run_id)))
    return found


def publish(store: Store, tmp_path: Path, taken: leases.Claim, name: str, text: str) -> str:
    source = tmp_path / f"{taken.job}-{taken.fence}-{name}"
    source.write_text(text, encoding="utf-8")
    leases.publish(store, taken.run, taken.job, taken.token, str(source), name)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_accept(store: Store, run_id: str, tmp_path: Path, *, edit: Path | None = None) -> str:
    """Draft (editing ``edit`` when given) and accept it; the draft's sha256."""
    taken = claim(store, run_id, "draft")
    sha = publish(store, tmp_path, taken, "draft.md", f"draft at fence {taken.fence}\n")
    if edit is not None:
        edit.write_text("print('v1')\n", encoding="utf-8")
    leases.complete(store, run_id, "draft", taken.token)
    review = claim(store, run_id, "check")
    leases.verdict(store, run_id, "check", review.token, "accept", "looks right")
    return sha


def payloads(store: Store, run_id: str, job: str | None = None) -> list[dict[str, Any]]:
    """The hashed payloads of the run's events (of ``job``'s when given), in order."""
    return [e["payload"] for e in runs.all_events(store, run_id)
            if job is None or e["job"] == job]


def republish(dsn: str, repo: Path, run_id: str, text: str) -> str:
    """The draft's record now names other bytes (as a new publication of draft.md does)."""
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with owner_connection(dsn) as conn:
        stored = conn.execute("SELECT stored_at FROM striatum.artifacts WHERE run_id = %s "
                              "AND path = 'draft.md'", (run_id,)).fetchone()
        assert stored is not None
        (repo / stored[0]).write_text(text, encoding="utf-8")
        conn.execute("UPDATE striatum.artifacts SET sha256 = %s WHERE run_id = %s "
                     "AND path = 'draft.md'", (sha, run_id))
    return sha


def lapsed_run(store: Store, dsn: str, repo: Path, tmp_path: Path,
               revise_max: int | None = 1) -> str:
    """A run whose check accepted the draft, republished since."""
    run_id = start_run(store, workflow(tmp_path / "wf", revise_max=revise_max), repo)
    to_accept(store, run_id, tmp_path)
    republish(dsn, repo, run_id, "republished after the accept\n")
    return run_id


def finish(store: Store, run_id: str, repo: Path) -> None:
    """Run apply to the end; the run completes, within its bound, and doctor passes."""
    taken = claim(store, run_id, "apply")
    leases.complete(store, run_id, "apply", taken.token)
    view = runs.status(store, run_id)
    assert view.run.status == "completed"
    assert view.executions <= view.run.worst_case
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def claim_unchecked(store: Store, dsn: str, run_id: str) -> leases.Claim:
    """Forged: apply is claimed with the verdict's digests out of sight, so nothing checks
    them (they are put back after)."""
    with owner_connection(dsn) as conn:
        conn.execute("UPDATE striatum.verdicts SET judged = NULL WHERE run_id = %s", (run_id,))
        taken = claim(store, run_id, "apply")
        conn.execute("UPDATE striatum.verdicts SET judged = '{}' WHERE run_id = %s",
                     (run_id,))
    return taken


def failures(store: Store, check: str) -> list[str]:
    return [f.message for f in doctor(store).findings if f.check == check and not f.ok]


def test_a_verdict_event_carries_the_sha256_of_each_artifact_its_reviewer_consumed(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, workflow(tmp_path / "wf"), repo)
    sha = to_accept(store, run_id, tmp_path)
    accept = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][0]
    assert accept["data"]["judged"] == {"artifacts": {"draft.md": sha}}
    row = store._conn.execute("SELECT judged FROM striatum.verdicts WHERE run_id = %s",
                              (run_id,)).fetchone()
    assert row is not None and row[0] == {"artifacts": {"draft.md": sha}}


def test_a_needs_revision_verdict_carries_its_digests_too(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, workflow(tmp_path / "wf"), repo)
    taken = claim(store, run_id, "draft")
    sha = publish(store, tmp_path, taken, "draft.md", "first draft\n")
    leases.complete(store, run_id, "draft", taken.token)
    review = claim(store, run_id, "check")
    leases.verdict(store, run_id, "check", review.token, "needs_revision", "shorter")
    reset = [e for e in payloads(store, run_id, "check") if e["type"] == "job.reset"][0]
    assert reset["data"]["judged"] == {"artifacts": {"draft.md": sha}}


def test_the_verdict_records_what_the_prompt_showed_not_a_later_publication(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, workflow(tmp_path / "wf"), repo)
    taken = claim(store, run_id, "draft")
    seen = publish(store, tmp_path, taken, "draft.md", "what the reviewer read\n")
    leases.complete(store, run_id, "draft", taken.token)
    review = claim(store, run_id, "check")
    assert "what the reviewer read" in Path(review.prompt_file).read_text(encoding="utf-8")
    republish(dsn, repo, run_id, "changed while the reviewer read\n")
    leases.verdict(store, run_id, "check", review.token, "accept", "fine")
    accept = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][0]
    assert accept["data"]["judged"]["artifacts"] == {"draft.md": seen}
    # So the accept lapses at once: apply does not start on it.
    nxt = leases.claim(store, run_id, owner="agent")
    assert nxt is not None and nxt.job == "check"


def test_repo_changing_work_records_the_tree_the_review_ran_against(
        store: Store, repo: Path, tmp_path: Path) -> None:
    git_repo(repo)
    run_id = start_run(store, workflow(tmp_path / "wf", writes=True), repo)
    to_accept(store, run_id, tmp_path, edit=repo / "src" / "app.py")
    accept = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][0]
    tree = accept["data"]["judged"]["tree"]
    # The working tree with the draft's edit, without striatum's own folders.
    root = runs.get_run(store, run_id).artifact_root
    git(repo, "add", "-A", "--", ".", ":(exclude).striatum", f":(exclude){root}")
    assert tree == git(repo, "write-tree")
    assert tree != git(repo, "rev-parse", "HEAD^{tree}")


def test_an_accept_that_still_holds_lets_the_job_start_and_records_the_digest_it_ran_on(
        store: Store, repo: Path, tmp_path: Path) -> None:
    git_repo(repo)
    run_id = start_run(store, workflow(tmp_path / "wf", writes=True), repo)
    to_accept(store, run_id, tmp_path, edit=repo / "src" / "app.py")
    taken = claim(store, run_id, "apply")
    accept = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][0]
    used = [e for e in payloads(store, run_id, "apply") if e["type"] == judged.USED]
    assert [(u["data"]["review"], u["data"]["judged"], u["state"]["fence"]) for u in used] == [
        ("check", judged.digest(accept["data"]["judged"]), taken.fence)]
    leases.complete(store, run_id, "apply", taken.token)
    assert runs.status(store, run_id).run.status == "completed"
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]
    assert [f.message for f in report.findings if f.check == "verdicts"] == [
        "1 job start(s) ran on the digests their accepts name"]


def test_a_tree_moved_after_the_accept_lapses_it_and_the_reviewer_runs_again(
        store: Store, repo: Path, tmp_path: Path) -> None:
    git_repo(repo)
    run_id = start_run(store, workflow(tmp_path / "wf", writes=True), repo)
    to_accept(store, run_id, tmp_path, edit=repo / "src" / "app.py")
    (repo / "src" / "app.py").write_text("print('edited after the accept')\n", encoding="utf-8")

    # apply is claimed, finds the accept lapsed, and goes back: the next claim is the review.
    again = leases.claim(store, run_id, owner="agent")
    assert again is not None and again.job == "check" and again.iteration == 1
    view = runs.status(store, run_id)
    jobs = {j.job_id: j for j in view.jobs}
    assert (jobs["apply"].status, jobs["apply"].executions) == ("pending", 0)
    assert jobs["check"].revisions_used == 1
    reset = [e for e in payloads(store, run_id, "check") if e["type"] == "job.reset"][-1]
    assert "the repository's tree moved" in reset["data"]["lapsed"]
    assert "apply" not in {e["job"] for e in payloads(store, run_id) if e["type"] == judged.USED}

    leases.verdict(store, run_id, "check", again.token, "accept", "still right")
    finish(store, run_id, repo)


def test_why_names_the_lapse_while_the_review_waits_to_run_again(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = lapsed_run(store, dsn, repo, tmp_path)
    # A worker-style take: the lapse is its answer, and nothing is leased.
    found = leases.take(store, run_id, owner="w", lanes=["coder"], lane_kinds=None,
                        lease_seconds=60, check_run=True)
    assert isinstance(found, leases.Unprepared) and found.status == "lapsed"
    assert "the accept of check lapsed: draft.md was republished" in found.reason
    said = explain(store, run_id)
    hold = next(h for h in said["holds"] if h["job"] == "check")
    assert hold["kind"] == "ready"
    assert "draft.md was republished" in hold["text"] and "lapsed" in hold["text"]


def test_a_lapse_with_the_budget_spent_blocks_the_run_for_a_human(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = lapsed_run(store, dsn, repo, tmp_path, revise_max=None)
    assert leases.claim(store, run_id, owner="agent") is None  # nothing may start
    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("blocked", "check")
    assert statuses(view) == {"draft": "succeeded", "check": "awaiting_decision",
                              "apply": "pending"}
    said = explain(store, run_id)
    assert said["holds"][0]["kind"] == "lapsed"
    assert "draft.md was republished" in said["summary"]
    assert said["next"] == f"striatum run resume {run_id} --job check --decision accept|fail|revise"
    assert [(i["kind"], i["job"]) for i in inbox(store)["items"]] == [("lapsed", "check")]

    # The human accepts the work as it now is: apply starts on that decision.
    runs.resume(store, run_id, "accept", "the new draft is fine")
    finish(store, run_id, repo)


def test_doctor_fails_when_a_job_ran_on_a_digest_other_than_its_verdicts(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, workflow(tmp_path / "wf"), repo)
    to_accept(store, run_id, tmp_path)
    assert failures(store, "verdicts") == []
    # And a chained event says it ran on a digest the verdict does not name.
    taken = claim_unchecked(store, dsn, run_id)
    run = runs.get_run(store, run_id)
    row = store.read(JobRow, "job_record", {"run": run_id, "job": "apply"})
    assert row is not None
    forged = Event(judged.USED, run_id, "apply", row.state(),
                   {"review": "check", "iteration": 0, "judged": "0" * 64})
    # Stamped with its own transaction's clock, as every append is: the events table
    # refuses a row whose payload's time is not the row's.
    store.transaction(lambda cur: append_events(cur, run.repo_id, [forged],
                                                fetch_one(cur, "now")[0]))
    leases.complete(store, run_id, "apply", taken.token)
    found = failures(store, "verdicts")
    assert len(found) == 1 and "ran on digest 000000000000..." in found[0], found
    assert "apply (fence 1)" in found[0] and "the accept of check names" in found[0]


def test_doctor_fails_when_a_job_completed_on_an_accept_it_never_checked(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, workflow(tmp_path / "wf"), repo)
    to_accept(store, run_id, tmp_path)
    taken = claim_unchecked(store, dsn, run_id)
    leases.complete(store, run_id, "apply", taken.token)
    found = failures(store, "verdicts")
    assert len(found) == 1 and "without checking its digests" in found[0], found


def test_a_verdict_recorded_before_digests_still_verifies_replays_and_binds_nothing(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, workflow(tmp_path / "wf"), repo)
    taken = claim(store, run_id, "draft")
    publish(store, tmp_path, taken, "draft.md", "draft\n")
    leases.complete(store, run_id, "draft", taken.token)
    review = claim(store, run_id, "check")

    def old_verdict(tx: Any) -> None:
        # What recording a verdict did before digests: no judged on the row or the event.
        row = tx.row("check")
        send(tx.cur, "insert_verdict", {"run": run_id, "job": "check",
                                        "iteration": row.iteration, "verdict": "accept",
                                        "reason": "ok", "fence": row.fence, "judged": None})
        apply_verdict(tx, "check", "accept", "ok")

    verb("job verdict")(runs.transition)(store, run_id, old_verdict, ["check"],
                                         dependents=True)
    accept = [e for e in payloads(store, run_id, "check") if e["type"] == "job.complete"][-1]
    assert "judged" not in accept["data"]
    assert review.token  # its lease ended with the verdict
    taken = claim(store, run_id, "apply")
    assert judged.USED not in {e["type"] for e in payloads(store, run_id)}
    leases.complete(store, run_id, "apply", taken.token)
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]
    assert [f.message for f in report.findings if f.check == "verdicts"] == [
        "no verdict records digests: nothing to check"]


@pytest.mark.parametrize("with_digests", [True, False])
def test_the_digests_flow_through_a_corpus_bundle_that_verifies(
        store: Store, dsn: str, repo: Path, tmp_path: Path, with_digests: bool) -> None:
    from striatum.corpus.export import export
    from striatum.corpus.verify import verify

    run_id = start_run(store, workflow(tmp_path / "wf"), repo)
    sha = to_accept(store, run_id, tmp_path)
    taken = claim(store, run_id, "apply")
    leases.complete(store, run_id, "apply", taken.token)
    if not with_digests:
        with owner_connection(dsn) as conn:
            conn.execute("UPDATE striatum.verdicts SET judged = NULL")
    out = tmp_path / "bundle"
    export(store, out, run=run_id)
    lines = [json.loads(line) for line in
             (out / "verdicts.jsonl").read_text(encoding="utf-8").splitlines()]
    statement = json.loads((out / "statements.jsonl").read_text(encoding="utf-8"))
    if with_digests:
        assert lines[0]["judged"] == {"artifacts": {"draft.md": sha}}
        assert statement["predicate"]["judged"] == lines[0]["judged"]
        verify(out)
    else:
        # The row lost what its chained event holds: the bundle says so.
        assert "judged" not in lines[0] and "judged" not in statement["predicate"]
        with pytest.raises(Exception, match="those digests"):
            verify(out)
