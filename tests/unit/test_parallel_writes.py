"""STR305 (parallel `writes` that overlap) against the whole-graph closure.

The rule asks the graph only about the jobs whose globs overlap another job's
(``WorkflowGraph.unrelated``); the closure (``reach``, ``ancestors_bits``) holds
n²/2 bits on a line of writers. Its findings must be the ones the closure gives,
in the same order, on generated workflows listed in any order.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.compiler.diagnostics import Diagnostic, diag
from striatum.compiler.graph import WorkflowGraph, build_graph
from striatum.compiler.ir import normalize
from striatum.compiler.lint import LintContext, parallel_writes_overlap
from striatum.compiler.lint.globs import _overlapping_patterns
from striatum.compiler.lint.rules_files import MAX_OVERLAP_REPORTS, _overlap_diag
from tests.unit.strategies import valid_workflows

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
GLOBS = ("src/**", "src/a/*", "src/a/x.py", "docs/*.md", "*", "src/b/**", "[z-a]")


def closure_findings(ctx: LintContext) -> list[Diagnostic]:
    """STR305 as the closure answers it: every earlier job neither upstream nor
    downstream of a writer, pairs listed in file order up to the report limit."""
    wg = ctx.graph
    writers: dict[str, int] = {}
    for job in ctx.workflow.jobs:
        for pattern in job.writes:
            writers[pattern] = writers.get(pattern, 0) | wg.bit(job.id)
    overlaps = _overlapping_patterns(list(writers))
    out: list[Diagnostic] = []
    untold, last = 0, None
    for job in ctx.workflow.jobs:
        parallel = (wg.bit(job.id) - 1) & ~(wg.reach[job.id] | wg.ancestors_bits[job.id])
        reported = 0
        for k, mine in enumerate(job.writes):
            for theirs in overlaps[mine]:
                hits = writers[theirs] & parallel & ~reported
                if not hits:
                    continue
                reported |= hits
                room = MAX_OVERLAP_REPORTS - len(out)
                listed = wg.ids_of(hits)
                if len(listed) > room:
                    untold += len(listed) - max(room, 0)
                    last = ("jobs", job.index, "writes", k)
                    listed = listed[:max(room, 0)]
                out.extend(_overlap_diag(job, k, mine, ctx.jobs[other], theirs)
                           for other in listed)
    if untold and last is not None:
        out.append(diag("STR305", f"... and {untold:,} more pairs of parallel jobs whose "
                                  "writes overlap", last, hint="fix the ones above first"))
    return out


def context(doc: dict[str, Any]) -> LintContext:
    workflow = normalize(doc)
    return LintContext(workflow, build_graph(workflow), Path("."))


@SETTINGS
@given(valid_workflows(max_jobs=14, max_reviews=3), st.data())
def test_findings_match_the_closure(doc: dict[str, Any], data: st.DataObject) -> None:
    for job in doc["jobs"]:
        chosen = data.draw(st.lists(st.sampled_from(GLOBS), max_size=2, unique=True))
        if chosen:
            job["writes"] = chosen
    ctx = context(doc)
    assert parallel_writes_overlap(ctx) == closure_findings(ctx)


@SETTINGS
@given(valid_workflows(max_jobs=12, max_reviews=4), st.data())
def test_unrelated_matches_the_closure(doc: dict[str, Any], data: st.DataObject) -> None:
    wg: WorkflowGraph = build_graph(normalize(doc))
    members = data.draw(st.lists(st.sampled_from(wg.order), unique=True))
    ranked = [job_id for job_id in wg.order if job_id in members]
    for both_ways in (True, False):
        found = wg.unrelated(ranked, both_ways=both_ways)
        for k, job_id in enumerate(ranked):
            related = wg.reach[job_id] | wg.ancestors_bits[job_id]
            expected = {other for j, other in enumerate(ranked)
                        if not related & wg.bit(other) and (both_ways or j < k)}
            assert {o for j, o in enumerate(ranked) if found[job_id] >> j & 1} == expected


def diamonds(n: int, shared: int) -> list[dict[str, Any]]:
    """Diamonds of 10 in a line; ``shared`` of each one's 8 parallel jobs write ``src/**``."""
    jobs: list[dict[str, Any]] = []
    for i in range(n):
        b, p = i - i % 10, i % 10
        needs = [f"j{b}"] if 0 < p < 9 else [f"j{k}" for k in range(b + 1, b + 9)] if p else (
            [f"j{i - 1}"] if i else [])
        own = "src/**" if p in (0, 9) or p <= shared else f"src/m{i}/**"
        jobs.append({"id": f"j{i}", "lane": "a", "needs": needs, "writes": [own]})
    return jobs


def test_generated_diamonds_in_and_out_of_file_order() -> None:
    # 3 shared writers a diamond: 18 pairs each, past the 50 listed, then counted.
    jobs = diamonds(400, 3)
    for shuffle in (False, True):
        if shuffle:
            random.Random(7).shuffle(jobs)
        ctx = context({"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": jobs})
        found = parallel_writes_overlap(ctx)
        assert found == closure_findings(ctx)
        assert len(found) == MAX_OVERLAP_REPORTS + 1
        assert found[-1].message.startswith(f"... and {40 * 18 - MAX_OVERLAP_REPORTS:,} more")


def test_a_line_of_writers_of_one_glob_has_no_pairs() -> None:
    jobs = [{"id": f"j{i}", "lane": "a", "needs": [f"j{i - 1}"] if i else [],
             "writes": ["src/**"]} for i in range(3000)]
    ctx = context({"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": jobs})
    assert parallel_writes_overlap(ctx) == []
    assert "reach" not in ctx.graph.__dict__  # the closure was never built
