"""LintContext: a compiled workflow, and what more than one rule asks about it.

What several rules need and is costly to work out (the prompts read and
parsed, the jobs no checkpoint can choose, the jobs that never run) lives on
the context and is computed once, on first use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path as FsPath

from ..diagnostics import Diagnostic
from ..graph import WorkflowGraph
from ..ir import Job, Workflow
from ..plan import MAX_CHOICE_WORK, skipped_bits
from .prompts import Template, _load_templates


@dataclass
class LintContext:
    """A compiled workflow, and what more than one rule asks about it."""

    workflow: Workflow
    graph: WorkflowGraph
    directory: FsPath  # the workflow file's folder: prompt paths are relative to it

    @cached_property
    def jobs(self) -> dict[str, Job]:
        return self.graph.jobs

    @cached_property
    def jobs_by_lane(self) -> dict[str, list[Job]]:
        """lane name -> its jobs, in file order."""
        found: dict[str, list[Job]] = {}
        for job in self.workflow.jobs:
            found.setdefault(job.lane, []).append(job)
        return found

    @cached_property
    def checkpoints(self) -> list[Job]:
        return [job for job in self.workflow.jobs if job.kind == "checkpoint"]

    @cached_property
    def final_ids(self) -> tuple[str, ...]:
        """The jobs that end the workflow: ``final`` when declared, else the sinks."""
        return self.workflow.final or self.graph.sinks

    @cached_property
    def never_chosen(self) -> dict[str, tuple[str, int]]:
        """job -> (a checkpoint it needs that lists it in no choice, that need's index)."""
        found: dict[str, tuple[str, int]] = {}
        if not self.checkpoints:
            return found
        for job in self.workflow.jobs:
            for k, need in enumerate(job.needs):
                checkpoint = self.jobs[need]
                if checkpoint.kind == "checkpoint" and not any(
                        job.id in successors for _, successors in checkpoint.choices):
                    found[job.id] = (need, k)
                    break
        return found

    @cached_property
    def choice_work(self) -> int:
        """Combinations of checkpoint choices × jobs: plan.py's measure of enumeration cost."""
        combinations = 1
        for checkpoint in self.checkpoints:
            combinations *= max(1, len(checkpoint.choices))
        return combinations * max(1, len(self.graph.order))

    @cached_property
    def always_skipped(self) -> int:
        """Bitset of the jobs skipped under every combination of checkpoint choices."""
        if not self.checkpoints:
            return 0
        if self.choice_work > MAX_CHOICE_WORK:
            return _always_skipped_cheaply(self)
        return _always_skipped_exactly(self)

    @cached_property
    def templates(self) -> list[Template]:
        return _load_templates(self)


Rule = Callable[[LintContext], list[Diagnostic]]


# ---------------------------------------------------------------- never runs (STR301, STR313)

def _choice_combinations(names: list[list[str]]) -> Iterator[tuple[str, ...]]:
    # "Every checkpoint takes its k-th choice" first: in most workflows these
    # few already run every job once, which empties the intersection early.
    widest = max(len(options) for options in names)
    for k in range(widest):
        yield tuple(options[k % len(options)] for options in names)
    yield from itertools.product(*names)


def _always_skipped_exactly(ctx: LintContext) -> int:
    ids = [checkpoint.id for checkpoint in ctx.checkpoints]
    names = [[name for name, _ in checkpoint.choices] for checkpoint in ctx.checkpoints]
    if any(not options for options in names):
        return 0
    always = (1 << len(ctx.workflow.jobs)) - 1
    for combination in _choice_combinations(names):
        always &= skipped_bits(ctx.graph, dict(zip(ids, combination, strict=True)))
        if not always:
            break
    return always


def _always_skipped_cheaply(ctx: LintContext) -> int:
    # Too many combinations to try: only what no choice lists, and what then
    # has nothing left to wait for. A skipped checkpoint skips nobody by its
    # choices, so "no choice lists it" counts only under a checkpoint that
    # always runs (one with no checkpoint upstream). Every job found never runs.
    wg, skipped = ctx.graph, 0
    checkpoint_bits = sum(wg.bit(checkpoint.id) for checkpoint in ctx.checkpoints)
    for job_id in wg.order:
        needs = ctx.jobs[job_id].needs
        cause = ctx.never_chosen.get(job_id)
        unlisted = cause is not None and not (
            wg.ancestors_bits[cause[0]] & checkpoint_bits & ~wg.bit(cause[0]))
        if unlisted or (needs and all(skipped & wg.bit(n) for n in needs)):
            skipped |= wg.bit(job_id)
    return skipped
