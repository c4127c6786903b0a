"""The dry run: parallel waves, revision regions, the worst case and the paths.

The worst case is exact under the run semantics (simulate.py): every job runs
once, and each ``needs_revision`` a reviewer may still give sends its region
back to run again. Checkpoints are decided once per run (the compiler keeps
them out of revision loops), so the maximum is taken over their choices: a
skipped branch neither runs nor revises.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..collector import paused
from ..errors import UsageError
from .graph import WorkflowGraph
from .simulate import Outcome, count_paths, run
from .text import echo

MAX_CHOICE_WORK = 4_000_000  # combinations x jobs before the bound stops being exact


@dataclass(frozen=True)
class WorstCase:
    executions: int
    exact: bool
    choices: dict[str, str]


def waves(wg: WorkflowGraph) -> list[list[str]]:
    """Topological generations: a job's wave is one past the latest of its needs."""
    if "waves" not in wg.memo:
        wg.memo["waves"] = _waves(wg)
    found: list[list[str]] = wg.memo["waves"]
    return found


def _waves(wg: WorkflowGraph) -> list[list[str]]:
    depth: dict[str, int] = {}
    out: list[list[str]] = []
    for job_id in wg.order:
        level = 1 + max((depth[n] for n in wg.pred[job_id]), default=-1)
        depth[job_id] = level
        if level == len(out):
            out.append([])
        out[level].append(job_id)
    index = wg.index
    return [sorted(wave, key=index.__getitem__) if len(wave) > 1 else wave for wave in out]


def skipped_bits(wg: WorkflowGraph, chosen: dict[str, str]) -> int:
    """The jobs a run skips when each checkpoint takes the choice in ``chosen``."""
    skipped = 0
    jobs = wg.jobs
    choices = {cp: dict(jobs[cp].choices)[name] for cp, name in chosen.items()}
    for job_id in wg.order:
        needs = jobs[job_id].needs
        if not needs:
            continue
        if all(skipped & wg.bit(n) for n in needs) or any(
                n in choices and not skipped & wg.bit(n) and job_id not in choices[n]
                for n in needs):
            skipped |= wg.bit(job_id)
    return skipped


def _total(wg: WorkflowGraph, skipped: int) -> int:
    total = len(wg.order) - skipped.bit_count()
    for reviewer, region in wg.regions.items():
        if not wg.among(reviewer, skipped):
            total += region.max * len(wg.reruns_left(reviewer, skipped))
    return total


def worst_case(wg: WorkflowGraph) -> WorstCase:
    if "worst_case" not in wg.memo:
        wg.memo["worst_case"] = _worst_case(wg)
    found: WorstCase = wg.memo["worst_case"]
    return found


def _worst_case(wg: WorkflowGraph) -> WorstCase:
    checkpoints = [j for j in wg.workflow.jobs if j.kind == "checkpoint"]
    if not checkpoints:
        return WorstCase(_total(wg, 0), True, {})
    names = [[name for name, _ in cp.choices] for cp in checkpoints]
    combinations = 1
    for options in names:
        combinations *= len(options)
    if combinations * max(1, len(wg.order)) > MAX_CHOICE_WORK:
        # Too many to try: assume no branch is ever skipped, a true upper bound.
        return WorstCase(_total(wg, 0), False, {})
    best: WorstCase | None = None
    for combo in itertools.product(*names):
        chosen = {cp.id: name for cp, name in zip(checkpoints, combo, strict=True)}
        total = _total(wg, skipped_bits(wg, chosen))
        if best is None or total > best.executions:
            best = WorstCase(total, True, chosen)
    assert best is not None
    return best


def parse_verdicts(text: str, wg: WorkflowGraph) -> dict[str, deque[str]]:
    """'check=needs_revision,check=accept,go=continue' -> a queue of outcomes per job."""
    script: dict[str, deque[str]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        job_id, sep, outcome = item.partition("=")
        job_id, outcome = job_id.strip(), outcome.strip()
        if not sep or not job_id or not outcome:
            raise UsageError(f"verdict {echo(item)} is not JOB=OUTCOME",
                             hint="write JOB=OUTCOME items separated by commas, "
                                  "e.g. 'check=needs_revision,check=accept'")
        job = wg.jobs.get(job_id)
        if job is None or not job.outcomes:
            what = "not a job" if job is None else f"a {job.kind}"
            raise UsageError(f"{echo(job_id)} is {what}: only a review or a checkpoint takes "
                             "a verdict", hint=_deciders(wg))
        if outcome not in job.outcomes:
            raise UsageError(f"{echo(job_id)} cannot take {echo(outcome)}",
                             hint=f"it takes {_either(job.outcomes)}")
        script.setdefault(job_id, deque()).append(outcome)
    return script


def _deciders(wg: WorkflowGraph, shown: int = 10) -> str:
    ids = [job.id for job in wg.workflow.jobs if job.outcomes]
    if not ids:
        return "the workflow has no reviews or checkpoints to script"
    more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
    return "jobs that take one: " + ", ".join(repr(i) for i in ids[:shown]) + more


def _either(options: tuple[str, ...]) -> str:
    quoted = [repr(option) for option in options]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def walk(wg: WorkflowGraph, script: dict[str, deque[str]]) -> tuple[Outcome, list[str]]:
    """Follow one scripted path; a decision with nothing scripted takes the first option
    (accept, or a checkpoint's first choice). Returns the outcome and any unused verdicts."""
    defaults: list[str] = []

    def decide(job_id: str, kind: str, options: tuple[str, ...]) -> str:
        queue = script.get(job_id)
        if queue:
            return queue.popleft()
        defaults.append(job_id)
        return options[0]

    outcome = run(wg, decide)
    unused = [f"{job}={o}" for job, queue in script.items() for o in queue]
    for step in outcome.steps:
        if step.job in defaults and step.outcome is not None and not step.note:
            step.note = "(default)"
            defaults.remove(step.job)
    return outcome, unused


def plan_document(wg: WorkflowGraph, *, paths_limit: int | None = None) -> dict[str, Any]:
    with paused():
        return _plan_document(wg, paths_limit)


def _plan_document(wg: WorkflowGraph, paths_limit: int | None) -> dict[str, Any]:
    from .bounds import worst_agent_calls, worst_wall_time

    worst = worst_case(wg)
    wall = worst_wall_time(wg)
    calls = worst_agent_calls(wg)
    paths = count_paths(wg, paths_limit)
    return {
        "workflow": wg.workflow.name,
        "jobs": len(wg.order),
        "waves": waves(wg),
        "regions": [
            {"reviewer": r.reviewer, "target": r.target, "max": r.max,
             "on_exhausted": r.on_exhausted, "loop": list(r.loop), "reruns": list(r.reruns)}
            for r in wg.regions.values()
        ],
        "worst_case_job_executions": worst.executions,
        "worst_case_exact": worst.exact,
        "worst_case_choices": worst.choices,
        "worst_case_wall_seconds": wall.seconds,
        "worst_case_wall_exact": wall.exact,
        "wall_unbounded_by": list(wall.untimed),
        "worst_case_agent_calls": calls.per_lane,
        "worst_case_agent_calls_exact": calls.exact,
        "paths": paths,
        "paths_exact": paths is not None,
    }


def walk_document(outcome: Outcome, unused: list[str]) -> dict[str, Any]:
    return {
        "status": outcome.status,
        "executions": outcome.executions,
        "steps": [{"job": s.job, "kind": s.kind, "outcome": s.outcome,
                   "execution": s.execution, "note": s.note} for s in outcome.steps],
        "unused_verdicts": unused,
    }
