"""Rules on the job graph: jobs that never run (STR301, STR313), dead ends (STR302),
checkpoints with nothing to decide (STR309), large revision budgets (STR310),
unused lanes (STR311) and an inexact plan bound (STR314)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..diagnostics import Diagnostic, diag
from ..plan import MAX_CHOICE_WORK, worst_case
from .words import _quoted

if TYPE_CHECKING:
    from .context import LintContext

LARGE_REVISION_BUDGET = 5


# ---------------------------------------------------------------- STR301, STR313: never runs

def unreachable_job(ctx: LintContext) -> list[Diagnostic]:
    wg = ctx.graph
    out: list[Diagnostic] = []
    checkpoint_bits = sum(wg.bit(checkpoint.id) for checkpoint in ctx.checkpoints)
    for job_id in wg.ids_of(ctx.always_skipped):
        if job_id in ctx.never_chosen:
            continue  # STR313 says why, at the need that causes it
        job = ctx.jobs[job_id]
        deciders = wg.ids_of(wg.ancestors_bits[job_id] & checkpoint_bits)
        # Under today's skip rule a job every checkpoint lists is only ever
        # skipped through its needs; the other wording is for any later rule.
        if all(ctx.always_skipped & wg.bit(n) for n in job.needs):
            why = f"everything it needs ({_quoted(job.needs)}) is always skipped too"
        else:
            why = f"no combination of the choices of checkpoint {_quoted(deciders)} lets it run"
        out.append(diag(
            "STR301", f"job {job_id!r} never runs: {why}", ("jobs", job.index),
            hint=f"list it (or a job it needs) in a choice of {_quoted(deciders)}, "
                 "or remove it"))
    return out


def checkpoint_successor_never_chosen(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for job_id, (checkpoint_id, k) in ctx.never_chosen.items():
        job, checkpoint = ctx.jobs[job_id], ctx.jobs[checkpoint_id]
        names = [name for name, _ in checkpoint.choices]
        out.append(diag(
            "STR313", f"job {job_id!r} needs checkpoint {checkpoint_id!r}, but none of its "
                      f"choices ({_quoted(names)}) lists {job_id!r}, so it is skipped whenever "
                      f"{checkpoint_id!r} runs",
            ("jobs", job.index, "needs", k),
            hint=f"add {job_id!r} to the choice of {checkpoint_id!r} that should run it, "
                 f"or take {checkpoint_id!r} out of its needs"))
    return out


# ---------------------------------------------------------------- STR302: dead ends


def dead_end(ctx: LintContext) -> list[Diagnostic]:
    wg, final = ctx.graph, ctx.workflow.final
    if final:
        leads, finals = wg.reach_within(list(final)), _quoted(final)
        return [diag("STR302", f"job {job.id!r} does not lead to any final job "
                               f"({finals}): its work is never used",
                     ("jobs", job.index),
                     hint=f"make a final job need {job.id!r} (directly or through others), "
                          "or add it to `final`")
                for job in ctx.workflow.jobs if not leads[job.id]]
    sinks = wg.sinks
    if len(sinks) < 2:
        return []
    ends = _quoted(sinks)
    return [diag("STR302", f"job {sink!r} is one of {len(sinks)} jobs nothing needs "
                           f"({ends}): the workflow has more than one end",
                 ("jobs", ctx.jobs[sink].index),
                 hint="declare `final` with the jobs that end the workflow, or make the "
                      "others feed into one")
            for sink in sinks[:-1]]


# ---------------------------------------------------------------- budgets and leftovers


def checkpoint_single_choice(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for checkpoint in ctx.checkpoints:
        if len(checkpoint.choices) >= 2:
            continue
        names = _quoted(name for name, _ in checkpoint.choices)
        only = f"only one choice ({names})" if names else "no choices"
        out.append(diag(
            "STR309", f"checkpoint {checkpoint.id!r} has {only}, so there is nothing to decide",
            ("jobs", checkpoint.index, "choices"),
            hint='add the alternative (e.g. "cancel": []), or make it a task or a review'))
    return out


def revision_budget_large(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for reviewer, region in ctx.graph.regions.items():
        if region.max <= LARGE_REVISION_BUDGET:
            continue
        rerun = region.reruns
        out.append(diag(
            "STR310", f"review {reviewer!r} may send work back to {region.target!r} "
                      f"{region.max} times; each time {len(rerun)} job(s) run again "
                      f"({_quoted(rerun)}), up to {region.max * len(rerun)} more executions",
            ("jobs", ctx.jobs[reviewer].index, "revise", "max"),
            hint="every revision re-runs the loop; the plan's worst case grows with it: "
                 f"keep `max` at {LARGE_REVISION_BUDGET} or less (1-3 is typical) and let "
                 "`on_exhausted: escalate` bring in a human"))
    return out


def lane_unused(ctx: LintContext) -> list[Diagnostic]:
    used = {job.lane for job in ctx.workflow.jobs}
    return [diag("STR311", f"lane {lane.name!r} is declared but no job runs on it",
                 ("lanes", lane.name), key=True,
                 hint=f'remove it, or give a job "lane": "{lane.name}"')
            for lane in ctx.workflow.lanes if lane.name not in used]


def plan_bound_not_exact(ctx: LintContext) -> list[Diagnostic]:
    if ctx.choice_work <= MAX_CHOICE_WORK:
        return []  # plan tries every combination then, so its bound is exact
    worst = worst_case(ctx.graph)
    if worst.exact:
        return []
    first = ctx.checkpoints[0]
    return [diag(
        "STR314", f"the plan's worst case ({worst.executions:,} job executions) is an upper "
                  f"bound, not exact: the {len(ctx.checkpoints)} checkpoints have too many "
                  "combinations of choices to try each",
        ("jobs", first.index),
        hint="runs still end within the bound, which assumes no branch is skipped; fewer "
             "checkpoints or choices make it exact")]
