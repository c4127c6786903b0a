"""plan's worst-case wall time and agent calls per lane, against brute force.

The wall-time oracle runs the timed semantics directly: every ready job starts
at once (enough workers), a pass lasts its lane's timeout times its attempts,
and at each reviewer's end both answers are tried (accept, and needs_revision
while its budget lasts: its region goes back to pending, passes of it still
running included). The agent-call oracle walks every decision sequence of
``simulate.Simulation`` and keeps each lane's most.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.compiler.bounds import worst_agent_calls, worst_wall_time
from striatum.compiler.graph import WorkflowGraph, build_graph
from striatum.compiler.ir import DEFAULT_LANE_TIMEOUT, normalize
from striatum.compiler.simulate import PENDING, SKIPPED, Simulation, _copy, resolve
from tests.unit.strategies import valid_workflows


def graph(doc: dict[str, Any]) -> WorkflowGraph:
    return build_graph(normalize(doc))


def oracle_wall(wg: WorkflowGraph) -> int:
    jobs = wg.jobs
    length = {}
    for job_id, job in jobs.items():
        lane = wg.workflow.lane(job.lane)
        assert lane is not None and lane.kind == "command" and job.kind != "checkpoint"
        length[job_id] = (lane.timeout or DEFAULT_LANE_TIMEOUT) * job.max_attempts
    members = {r: set(wg.ids_of(wg.region_bits(r))) for r in wg.regions}

    def explore(now: int, done: frozenset[str], running: tuple[tuple[str, int], ...],
                used: tuple[tuple[str, int], ...]) -> int:
        busy = dict(running)
        for job_id in wg.order:
            if job_id not in done and job_id not in busy and all(
                    n in done for n in jobs[job_id].needs):
                busy[job_id] = now + length[job_id]
        if not busy:
            return now
        at = min(busy.values())
        ending = sorted(j for j, t in busy.items() if t == at)
        return settle(at, done, busy, dict(used), ending)

    def settle(at: int, done: frozenset[str], busy: dict[str, int], used: dict[str, int],
               ending: list[str]) -> int:
        if not ending:
            return explore(at, done, tuple(sorted(busy.items())), tuple(sorted(used.items())))
        job_id, rest = ending[0], ending[1:]
        if job_id not in busy:  # a revision at this instant sent it back before it ended
            return settle(at, done, busy, used, rest)
        left = {j: t for j, t in busy.items() if j != job_id}
        best = settle(at, done | {job_id}, left, used, rest)
        region = wg.regions.get(job_id)
        if region is not None and used.get(job_id, 0) < region.max:
            back = members[job_id]
            best = max(best, settle(at, done - back, {j: t for j, t in left.items()
                                                       if j not in back},
                                    {**used, job_id: used.get(job_id, 0) + 1},
                                    [j for j in rest if j not in back]))
        return best

    return explore(0, frozenset(), (), ())


def oracle_calls(wg: WorkflowGraph) -> dict[str, int]:
    """Every interleaving (any ready job may run next) and every outcome but reject."""
    most = {lane.name: 0 for lane in wg.workflow.lanes}
    seen: set[tuple[Any, ...]] = set()
    stack = [Simulation(wg)]
    while stack:
        sim = stack.pop()
        key = (tuple(sim.status.items()), tuple(sim.chosen.items()), tuple(sim.used.items()),
               tuple(sim.runs.items()))
        if key in seen:
            continue
        seen.add(key)
        ready = []
        for job_id in wg.order:
            if sim.status[job_id] == PENDING:
                state = resolve(wg, job_id, sim.status, sim.chosen)
                if state == "skipped":
                    sim.status[job_id] = SKIPPED
                elif state == "ready":
                    ready.append(job_id)
        if not ready:
            per_lane = {lane: 0 for lane in most}
            for j, n in sim.runs.items():
                job = wg.jobs[j]
                per_lane[job.lane] += n if job.kind == "checkpoint" else n * job.max_attempts
            most = {lane: max(most[lane], per_lane[lane]) for lane in most}
            continue
        for job_id in ready:
            for option in wg.jobs[job_id].outcomes or (None,):
                if option == "reject":
                    continue  # the run ends early: never the most
                branch = _copy(sim)
                branch.cursor = 0
                ended, _ = branch.apply(job_id, option)
                if ended is None:
                    stack.append(branch)
    return most


@st.composite
def timed_workflows(draw: st.DrawFn) -> dict[str, Any]:
    doc = draw(valid_workflows(max_jobs=6, max_reviews=3, max_checkpoints=0, max_budget=2))
    doc["lanes"] = {name: {"command": ["x"], "timeout": draw(st.integers(1, 9))}
                    for name in doc["lanes"]}
    for job in doc["jobs"]:
        job["max_attempts"] = draw(st.integers(1, 2))
    return doc


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(timed_workflows())
def test_wall_time_is_the_timed_simulations_longest_run(doc: dict[str, Any]) -> None:
    wg = graph(doc)
    wall = worst_wall_time(wg)
    assert wall.exact and wall.untimed == ()
    assert wall.seconds == oracle_wall(wg)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_workflows(max_jobs=6, max_checkpoints=2, max_budget=2))
def test_agent_calls_per_lane_are_the_most_any_run_makes(doc: dict[str, Any]) -> None:
    wg = graph(doc)
    calls = worst_agent_calls(wg)
    assert calls.exact
    assert calls.per_lane == oracle_calls(wg)


def lanes(**timeouts: int) -> dict[str, Any]:
    return {name: {"command": ["x"], "timeout": t} for name, t in timeouts.items()}


def test_a_revision_restarts_a_side_branch_after_a_long_wave() -> None:
    # The reviewer ends late (y is long); its revision restarts t, and s, which hangs off
    # t and had long finished, runs again after it: 100 + 1 + 1 + 100, not 101 + a loop.
    doc = {"name": "w", "lanes": lanes(quick=1, slow=100), "jobs": [
        {"id": "t", "lane": "quick", "max_attempts": 1},
        {"id": "y", "lane": "slow", "max_attempts": 1},
        {"id": "r", "lane": "quick", "kind": "review", "needs": ["t", "y"], "max_attempts": 1,
         "revise": {"target": "t", "max": 1}},
        {"id": "s", "lane": "slow", "needs": ["t"], "max_attempts": 1}]}
    wg = graph(doc)
    assert worst_wall_time(wg).seconds == 202 == oracle_wall(wg)


def test_parallel_waves_take_their_longest_job() -> None:
    doc = {"name": "w", "lanes": lanes(a=10, b=30), "jobs": [
        {"id": "x", "lane": "a"}, {"id": "y", "lane": "b"}, {"id": "z", "lane": "a"},
        {"id": "join", "lane": "a", "needs": ["x", "y", "z"]}]}
    assert worst_wall_time(graph(doc)).seconds == (30 + 10) * 3


def test_nested_loops_spend_both_budgets() -> None:
    doc = {"name": "w", "lanes": lanes(a=1), "jobs": [
        {"id": "d", "lane": "a", "max_attempts": 1},
        {"id": "inner", "lane": "a", "kind": "review", "needs": ["d"], "max_attempts": 1,
         "revise": {"target": "d", "max": 2}},
        {"id": "outer", "lane": "a", "kind": "review", "needs": ["inner"], "max_attempts": 1,
         "revise": {"target": "d", "max": 1}}]}
    wg = graph(doc)
    # d,inner x3 then outer; outer's one revision: d,inner (no inner budget left), outer.
    assert worst_wall_time(wg).seconds == oracle_wall(wg) == 2 * 3 + 1 + 3
    assert worst_agent_calls(wg).per_lane == {"a": 10}


def test_a_person_or_an_operator_leaves_the_wall_time_unbounded() -> None:
    doc = {"name": "w", "lanes": {**lanes(a=5), "op": {"kind": "operator"},
                                  "boss": {"kind": "human"}}, "jobs": [
        {"id": "x", "lane": "a"}, {"id": "y", "lane": "op", "needs": ["x"]},
        {"id": "go", "lane": "boss", "kind": "checkpoint", "needs": ["y"],
         "choices": {"yes": [], "no": []}}]}
    wall = worst_wall_time(graph(doc))
    assert wall.seconds is None and wall.untimed == ("y", "go")


def test_a_lane_without_timeout_gets_the_workers_default() -> None:
    doc = {"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": [
        {"id": "x", "lane": "a", "max_attempts": 2}]}
    assert worst_wall_time(graph(doc)).seconds == 2 * DEFAULT_LANE_TIMEOUT


def test_too_many_revision_states_give_an_upper_bound() -> None:
    from striatum.compiler import bounds

    doc = {"name": "w", "lanes": lanes(a=1), "jobs": [
        {"id": "d", "lane": "a", "max_attempts": 1},
        {"id": "r", "lane": "a", "kind": "review", "needs": ["d"], "max_attempts": 1,
         "revise": {"target": "d", "max": 3}}]}
    exact = worst_wall_time(graph(doc))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bounds, "MAX_WALL_STATES", 1)
        loose = worst_wall_time(graph(doc))
    assert exact == bounds.WallTime(8, True)
    assert not loose.exact and loose.seconds is not None and loose.seconds >= 8


def test_workflow_plan_prints_them_in_text_and_json(tmp_path: Path) -> None:
    import io
    import json
    from contextlib import redirect_stderr, redirect_stdout

    from striatum.cli.main import run

    path = tmp_path / "w.json"
    path.write_text(json.dumps({"name": "w", "lanes": {**lanes(coder=100, reviewer=10),
                                                      "boss": {"kind": "human"}}, "jobs": [
        {"id": "d", "lane": "coder", "max_attempts": 2},
        {"id": "c", "lane": "reviewer", "kind": "review", "needs": ["d"],
         "revise": {"target": "d", "max": 1}}]}))

    def plan(*more: str) -> str:
        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            assert run(["workflow", "plan", str(path), *more]) == 0
        return out.getvalue()

    text = plan()
    # Two passes of d (100 s x 2 attempts) and of c (10 s x 3 attempts).
    assert "worst-case wall time: 460 seconds (7 min, exact)\n" in text
    assert "worst-case agent calls per lane: coder 4, reviewer 6, boss 0 (exact)\n" in text
    document = json.loads(plan("--json"))
    assert (document["worst_case_wall_seconds"], document["worst_case_wall_exact"],
            document["wall_unbounded_by"]) == (460, True, [])
    assert document["worst_case_agent_calls"] == {"coder": 4, "reviewer": 6, "boss": 0}
    assert document["worst_case_agent_calls_exact"] is True
