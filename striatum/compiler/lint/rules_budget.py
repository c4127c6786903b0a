"""A declared budget below what the plan proves a run may need (STR330).

The bounds are plan's (job executions, ``bounds.py``'s wall time); the
message names the revision loops that carry a run past the limit, or says
that the jobs alone do. ``max_cost`` is left alone: cost is what lanes report
as they run, and nothing before the run bounds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..bounds import wall_without_revisions, worst_wall_time
from ..diagnostics import Diagnostic, diag
from ..graph import Region, WorkflowGraph
from ..plan import skipped_bits, worst_case

if TYPE_CHECKING:
    from .context import LintContext


def _loops(regions: list[Region]) -> str:
    return ", ".join(f"{r.reviewer} → {r.target} (up to {r.max} revision"
                     f"{'s' if r.max != 1 else ''})" for r in regions)


def _past(wg: WorkflowGraph, runs: int) -> tuple[int, list[Region]]:
    """In the plan's worst case: how many jobs run once, and the fewest revision loops
    (the largest first) whose extra passes take the run past ``runs``."""
    worst = worst_case(wg)
    skipped = skipped_bits(wg, worst.choices) if worst.choices else 0
    jobs = len(wg.order) - skipped.bit_count()
    adds = sorted(((r.max * len(wg.reruns_left(r.reviewer, skipped)), r)
                   for r in wg.regions.values() if not wg.among(r.reviewer, skipped)),
                  key=lambda pair: -pair[0])
    total, named = jobs, []
    for extra, region in adds:
        if total > runs:
            break
        total += extra
        named.append(region)
    return jobs, named if jobs <= runs else []


def budget_below_worst_case(ctx: LintContext) -> list[Diagnostic]:
    budget = ctx.workflow.budget
    if budget is None:
        return []
    wg = ctx.graph
    loops = [r for r in wg.regions.values() if r.max > 0]
    out = []
    runs = budget.max_job_runs
    worst = worst_case(wg).executions
    if runs is not None and runs < worst:
        jobs_alone, culprits = _past(wg, runs)
        why = (f"its {jobs_alone} jobs alone run more than that" if not culprits
               else f"the revision loop{'s' if len(culprits) > 1 else ''} {_loops(culprits)} "
                    "can take it there")
        out.append(diag(
            "STR330", f"max_job_runs {runs} is below the plan's worst case of {worst} job "
                      f"executions: {why}",
            ("budget", "max_job_runs"),
            hint=f"raise max_job_runs to {worst}, or lower the revision budgets; a run that "
                 "reaches the limit stops and waits for a human"))
    seconds = budget.max_wall_seconds
    if seconds is None:
        return out
    wall = worst_wall_time(wg)
    if wall.seconds is None:
        out.append(diag(
            "STR330", f"max_wall_seconds {seconds} cannot be proven enough: "
                      f"{', '.join(wall.untimed)} wait(s) for a person or an operator with no "
                      "time limit",
            ("budget", "max_wall_seconds"),
            hint="a run that reaches the limit stops and waits for a human; time it spends "
                 "blocked does not count"))
    elif seconds < wall.seconds:
        plain = wall_without_revisions(wg)
        why = ("the longest chain of jobs alone takes longer, at the lanes' timeouts"
               if plain is not None and plain > seconds else
               f"the revision loop{'s' if len(loops) > 1 else ''} {_loops(loops)} can take "
               "it there")
        out.append(diag(
            "STR330", f"max_wall_seconds {seconds} is below the plan's worst-case wall time of "
                      f"{wall.seconds} seconds: {why}",
            ("budget", "max_wall_seconds"),
            hint=f"raise max_wall_seconds to {wall.seconds}, or shorten the lanes' timeouts "
                 "or the revision budgets"))
    return out

