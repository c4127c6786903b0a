"""``striatum stats`` over runs whose every verdict, decision and time is known."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from striatum.runtime import leases, runs
from striatum.runtime.stats import stats
from striatum.runtime.store import Store

from ..unit.test_cli import invoke as cli
from .helpers import owner_connection
from .worker_helpers import start_run, write_workflow

FLOW = {
    "name": "pair",
    "lanes": {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"},
              "me": {"kind": "human"}},
    "jobs": [{"id": "draft", "lane": "coder", "prompt": {"text": "Write it."}},
             {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
              "prompt": {"text": "Review it."}, "revise": {"target": "draft", "max": 2}},
             {"id": "gate", "lane": "me", "kind": "checkpoint", "needs": ["check"],
              "choices": {"go": ["apply"], "stop": []}},
             {"id": "apply", "lane": "coder", "needs": ["gate"],
              "prompt": {"text": "Apply it."}}]}


def one_run(store: Store, workflow: str, repo: Path, verdicts: list[str],
            choice: str | None, accepted_after: int | None, dsn: str) -> str:
    run_id = start_run(store, workflow, repo)
    for outcome in verdicts:
        draft = leases.claim(store, run_id, owner="t")
        assert draft is not None and draft.job == "draft"
        leases.complete(store, run_id, "draft", draft.token)
        check = leases.claim(store, run_id, owner="t")
        assert check is not None and check.job == "check"
        leases.verdict(store, run_id, "check", check.token, outcome, f"said {outcome}")
    if choice is not None:
        runs.decide(store, run_id, "gate", choice)
    if accepted_after is not None:
        # Time is the record's: the accept lands a known time after the first draft claim.
        with owner_connection(dsn) as conn:
            conn.execute(
                "UPDATE striatum.verdicts SET created_at = (SELECT min(acquired_at) "
                "FROM striatum.leases WHERE run_id = %s AND job_id = 'draft') + %s "
                "WHERE run_id = %s AND job_id = 'check' AND verdict = 'accept'",
                (run_id, timedelta(seconds=accepted_after), run_id))
    return run_id


def test_stats_counts_each_pair_and_checkpoint_exactly(store: Store, dsn: str, repo: Path,
                                                        tmp_path: Path) -> None:
    workflow = write_workflow(tmp_path / "flow", FLOW)
    assert stats(store)["pairs"] == []
    one_run(store, workflow, repo, ["needs_revision", "accept"], "go", 60, dsn)
    one_run(store, workflow, repo, ["accept"], "stop", 30, dsn)
    one_run(store, workflow, repo, ["reject"], None, None, dsn)

    found = stats(store)
    assert found["pairs"] == [{
        "author_lane": "coder", "reviewer_lane": "reviewer", "runs": 3, "reviews": 3,
        "verdicts": {"accept": 2, "needs_revision": 1, "reject": 1},
        "needs_revision_rate": 0.25, "revision_depth_mean": 0.3333, "revision_depth_max": 1,
        "accepted": 2, "seconds_per_accepted": 45.0, "cost_per_accepted": None}]
    assert found["checkpoints"] == [{
        "job": "gate", "lane": "me", "runs": 3, "decided": 2, "waiting": 0, "skipped": 1,
        "choices": {"go": 1, "stop": 1}}]
    assert found["cost_known"] is False

    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    assert stats(store, str(elsewhere)) == {"pairs": [], "checkpoints": [],
                                            "cost_known": False,
                                            "repo": str(elsewhere.resolve())}
    shown = cli("--dsn", dsn, "--repo", str(repo), "stats", "--here", "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out)["pairs"] == found["pairs"]
    text = cli("--dsn", dsn, "--repo", str(repo), "stats")
    assert text.code == 0, text.err
    assert text.out.splitlines()[0] == ("coder → reviewer: 3 review(s) in 3 run(s); "
                                        "accept 2, needs_revision 1, reject 1")
    assert "45 s per accepted, cost -" in text.out
    assert "checkpoint gate (me): 3 run(s), 2 decided (go 1, stop 1)" in text.out
