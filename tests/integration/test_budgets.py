"""Budgets at run time, on real PostgreSQL: a run that reaches max_job_runs, max_cost or
max_wall_seconds stops being claimed and is blocked for a human with the reason (a
``run.block`` event), the block survives a SIGKILLed worker and a resume that does not
raise the limit, and ``run resume --raise-budget`` lifts it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from striatum.errors import Conflict
from striatum.runtime import inbox, leases, runs, why
from striatum.runtime.store import Store

from .worker_helpers import (
    cli,
    cli_json,
    doctor_ok,
    events_of,
    fake,
    run_status,
    spawned,
    start_run,
    wait_for,
    work,
    write_workflow,
)

pytestmark = pytest.mark.timeout(120)


def chain(directory: Path, budget: dict[str, int], lane: list[str], length: int = 3,
          timeout: int = 60) -> str:
    """Tasks t0 -> t1 -> ... on one lane, with ``budget``."""
    return write_workflow(directory, {
        "name": "chain", "budget": budget,
        "lanes": {"agent": {"command": lane, "timeout": timeout}},
        "jobs": [{"id": f"t{i}", "lane": "agent", "prompt": {"text": "go"},
                  **({"needs": [f"t{i - 1}"]} if i else {})} for i in range(length)]})


def block_of(store: Store, run_id: str) -> dict[str, Any]:
    (event,) = events_of(store, run_id, kind="run.block")
    data: dict[str, Any] = event["payload"]["data"]
    return data


def claimed(store: Store, run_id: str) -> list[str]:
    return [e["job"] for e in events_of(store, run_id, kind="job.claim")]


def test_a_run_past_max_job_runs_is_blocked_before_the_pass_is_claimed(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, chain(tmp_path / "flow", {"max_job_runs": 2}, fake("work")),
                       repo)

    work(dsn, run_id, until_run_ends=True)

    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("blocked", "budget:max_job_runs")
    assert claimed(store, run_id) == ["t0", "t1"]  # t2 is ready, and nobody took it
    assert {j.job_id: j.status for j in view.jobs}["t2"] == "ready"
    data = block_of(store, run_id)
    assert (data["budget"], data["limit"], data["spent"]) == ("max_job_runs", 2, 3)
    assert view.reason == data["reason"] and "max_job_runs 2 reached" in data["reason"]
    held = why.explain(store, run_id)
    assert held["holds"][0]["kind"] == "over_budget"
    assert held["next"] == f"striatum run resume {run_id} --raise-budget max_job_runs=N"
    idle = leases.claim_next(store, run_id, owner="operator-1", lane=None)
    assert isinstance(idle, runs.Idle) and idle.reason == "waiting_for_human"
    assert "--raise-budget max_job_runs=N" in idle.detail
    (item,) = inbox.inbox(store)["items"]
    assert (item["kind"], item["run"], item["job"]) == ("over_budget", run_id, None)
    assert "max_job_runs 2 reached" in item["text"]

    with pytest.raises(Conflict, match="stopped by its budget"):
        runs.resume(store, run_id, "accept", "go on")
    with pytest.raises(Conflict, match="would stop again at once"):
        runs.resume(store, run_id, "raise", "a little more", {"max_job_runs": 2})
    runs.resume(store, run_id, "raise", "worth it", {"max_job_runs": 3})
    work(dsn, run_id, until_run_ends=True)

    assert run_status(store, run_id) == "completed"
    (resumed,) = events_of(store, run_id, kind="run.resume")
    assert resumed["payload"]["data"]["budget"] == {"max_job_runs": 3}
    doctor_ok(dsn, repo)


def test_a_wave_that_goes_past_max_job_runs_stops_whole_and_needs_a_limit_for_all_of_it(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    flow = write_workflow(tmp_path / "flow", {
        "name": "fan", "budget": {"max_job_runs": 2},
        "lanes": {"agent": {"command": fake("work"), "timeout": 60}},
        "jobs": [{"id": "t0", "lane": "agent", "prompt": {"text": "go"}},
                 *({"id": name, "lane": "agent", "needs": ["t0"], "prompt": {"text": "go"}}
                   for name in ("a", "b", "c"))]})
    run_id = start_run(store, flow, repo)

    work(dsn, run_id, until_run_ends=True)

    assert claimed(store, run_id) == ["t0"]
    data = block_of(store, run_id)
    assert (data["limit"], data["spent"]) == (2, 3)  # the first pass beyond the limit
    with pytest.raises(Conflict, match=r"below what it needs \(4, having spent 4\)"):
        runs.resume(store, run_id, "raise", "one more", {"max_job_runs": 3})
    runs.resume(store, run_id, "raise", "the wave", {"max_job_runs": 4})
    work(dsn, run_id, until_run_ends=True)
    assert run_status(store, run_id) == "completed"
    assert sorted(claimed(store, run_id)) == ["a", "b", "c", "t0"]


USAGE = ["sh", "-c", "printf '{\"cost\": 40, \"tokens\": 1200}' > {artifact_dir}/usage.json"]


def test_a_run_whose_lanes_report_its_cost_up_to_max_cost_is_blocked(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, chain(tmp_path / "flow", {"max_cost": 80}, USAGE), repo)

    work(dsn, run_id, until_run_ends=True)

    assert runs.status(store, run_id).run.blocked_on == "budget:max_cost", [
        (e["type"], e["job"], e["payload"]["data"]) for e in events_of(store, run_id)]
    assert claimed(store, run_id) == ["t0", "t1"]
    usage = events_of(store, run_id, kind="budget.usage")
    assert [(e["job"], e["payload"]["data"]["cost"], e["payload"]["data"]["tokens"])
            for e in usage] == [("t0", 40, 1200), ("t1", 40, 1200)]
    data = block_of(store, run_id)
    assert (data["budget"], data["limit"], data["spent"]) == ("max_cost", 80, 80)

    runs.resume(store, run_id, "raise", "one more", {"max_cost": 121})
    work(dsn, run_id, until_run_ends=True)
    assert run_status(store, run_id) == "completed"
    doctor_ok(dsn, repo)


def test_a_run_out_of_wall_time_hands_back_its_claim_and_the_blocked_time_does_not_count(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    # Two jobs ready at once, one worker slot: t1 waits for t0, which outlasts the budget.
    flow = write_workflow(tmp_path / "flow", {
        "name": "pair", "budget": {"max_wall_seconds": 2},
        "lanes": {"agent": {"command": fake("slow", "--seconds", "3"), "timeout": 60}},
        "jobs": [{"id": "t0", "lane": "agent", "prompt": {"text": "go"}},
                 {"id": "t1", "lane": "agent", "prompt": {"text": "go"}}]})
    run_id = start_run(store, flow, repo)

    work(dsn, run_id, until_run_ends=True, concurrency=1)

    view = runs.status(store, run_id)
    assert view.run.blocked_on == "budget:max_wall_seconds"
    # t1 was claimed past the deadline and handed back before its lane started.
    releases = events_of(store, run_id, "t1", "job.release")
    assert [e["payload"]["data"]["reason"] for e in releases] == ["its run reached its budget"]
    assert {j.job_id: j.status for j in view.jobs}["t1"] == "ready"
    assert block_of(store, run_id)["spent"] >= 2

    time.sleep(2)  # blocked: the clock does not run
    runs.resume(store, run_id, "raise", "longer", {"max_wall_seconds": 30})
    work(dsn, run_id, until_run_ends=True)
    assert run_status(store, run_id) == "completed"


def test_the_block_survives_a_sigkilled_worker_and_a_resume_and_the_cli_lifts_it(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, chain(tmp_path / "flow", {"max_job_runs": 2}, fake("work"),
                                    length=4), repo)
    with spawned(tmp_path / "procs") as procs:
        first = procs.striatum("worker-1", dsn, repo, "worker", "--run", run_id,
                               "--lease-seconds", "6")
        wait_for(lambda: run_status(store, run_id) == "blocked", 60,
                 lambda: f"the run to stop: {first.err()[-2000:]}")
        first.signal_group(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL

        # A fresh worker, after a restart, finds the run still stopped and claims nothing.
        second = procs.striatum("worker-2", dsn, repo, "worker", "--run", run_id,
                                "--lease-seconds", "6")
        time.sleep(3)
        assert run_status(store, run_id) == "blocked"
        assert claimed(store, run_id) == ["t0", "t1"]

        # Answering it as an escalation is refused; the run stays blocked.
        done = cli(dsn, repo, "run", "resume", run_id, "--decision", "accept")
        assert done.returncode == 4, (done.stdout, done.stderr)
        assert "--raise-budget max_job_runs=N" in done.stderr
        assert run_status(store, run_id) == "blocked"

        view = cli_json(dsn, repo, "run", "resume", run_id, "--raise-budget", "max_job_runs=3",
                        "--reason", "one more")
        assert view["status"] == "running"
        # The new limit is reached in its turn: stopped again, at the next pass.
        wait_for(lambda: run_status(store, run_id) == "blocked", 60,
                 lambda: f"the run to stop again: {second.err()[-2000:]}")
        assert claimed(store, run_id) == ["t0", "t1", "t2"]
        second.signal_group(signal.SIGKILL)
        second.wait(10)

    why_said = cli_json(dsn, repo, "why", run_id)
    assert why_said["holds"][0]["kind"] == "over_budget"
    assert "max_job_runs 3 reached" in why_said["holds"][0]["text"]
    done = cli(dsn, repo, "run", "resume", run_id, "--raise-budget", "max_job_runs=4",
               "--wait")
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert run_status(store, run_id) == "completed"
    assert len([e for e in events_of(store, run_id) if e["type"] == "run.block"]) == 2
    inbox_now = json.loads(cli(dsn, repo, "inbox", "--json").stdout)
    assert inbox_now["items"] == []
    doctor_ok(dsn, repo)
