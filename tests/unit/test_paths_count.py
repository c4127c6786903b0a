"""``count_paths`` against a count that copies the run's state at every branch.

The count shares one run's state between branches and undoes each branch's
writes; it must give the copying count's answer for every step budget,
``None`` included (the budget is spent on the same steps).
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.compiler.graph import WorkflowGraph, build_graph
from striatum.compiler.ir import normalize
from striatum.compiler.simulate import Simulation, _copy, count_paths
from tests.unit.strategies import valid_workflows

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def copying_count(wg: WorkflowGraph, limit: int) -> int | None:
    count = steps = 0
    stack = [Simulation(wg)]
    while stack:
        sim = stack.pop()
        while True:
            steps += 1
            if steps > limit:
                return None
            job_id = sim.next_ready()
            if job_id is None:
                count += 1
                break
            options = wg.jobs[job_id].outcomes
            if not options:
                sim.apply(job_id, None)
                continue
            for option in reversed(options):
                branch = _copy(sim)
                ended, _ = branch.apply(job_id, option)
                if ended is not None:
                    count += 1
                else:
                    stack.append(branch)
            break
    return count


@SETTINGS
@given(valid_workflows(max_jobs=12, max_reviews=4, max_checkpoints=3, max_budget=3),
       st.integers(1, 400))
def test_count_matches_the_copying_count(doc: dict[str, Any], limit: int) -> None:
    wg = build_graph(normalize(doc))
    assert count_paths(wg, limit) == copying_count(wg, limit)
    assert count_paths(wg, 100_000) == copying_count(wg, 100_000)
