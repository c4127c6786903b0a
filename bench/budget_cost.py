"""What a budget costs a claim and its completion: runs of 100 and 5,000 ready jobs
(``--quick``: 2,000), each with and without a budget, and the median time of one
``leases.claim`` + ``leases.complete`` pair on each.

    python -m bench budget [--quick]

A run with a budget checks it at each claim, before the lane starts, so the pair costs
one transaction more than without; what it spends is read from the run's row and its
lifecycle events, so the pair's time does not grow with the events of the run.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from .common import LANE, Context, fresh_database, new_repo
from .figures import OWNER, TRUE_LANE, row

BUDGET = {"max_cost": 10**12, "max_wall_seconds": 10**8}  # checked, never reached


def _run(ctx: Context, dsn: str, n: int, budget: dict[str, int] | None) -> str:
    import json

    from striatum.runtime import runs
    from striatum.runtime.store import Store

    name = f"budget-{n}-{'with' if budget else 'without'}"
    path = ctx.tmp / name / "workflow.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    document: dict[str, Any] = {
        "name": name, "lanes": {LANE: {"command": ["true"]}},
        "jobs": [{"id": f"j{i}", "lane": LANE, "prompt": {"text": "go"}} for i in range(n)]}
    if budget:
        document["budget"] = budget
    path.write_text(json.dumps(document), encoding="utf-8")
    store = Store.connect(dsn)
    try:
        run = runs.prepare(store, str(path), str(new_repo(ctx, name)), overrides={},
                           lanes=TRUE_LANE)
        runs.start(store, run)
    finally:
        store.close()
    return run


def _pair_ms(store: Any, run: str) -> float:
    """One claim and its completion, as a worker makes them (sweep=False)."""
    from striatum.runtime import leases

    start = time.perf_counter()
    claimed = leases.claim(store, run, owner=OWNER, sweep=False)
    assert claimed is not None, "the run has a job for every pair"
    leases.complete(store, run, claimed.job, claimed.token)
    return (time.perf_counter() - start) * 1000


def _pairs_ms(dsn: str, run: str, pairs: int) -> list[float]:
    from striatum.runtime.store import Store

    store = Store.connect(dsn)
    try:
        return [_pair_ms(store, run) for _ in range(pairs)]
    finally:
        store.close()


def figure_budget(ctx: Context) -> dict[str, Any]:
    pairs = 40 if ctx.quick else 100
    sizes = (100, 2_000 if ctx.quick else 5_000)
    kinds = {"without": None, "with": BUDGET}
    per: dict[tuple[int, str], list[float]] = {(n, k): [] for n in sizes for k in kinds}
    with fresh_database(ctx) as dsn:
        runs_of = {(n, k): _run(ctx, dsn, n + pairs * ctx.repeat, budget)
                   for n in sizes for k, budget in kinds.items()}
        for i in range(ctx.repeat):
            for key, run in runs_of.items():  # interleaved: drifting load hits all alike
                per[key].append(statistics.median(_pairs_ms(dsn, run, pairs)))
            ctx.say(f"  budget rep {i + 1}: " + ", ".join(
                f"{n:,} jobs {k} a budget {per[(n, k)][-1]:.2f} ms" for n, k in per))
    rows = [row(f"claim + complete, {n:,}-job run, {k} a budget (median of {pairs})", "ms",
                samples, higher_is_better=False, key=f"pair_{n}_{k}")
            for (n, k), samples in per.items()]
    return {"rows": rows, "raw": {"per": {f"{n}-{k}": v for (n, k), v in per.items()}},
            "notes": [f"budget: one run per size and kind whose jobs have no needs, all "
                      f"ready at start ({', '.join(f'{n:,}' for n in sizes)} jobs, each a "
                      "job.ready event, plus those the pairs take); the budget "
                      f"{BUDGET} is checked at every claim and never reached."]}
