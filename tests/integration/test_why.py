"""``why`` answers for every state of the run machine and every state a job can hold a
run in: a test drives real runs into each one and reads the answer, as a person would
(the text) and as an agent would (the document)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from striatum.runtime import leases, runs
from striatum.runtime.machine import JOB_STATES, RUN_STATES
from striatum.runtime.store import Store
from striatum.runtime.why import HOLD_KINDS, explain

from ..unit.test_cli import invoke as cli
from .helpers import Agent, example, owner_connection, scripted, start_run, to_checkpoint
from .test_findings import loop
from .test_judged import lapsed_run
from .worker_helpers import rows, wait_for, worker_thread, write_workflow

SEEN_RUN_STATES: set[str] = set()
SEEN_JOB_STATES: set[str] = set()
SEEN_KINDS: set[str] = set()


def why(store: Store, run_id: str) -> dict[str, Any]:
    document = explain(store, run_id)
    SEEN_RUN_STATES.add(document["status"])
    SEEN_JOB_STATES.update(j.status for j in runs.status(store, run_id).jobs)
    SEEN_KINDS.update(h["kind"] for h in document["holds"])
    return document


def kinds(document: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(h["kind"], h["job"]) for h in document["holds"]]


def test_a_prepared_run_says_start_it_and_a_completed_one_that_nothing_holds_it(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = runs.prepare(store, example("minimal"), str(repo), overrides={})
    prepared = why(store, run_id)
    assert kinds(prepared) == [("not_started", None)]
    assert prepared["next"] == f"striatum run start {run_id}"

    runs.start(store, run_id)
    ready = why(store, run_id)
    assert kinds(ready) == [("no_worker", "answer")]
    assert "ready on lane agent" in ready["holds"][0]["text"]
    assert "no running worker serves lane agent" in ready["summary"]
    assert ready["next"] == f"striatum run work {run_id}"

    Agent(store, run_id, tmp_path).drive()
    done = why(store, run_id)
    assert done["status"] == "completed" and kinds(done) == [("completed", None)]
    assert done["next"] is None and "nothing holds it" in done["summary"]


def test_a_ready_job_names_the_running_workers_that_serve_its_lane_and_none_once_they_stop(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    lane = {"command": ["sh", "-c", 'sleep 2; for f in $STRIATUM_PRODUCES; do '
                        'echo done > "$STRIATUM_ARTIFACT_DIR/$f"; done']}
    flow = write_workflow(tmp_path / "flow", {
        "name": "two", "lanes": {"agent": lane, "other": lane},
        "jobs": [{"id": "first", "lane": "agent", "prompt": {"text": "one"},
                  "produces": ["a.md"]},
                 {"id": "second", "lane": "agent", "prompt": {"text": "two"},
                  "produces": ["b.md"]},
                 {"id": "third", "lane": "other", "prompt": {"text": "three"},
                  "produces": ["c.md"]}]})
    run_id = start_run(store, flow, repo)
    worker = worker_thread(dsn, run_id, lanes=["agent"], concurrency=1, once=True)
    try:
        def taken() -> dict[str, Any] | None:
            document = why(store, run_id)
            return document if ("leased", "first") in kinds(document) else None

        held = wait_for(taken, 30, "the worker to take the first job")
        second = next(h for h in held["holds"] if h["job"] == "second")
        assert second["kind"] == "ready" and second["workers"] == [worker.worker.name]
        assert "1 running worker(s) serve its lane" in second["text"]
        assert second["command"] is None  # a worker will take it: nothing to do
        third = next(h for h in held["holds"] if h["job"] == "third")
        assert third["kind"] == "no_worker" and third["workers"] == []
    finally:
        worker.join(60)
    after = why(store, run_id)
    assert {h["job"]: h["kind"] for h in after["holds"]} == {"second": "no_worker",
                                                             "third": "no_worker"}
    assert rows(store, "SELECT * FROM striatum.workers") == []  # it said it left


def test_a_lease_says_who_holds_it_until_when_and_goes_stale_then_expires(
        store: Store, dsn: str, repo: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    claim = leases.claim(store, run_id, owner="worker-7", lease_seconds=300)
    assert claim is not None and claim.job == "draft"
    held = why(store, run_id)
    assert kinds(held)[0] == ("leased", "draft")
    lease = held["holds"][0]
    assert lease["owner"] == "worker-7" and 290 <= lease["expires_in_seconds"] <= 300
    assert "leased to worker-7 until" in lease["text"] and "database clock" in lease["text"]
    assert ("needs", "check") in kinds(held)
    check = next(h for h in held["holds"] if h["job"] == "check")
    assert check["needs"] == ["draft"] and "waits for draft (leased)" in check["text"]
    assert held["next"] is None  # nothing to do but wait

    with owner_connection(dsn) as conn:
        conn.execute("UPDATE striatum.jobs SET heartbeat_at = now() - interval '150 seconds' "
                     "WHERE run_id = %s AND job_id = 'draft'", (run_id,))
    stale = why(store, run_id)
    assert kinds(stale)[0] == ("lease_stale", "draft")
    assert "its worker may be gone" in stale["holds"][0]["text"]

    with owner_connection(dsn) as conn:
        conn.execute("UPDATE striatum.jobs SET lease_expires_at = now() - interval '5 seconds'"
                     " WHERE run_id = %s AND job_id = 'draft'", (run_id,))
    expired = why(store, run_id)
    assert kinds(expired)[0] == ("lease_expired", "draft")
    assert expired["next"] == f"striatum run work {run_id}"


def test_a_checkpoint_names_the_line_to_paste_and_skipped_branches_hold_nothing(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = to_checkpoint(store, repo, tmp_path)
    waiting = why(store, run_id)
    assert kinds(waiting)[0] == ("checkpoint", "decide")
    line = f"striatum checkpoint decide {run_id} decide cancel|continue"
    assert waiting["next"] == line and waiting["holds"][0]["choices"] == ["cancel", "continue"]
    assert "waits for a human" in waiting["summary"]
    assert "Go ahead with the recommendation?" in waiting["holds"][0]["text"]

    runs.decide(store, run_id, "decide", "cancel")
    ended = why(store, run_id)  # implement was skipped: the run completed
    assert ended["status"] == "completed" and kinds(ended) == [("completed", None)]


def test_an_exhausted_review_blocks_the_run_and_says_how_to_resume_it(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    agent = Agent(store, run_id, tmp_path,
                  verdict=scripted({"check": ["needs_revision", "needs_revision"]}))
    agent.drive()
    blocked = why(store, run_id)
    assert blocked["status"] == "blocked"
    assert kinds(blocked)[0] == ("escalated", "check")
    assert "spent its revision budget (1)" in blocked["holds"][0]["text"]
    assert blocked["next"] == \
        f"striatum run resume {run_id} --job check --decision accept|fail|revise"


def test_a_failed_run_says_retry_and_a_cancelled_one_says_it_stays_so(
        store: Store, repo: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    leases.fail(store, run_id, claim.job, claim.token, "the agent crashed", final=True)
    failed = why(store, run_id)
    assert failed["status"] == "failed" and kinds(failed) == [("failed", "draft")]
    assert "draft failed" in failed["summary"] and "the agent crashed" in failed["summary"]
    assert failed["next"] == f"striatum run retry {run_id}"

    other = start_run(store, example("minimal"), repo)
    runs.cancel(store, other, "not needed after all")
    cancelled = why(store, other)
    assert cancelled["status"] == "cancelled" and kinds(cancelled) == [("cancelled", None)]
    assert "not needed after all" in cancelled["summary"] and cancelled["next"] is None


def test_the_cli_prints_the_answer_and_the_same_document_as_the_registry(
        store: Store, dsn: str, repo: Path) -> None:
    run_id = runs.prepare(store, example("minimal"), str(repo), overrides={})
    text = cli("--dsn", dsn, "--repo", str(repo), "why", run_id)
    assert text.code == 0, text.err
    assert text.out.splitlines() == [f"run {run_id} is prepared and not started",
                                     f"next: striatum run start {run_id}"]
    shown = cli("--dsn", dsn, "--repo", str(repo), "why", "latest", "--json")
    assert shown.code == 0, shown.err
    document = json.loads(shown.out)
    assert document["run"] == run_id and document["holds"][0]["kind"] == "not_started"
    missing = cli("--dsn", dsn, "--repo", str(repo), "why", "20990101-000000-abcdef")
    assert missing.code == 3 and "no run" in missing.err


def test_a_run_its_budget_stopped_says_which_limit_and_how_to_raise_it(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    flow = write_workflow(tmp_path / "flow", {
        "name": "capped", "budget": {"max_job_runs": 1},
        "lanes": {"bot": {"kind": "operator"}},
        "jobs": [{"id": "first", "lane": "bot", "prompt": {"text": "one"}},
                 {"id": "second", "lane": "bot", "needs": ["first"],
                  "prompt": {"text": "two"}}]})
    run_id = start_run(store, flow, repo)
    claim = leases.claim(store, run_id, owner="operator-1", lease_seconds=300)
    assert claim is not None and claim.job == "first"
    leases.complete(store, run_id, "first", claim.token)

    stopped = why(store, run_id)
    assert stopped["status"] == "blocked"
    assert kinds(stopped)[0] == ("over_budget", None)
    hold = stopped["holds"][0]
    assert hold["budget"] == "max_job_runs"
    assert "max_job_runs 1 reached" in hold["text"]
    assert stopped["next"] == f"striatum run resume {run_id} --raise-budget max_job_runs=N"
    text = cli("--dsn", dsn, "--repo", str(repo), "why", run_id)
    assert text.code == 0 and "over budget and waits for a human" in text.out, text.err


def test_a_lapsed_accept_with_its_budget_spent_waits_for_a_human_and_says_what_moved(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = lapsed_run(store, dsn, repo, tmp_path, revise_max=None)
    assert leases.claim(store, run_id, owner="agent") is None
    document = why(store, run_id)
    assert kinds(document) == [("lapsed", "check"), ("needs", "apply")]
    assert "draft.md was republished" in document["holds"][0]["lapsed"]
    assert document["next"] == \
        f"striatum run resume {run_id} --job check --decision accept|fail|revise"


def test_a_review_repeating_its_findings_is_said_with_its_ids(store: Store, repo: Path,
                                                               tmp_path: Path) -> None:
    lanes = {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}}
    run_id = start_run(store, loop(tmp_path / "flow", lanes), repo)
    (tmp_path / "draft.md").write_text("a draft\n", encoding="utf-8")
    for _ in range(2):
        draft = leases.claim(store, run_id, owner="t")
        assert draft is not None
        leases.publish(store, run_id, "draft", draft.token, str(tmp_path / "draft.md"))
        leases.complete(store, run_id, "draft", draft.token)
        check = leases.claim(store, run_id, owner="t")
        assert check is not None
        leases.verdict(store, run_id, "check", check.token, "needs_revision", "same",
                       findings=("x1",))
    said = why(store, run_id)
    assert ("findings_repeated", "check") in kinds(said)
    assert any("returned the same findings as the round before (x1)" in h["text"]
               for h in said["holds"])


def test_zz_every_run_state_and_every_hold_kind_was_answered() -> None:
    """Runs after the tests above (file order): together they reached every state."""
    if not SEEN_RUN_STATES:
        return  # run alone (-k): nothing to check
    assert set(RUN_STATES) == SEEN_RUN_STATES
    assert set(JOB_STATES) == SEEN_JOB_STATES
    assert set(HOLD_KINDS) - {"blocked"} == SEEN_KINDS
