"""What a run can cost at worst, beside plan's job executions: wall time and agent calls.

**Wall time.** Each attempt of a command lane may run for its lane's whole
``timeout`` (the worker's default when none is given) and a job may use every
one of its ``max_attempts``, so one pass of a job lasts at most
``timeout x max_attempts``; a worker pool large enough runs each wave in
parallel. A run's end is then the end of a chain of passes, each started by the
one before: a need that finished, or a reviewer whose ``needs_revision`` sent
its region back (the target starts again when the reviewer ends). So the worst
wall time is the longest walk over the forward graph plus the revision edges
(reviewer -> target), each revision edge taken at most its ``max`` times,
weighted by the passes' lengths. The walk is found exactly by dynamic
programming over (the last revision taken, the revisions left); past
``MAX_WALL_STATES`` it falls back to a true upper bound. A job on an operator
or human lane, and a checkpoint, waits for someone with no time limit: with
one in the workflow the wall time has no bound.

**Agent calls.** A pass of a job on a lane is up to ``max_attempts`` calls of
that lane's agent; the passes per job follow plan's worst case (every
revision budget spent), maximised per lane over the checkpoints' choices.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast

from .graph import WorkflowGraph
from .ir import DEFAULT_LANE_TIMEOUT, Job
from .plan import MAX_CHOICE_WORK, skipped_bits

T = TypeVar("T")
MAX_WALL_STATES = 2_000_000  # (revisions left) vectors x reviewers^2 before the bound is loose


@dataclass(frozen=True)
class WallTime:
    seconds: int | None  # None: no bound (``untimed`` says which jobs)
    exact: bool
    untimed: tuple[str, ...] = ()


@dataclass(frozen=True)
class AgentCalls:
    per_lane: dict[str, int]  # every lane, in declaration order
    exact: bool


def pass_seconds(wg: WorkflowGraph, job: Job) -> int | None:
    """The longest one pass of ``job`` can take, or None when nothing limits it."""
    lane = wg.workflow.lane(job.lane)
    if job.kind == "checkpoint" or lane is None or lane.kind != "command":
        return None
    return (lane.timeout or DEFAULT_LANE_TIMEOUT) * job.max_attempts


def _memo(wg: WorkflowGraph, key: str, compute: Callable[[WorkflowGraph], T]) -> T:
    if key not in wg.memo:
        wg.memo[key] = compute(wg)
    return cast(T, wg.memo[key])


def worst_wall_time(wg: WorkflowGraph) -> WallTime:
    return _memo(wg, "wall", _worst_wall_time)


def _weights(wg: WorkflowGraph) -> tuple[dict[str, int], tuple[str, ...]]:
    """Each timed job's longest pass, and the jobs that have no limit."""
    weight: dict[str, int] = {}
    untimed = []
    for job in wg.workflow.jobs:
        seconds = pass_seconds(wg, job)
        if seconds is None:
            untimed.append(job.id)
        else:
            weight[job.id] = seconds
    return weight, tuple(untimed)


def _into(wg: WorkflowGraph, weight: dict[str, int]) -> dict[str, int]:
    """The longest chain of passes that ends with each job, no revision taken."""
    into: dict[str, int] = {}
    for job_id in wg.order:
        into[job_id] = weight[job_id] + max((into[p] for p in wg.pred[job_id]), default=0)
    return into


def wall_without_revisions(wg: WorkflowGraph) -> int | None:
    """The worst wall time of a run in which no reviewer sends work back."""
    weight, untimed = _weights(wg)
    return None if untimed else max(_into(wg, weight).values())


def _worst_wall_time(wg: WorkflowGraph) -> WallTime:
    weight, untimed = _weights(wg)
    if untimed:
        return WallTime(None, True, untimed)
    into = _into(wg, weight)
    onward: dict[str, int] = {}  # the longest chain that starts with it
    for job_id in reversed(wg.order):
        onward[job_id] = weight[job_id] + max((onward[s] for s in wg.succ[job_id]), default=0)
    plain = max(into.values())
    loops = [r for r in wg.regions.values() if r.max > 0]
    if not loops:
        return WallTime(plain, True)
    final = [onward[r.target] for r in loops]
    budgets = [r.max for r in loops]
    states = 1
    for m in budgets:
        states *= m + 1
        if states * len(loops) ** 2 > MAX_WALL_STATES:
            # Each restart of a target is followed by at most its longest segment,
            # which is ``onward`` of the target: every span from it is a prefix of one.
            first = max([plain, *(into[r.reviewer] for r in loops)])
            return WallTime(first + sum(m * w for m, w in zip(budgets, final, strict=True)),
                            False)
    rank = {job_id: i for i, job_id in enumerate(wg.order)}
    spans = {r.target: _spans_from(wg, r.target, weight, rank) for r in loops}
    # step[i][j]: from a restart of loop i's target to loop j's reviewer (None: no way).
    step = [[spans[a.target].get(b.reviewer) for b in loops] for a in loops]
    starts = [into[r.reviewer] for r in loops]
    return WallTime(_longest_walk(budgets, step, final, starts, plain), True)


def _spans_from(wg: WorkflowGraph, start: str, weight: dict[str, int],
                rank: dict[str, int]) -> dict[str, int]:
    """The longest chain of passes from ``start`` to each job below it, both included.

    A job after ``start`` in topological order is below it exactly when one of
    its needs is, so one pass over the rest of the order finds them all."""
    span = {start: weight[start]}
    for job_id in itertools.islice(wg.order, rank[start] + 1, None):
        best = max((span[p] for p in wg.pred[job_id] if p in span), default=None)
        if best is not None:
            span[job_id] = best + weight[job_id]
    return span


def _longest_walk(budgets: list[int], step: list[list[int | None]], final: list[int],
                  starts: list[int], plain: int) -> int:
    """best[left][i]: the longest rest of a run from a restart of loop i's target with
    ``left`` revisions still to spend; filled from the fewest revisions left up.
    ``starts[j]``: the longest chain to loop j's reviewer's first pass."""
    count = len(budgets)
    best: dict[tuple[int, ...], list[int]] = {}
    vectors = sorted(itertools.product(*(range(m + 1) for m in budgets)), key=sum)
    for left in vectors:
        row = []
        for i in range(count):
            value = final[i]
            for j in range(count):
                span = step[i][j]
                if left[j] and span is not None:
                    value = max(value, span + best[left[:j] + (left[j] - 1,) + left[j + 1:]][j])
            row.append(value)
        best[left] = row
    full = tuple(budgets)
    answer = plain
    for j in range(count):
        answer = max(answer, starts[j] + best[full[:j] + (full[j] - 1,) + full[j + 1:]][j])
    return answer


def worst_agent_calls(wg: WorkflowGraph) -> AgentCalls:
    return _memo(wg, "agent_calls", _worst_agent_calls)


def _calls(wg: WorkflowGraph, skipped: int) -> dict[str, int]:
    per_lane = {lane.name: 0 for lane in wg.workflow.lanes}
    passes = {job_id: 1 for job_id in wg.order if not wg.among(job_id, skipped)}
    for reviewer, region in wg.regions.items():
        if wg.among(reviewer, skipped):
            continue
        for member in wg.reruns_left(reviewer, skipped):
            passes[member] += region.max
    for job_id, n in passes.items():
        job = wg.jobs[job_id]
        # A checkpoint's pass is one decision, not an attempt of an agent.
        per_lane[job.lane] += n if job.kind == "checkpoint" else n * job.max_attempts
    return per_lane


def _worst_agent_calls(wg: WorkflowGraph) -> AgentCalls:
    checkpoints = [j for j in wg.workflow.jobs if j.kind == "checkpoint"]
    names = [[name for name, _ in cp.choices] for cp in checkpoints]
    combinations = 1
    for options in names:
        combinations *= len(options)
    if checkpoints and combinations * max(1, len(wg.order)) > MAX_CHOICE_WORK:
        return AgentCalls(_calls(wg, 0), False)
    most = {lane.name: 0 for lane in wg.workflow.lanes}
    for combo in itertools.product(*names):
        chosen = {cp.id: name for cp, name in zip(checkpoints, combo, strict=True)}
        for lane, n in _calls(wg, skipped_bits(wg, chosen) if chosen else 0).items():
            most[lane] = max(most[lane], n)
    return AgentCalls(most, True)
