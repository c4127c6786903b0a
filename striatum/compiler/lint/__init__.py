"""Lint: rules for a workflow that compiles but probably does not do what was meant.

Each rule is one small function from a ``LintContext`` to diagnostics,
registered under its code in ``RULES``; docs/lint-rules.md documents the same
codes (a test keeps the two lists equal). What several rules need and is
costly to work out (the prompts read and parsed, the jobs no checkpoint can
choose) lives on the context and is computed once, on first use.

Lint reads the workflow and its prompt files, nothing else. It returns
unlocated diagnostics; the caller locates them (``Compilation.add``).

The package: ``context`` (LintContext), ``globs`` (which `writes` globs overlap),
``prompts`` (templates and the names they read), ``vendors`` (which agent a
lane runs), ``families`` (which model family it runs), ``words`` (message
phrasing), and the rules by theme in ``rules_graph``, ``rules_review``,
``rules_independence`` and ``rules_files``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...collector import paused
from ..diagnostics import Diagnostic
from .context import LintContext, Rule, _always_skipped_cheaply
from .globs import _overlapping_patterns, globs_overlap
from .prompts import read_prompt
from .rules_agents import (
    agent_flag_unknown,
    agent_lane_will_not_start,
    lane_cannot_write_produces,
    reviewer_cannot_record_verdict,
)
from .rules_budget import budget_below_worst_case
from .rules_files import (
    MAX_OVERLAP_REPORTS,
    artifact_unused,
    parallel_writes_overlap,
    prompt_file_missing,
    template_syntax,
    undefined_template_variable,
)
from .rules_graph import (
    checkpoint_single_choice,
    checkpoint_successor_never_chosen,
    dead_end,
    lane_unused,
    plan_bound_not_exact,
    revision_budget_large,
    unreachable_job,
)
from .rules_independence import review_chain_same_judge, reviewer_same_family
from .rules_review import reviewer_same_lane, reviewer_same_vendor
from .vendors import Agent, agent_of

if TYPE_CHECKING:
    from ..compile import Compilation

__all__ = [
    "MAX_OVERLAP_REPORTS",
    "RULES",
    "Agent",
    "LintContext",
    "Rule",
    "_always_skipped_cheaply",
    "_overlapping_patterns",
    "agent_of",
    "artifact_unused",
    "budget_below_worst_case",
    "checkpoint_single_choice",
    "checkpoint_successor_never_chosen",
    "dead_end",
    "globs_overlap",
    "lane_unused",
    "lint",
    "parallel_writes_overlap",
    "plan_bound_not_exact",
    "prompt_file_missing",
    "read_prompt",
    "review_chain_same_judge",
    "revision_budget_large",
    "reviewer_same_family",
    "reviewer_same_lane",
    "reviewer_same_vendor",
    "template_syntax",
    "undefined_template_variable",
    "unreachable_job",
]


def lint(comp: Compilation) -> list[Diagnostic]:
    """Every rule's findings on a workflow that compiled; nothing when it did not."""
    if not comp.ok or comp.workflow is None or comp.graph is None:
        return []
    ctx = LintContext(comp.workflow, comp.graph, comp.source.directory)
    out: list[Diagnostic] = []
    with paused():
        for rule in RULES.values():
            out.extend(rule(ctx))
    return out


RULES: dict[str, Rule] = {
    "STR301": unreachable_job,
    "STR302": dead_end,
    "STR303": reviewer_same_lane,
    "STR304": reviewer_same_vendor,
    "STR305": parallel_writes_overlap,
    "STR306": artifact_unused,
    "STR307": prompt_file_missing,
    "STR308": undefined_template_variable,
    "STR309": checkpoint_single_choice,
    "STR310": revision_budget_large,
    "STR311": lane_unused,
    "STR312": template_syntax,
    "STR313": checkpoint_successor_never_chosen,
    "STR314": plan_bound_not_exact,
    "STR315": agent_flag_unknown,
    "STR316": reviewer_cannot_record_verdict,
    "STR317": lane_cannot_write_produces,
    "STR318": agent_lane_will_not_start,
    "STR319": reviewer_same_family,
    "STR320": review_chain_same_judge,
    "STR330": budget_below_worst_case,
}
