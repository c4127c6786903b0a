"""Independence rules beyond the lane and the program: a reviewer of the same model
family as the work it reviews (STR319), and a review chain whose final acceptance
is given by the reviewer that drove the revisions (STR320)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..diagnostics import Diagnostic, diag
from ..text import echo
from .families import family_of
from .rules_review import _CO_BLINDNESS, _alike_on_other_lanes, _lane_agent, _same_agent
from .vendors import Agent
from .words import _jobs_phrase, _quoted

if TYPE_CHECKING:
    from .context import LintContext


def _model_words(ctx: LintContext, lane: str) -> str:
    agent = _lane_agent(ctx, lane)
    if agent is None or agent.model is None:
        return f"lane {lane!r}, the default model of {echo(agent.program if agent else lane)}"
    return f"lane {lane!r}, model {echo(agent.model)}"


def reviewer_same_family(ctx: LintContext) -> list[Diagnostic]:
    def alike(mine: Agent, lane: str) -> bool:
        # Same lane or same agent: STR303 and STR304 say so already.
        theirs = _lane_agent(ctx, lane)
        return (theirs is not None and not _same_agent(mine, theirs)
                and family_of(mine) is not None and family_of(theirs) == family_of(mine))

    out: list[Diagnostic] = []
    for review, mine, same, lanes in _alike_on_other_lanes(ctx, alike):
        family = family_of(mine)
        out.append(diag(
            "STR319", f"review {review.id!r} ({_model_words(ctx, review.lane)}) and "
                      f"{_jobs_phrase([job.id for job in same])} it reviews ("
                      + "; ".join(_model_words(ctx, lane) for lane in lanes)
                      + f") are all of model family {family!r}",
            ("jobs", review.index, "lane"),
            hint=f"{_CO_BLINDNESS}, and models of one family share their blind spots: "
                 "review with a model of another family (docs/lint-rules.md#str319 "
                 "lists the families)"))
    return out


def _same_judge(ctx: LintContext, first: str, second: str) -> str | None:
    """How two review lanes are one judge, in words, or None when they are not."""
    if first == second:
        return f"both on lane {first!r}"
    mine, theirs = _lane_agent(ctx, first), _lane_agent(ctx, second)
    if mine is None or theirs is None:
        return None  # operators and humans: whoever claims each, nothing to compare
    if _same_agent(mine, theirs):
        return f"both run {echo(mine.program)} (lanes {_quoted([first, second])})"
    family = family_of(mine)
    if family is not None and family == family_of(theirs):
        return f"both of model family {family!r} (lanes {_quoted([first, second])})"
    return None


def review_chain_same_judge(ctx: LintContext) -> list[Diagnostic]:
    graph = ctx.graph
    reviews = [job for job in ctx.workflow.jobs if job.kind == "review"]
    # The reviews that give a final acceptance: no review follows them.
    followed = graph.followed_by({job.id for job in reviews})
    last = [job.id for job in reviews if not followed[job.id]]
    below_last = graph.reach_within(last)
    number = {job_id: 1 << k for k, job_id in enumerate(last)}
    out: list[Diagnostic] = []
    found: dict[str, list[tuple[str, str]]] = {}
    for driver in reviews:
        if driver.revise is None:
            continue
        bits = below_last[driver.id] & ~number.get(driver.id, 0)
        for final in (job_id for job_id in last if bits & number[job_id]):
            how = _same_judge(ctx, driver.lane, ctx.jobs[final].lane)
            if how is not None:
                found.setdefault(final, []).append((driver.id, how))
    for job in reviews:
        if job.id not in found:
            continue
        drivers = found[job.id]
        out.append(diag(
            "STR320", f"review {job.id!r} gives the final acceptance of work that "
                      f"{'review' if len(drivers) == 1 else 'reviews'} "
                      f"{_quoted([d for d, _ in drivers])} sent back for revision, and "
                      f"the two are one judge: {drivers[0][1]}",
            ("jobs", job.index, "lane"),
            hint="the work was revised until that reviewer was content, so its "
                 "acceptance at the end is no independent check: give the final review "
                 "a lane of another vendor and model family"))
    return out
