"""The graph's targeted reachability queries against the whole-graph bitsets.

``reach`` and ``ancestors_bits`` hold the full closure (n²/2 bits on a chain);
the compiler answers its questions without them. Each answer here must equal
the one the closure gives, on generated workflows with revision loops.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.compiler.bounds import worst_wall_time
from striatum.compiler.graph import WorkflowGraph, build_graph
from striatum.compiler.ir import normalize
from tests.unit.strategies import valid_workflows

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def graph(doc: dict[str, Any]) -> WorkflowGraph:
    return build_graph(normalize(doc))


@SETTINGS
@given(valid_workflows(max_jobs=12, max_reviews=4))
def test_is_ancestor_matches_the_closure(doc: dict[str, Any]) -> None:
    wg = graph(doc)
    for a in wg.order:
        for d in wg.order:
            expected = a != d and bool(wg.reach[a] & wg.bit(d))
            assert wg.is_ancestor(a, d) == expected, (a, d)


@SETTINGS
@given(valid_workflows(max_jobs=12, max_reviews=4))
def test_regions_match_the_closure(doc: dict[str, Any]) -> None:
    wg = graph(doc)
    for reviewer, region in wg.regions.items():
        below_target = wg.reach[region.target]
        after_reviewer = wg.reach[reviewer] & ~wg.bit(reviewer)
        assert region.loop == wg.ids_of(below_target & wg.ancestors_bits[reviewer])
        assert region.reruns == wg.ids_of(below_target & ~after_reviewer)
        assert wg.region_bits(reviewer) == below_target & ~after_reviewer


@SETTINGS
@given(valid_workflows(max_jobs=12, max_reviews=4), st.data())
def test_reach_within_matches_the_closure(doc: dict[str, Any], data: st.DataObject) -> None:
    wg = graph(doc)
    targets = data.draw(st.lists(st.sampled_from(wg.order), unique=True))
    within = wg.reach_within(targets)
    for job_id in wg.order:
        expected = {t for t in targets if wg.reach[job_id] & wg.bit(t)}
        assert {t for k, t in enumerate(targets) if within[job_id] >> k & 1} == expected


def test_a_long_chain_has_its_bounded_wall_time() -> None:
    # Many loops: the bound (not the exact walk) is taken, without the spans between them.
    lanes = {"a": {"kind": "command", "command": ["true"], "timeout": 10}}
    jobs: list[dict[str, Any]] = []
    for i in range(60):
        job: dict[str, Any] = {"id": f"j{i}", "lane": "a", "max_attempts": 1,
                               "needs": [f"j{i - 1}"] if i else []}
        if i % 3 == 2:
            job.update(kind="review", revise={"target": f"j{i - 2}", "max": 1})
        jobs.append(job)
    wall = worst_wall_time(graph({"name": "w", "lanes": lanes, "jobs": jobs}))
    # first pass 600 s, then each of the 20 loops restarts at its target: 10 x (60 - t) s.
    assert (wall.seconds, wall.exact) == (600 + sum(10 * (60 - t) for t in range(0, 60, 3)),
                                          False)
