"""Co-blindness rules: a review on the same lane (STR303) or the same agent (STR304)
as the work it reviews."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ..diagnostics import Diagnostic, diag
from ..ir import Job
from ..text import echo
from .vendors import Agent, agent_of
from .words import _jobs_phrase, _quoted

if TYPE_CHECKING:
    from .context import LintContext

_CO_BLINDNESS = ("two agents of the same model tend to agree whether or not the work is "
                 "good (reviewer co-blindness)")


def _reviewed(ctx: LintContext, review: Job) -> list[Job]:
    """What a review judges: its revise target and the tasks it needs directly."""
    ids = [review.revise.target] if review.revise else []
    ids += [n for n in review.needs if ctx.jobs[n].kind == "task" and n not in ids]
    return [ctx.jobs[i] for i in ids]


def _reviews(ctx: LintContext) -> Iterator[tuple[Job, list[Job]]]:
    for job in ctx.workflow.jobs:
        if job.kind == "review":
            yield job, _reviewed(ctx, job)


def reviewer_same_lane(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for review, reviewed in _reviews(ctx):
        same = [job.id for job in reviewed if job.lane == review.lane]
        if same:
            out.append(diag(
                "STR303", f"review {review.id!r} runs on lane {review.lane!r}, the same lane "
                          f"as {_jobs_phrase(same)}, which it reviews",
                ("jobs", review.index, "lane"),
                hint=f"{_CO_BLINDNESS}: run the review on a lane with another agent "
                     "or model"))
    return out


def _lane_agent(ctx: LintContext, lane_name: str) -> Agent | None:
    lane = ctx.workflow.lane(lane_name)
    if lane is None or lane.kind != "command":
        return None  # an operator or a human is whoever claims the job
    return agent_of(lane.command)


def _same_agent(mine: Agent, theirs: Agent | None) -> bool:
    # Two explicit, different models are different reviewers; a lane without
    # --model runs the vendor's default, which may well be the other's model.
    return (theirs is not None and theirs.program == mine.program
            and not (mine.model and theirs.model and mine.model != theirs.model))


def _models_phrase(ctx: LintContext, lanes: list[str]) -> str:
    models = {lane: _lane_agent(ctx, lane) for lane in lanes}
    unset = [lane for lane, agent in models.items() if agent is None or agent.model is None]
    if not unset:
        agent = models[lanes[0]]
        return f" with model {echo(agent.model)}" if agent else ""
    noun = "lane" if len(unset) == 1 else "lanes"
    return f", and nothing says their models differ (no --model on {noun} {_quoted(unset)})"


def _alike_on_other_lanes(ctx: LintContext, alike: Callable[[Agent, str], bool]
                          ) -> Iterator[tuple[Job, Agent, list[Job], list[str]]]:
    """Each review on a command lane, with the jobs it reviews on other lanes that
    ``alike(its agent, their lane)`` finds alike, and those lanes; reviews with none
    are left out."""
    for review, reviewed in _reviews(ctx):
        mine = _lane_agent(ctx, review.lane)
        if mine is None:
            continue
        same = [job for job in reviewed if job.lane != review.lane and alike(mine, job.lane)]
        if same:
            yield review, mine, same, list(dict.fromkeys(job.lane for job in same))


def reviewer_same_vendor(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for review, mine, same, lanes in _alike_on_other_lanes(
            ctx, lambda mine, lane: _same_agent(mine, _lane_agent(ctx, lane))):
        out.append(diag(
            "STR304", f"review {review.id!r} (lane {review.lane!r}) and "
                      f"{_jobs_phrase([job.id for job in same])} it reviews (lane "
                      f"{_quoted(lanes)}) all run {echo(mine.program)}"
                      + _models_phrase(ctx, [review.lane, *lanes]),
            ("jobs", review.index, "lane"),
            hint=f"{_CO_BLINDNESS}: review with another vendor's agent, or pass "
                 "different `--model` values to the two lanes"))
    return out
