"""Backlog and fleet scale: what a claim costs behind a long queue, what reading a big run
costs, and how many workers the server takes before the rate flattens.

    python -m bench backlog [--quick]   # per-claim time, 100 ready jobs vs 100,000
    python -m bench bigrun [--quick]    # run.status and run.why of a 10,000-job run
    python -m bench fleet [--quick]     # 1, 2, 4, 8, 16 workers over 4 runs

Measure only: nothing asserts on a time. The fleet figure samples pg_stat_activity
and pg_locks while the workers run, and the CPU the machine, the workers and the
server's backends spent, so the report can say whether CPU or locks bound the curve.
"""

from __future__ import annotations

import os
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .common import (
    LANE,
    Context,
    Sampler,
    cpu_ticks,
    fanout_jobs,
    fresh_database,
    machine_ticks,
    new_repo,
    run_timed,
    striatum_argv,
    striatum_env,
    write_workflow,
)
from .figures import (
    OWNER,
    TRUE_LANE,
    jobs_in,
    pgbench,
    ready_fanout,
    row,
    start_workers,
    stop_workers,
    wait_listening,
    wait_run_end,
)

# ================================================================ backlog

def _flat_jobs(n: int) -> list[dict[str, Any]]:
    """n jobs with no needs: all ready the moment the run starts."""
    return [{"id": f"j{i}", "lane": LANE, "prompt": {"text": f"Do j{i}."}} for i in range(n)]


def _ready_run(ctx: Context, dsn: str, n: int) -> tuple[str, dict[str, float]]:
    """A started run with ``n`` ready jobs; (run, seconds its prepare and its start took)."""
    from striatum.runtime import runs
    from striatum.runtime.store import Store

    workflow = write_workflow(ctx.tmp, f"backlog-{n}", _flat_jobs(n), ["true"])
    store = Store.connect(dsn)
    try:
        start = time.perf_counter()
        run = runs.prepare(store, str(workflow), str(new_repo(ctx, f"backlog-{n}")),
                           overrides={}, lanes=TRUE_LANE)
        prepared = time.perf_counter()
        runs.start(store, run)
        started = time.perf_counter()
    finally:
        store.close()
    return run, {"prepare": prepared - start, "start": started - prepared}


def _claim_ms(dsn: str, run: str, claims: int) -> list[float]:
    """Each claim's time through leases.claim (a worker's call), the job completed
    after it (untimed), so the backlog stays the same size."""
    from striatum.runtime import leases
    from striatum.runtime.store import Store

    store = Store.connect(dsn)
    out = []
    try:
        for _ in range(claims):
            start = time.perf_counter()
            claimed = leases.claim(store, run, owner=OWNER, sweep=False)
            out.append((time.perf_counter() - start) * 1000)
            assert claimed is not None
            leases.complete(store, run, claimed.job, claimed.token)
    finally:
        store.close()
    return out


def figure_backlog(ctx: Context) -> dict[str, Any]:
    # Preparing and starting a 100,000-job run takes 15-20 s here (its jobs and events
    # written in batches), so --quick keeps the size and takes fewer claims.
    sizes = (100, 100_000)
    claims = 40 if ctx.quick else 200
    per: dict[int, dict[str, list[float]]] = {n: {"client": [], "server": []} for n in sizes}
    built: dict[int, dict[str, float]] = {}
    with fresh_database(ctx) as dsn:
        runs_of = {}
        for n in sizes:
            runs_of[n], built[n] = _ready_run(ctx, dsn, n + claims * ctx.repeat * 2)
            ctx.say(f"  backlog: {n:,} ready jobs prepared in {built[n]['prepare']:.1f} s, "
                    f"started in {built[n]['start']:.1f} s")
        for i in range(ctx.repeat):
            for n in sizes:  # interleaved: drifting load hits both sizes alike
                per[n]["client"].append(statistics.median(_claim_ms(dsn, runs_of[n], claims)))
                tps = pgbench(ctx, dsn, 1, 0, transactions=claims,
                              define={"run": f"'{runs_of[n]}'"},
                              statement="SELECT job FROM striatum.claim_job(:run, NULL, NULL,"
                                        " 'pgbench', 'secret', 60, 'pgbench', 'job claim', "
                                        "'digest');")
                per[n]["server"].append(1000 / tps)
            ctx.say(f"  backlog rep {i + 1}: per claim "
                    + ", ".join(f"{n:,} ready {per[n]['client'][-1]:.2f} ms (claim_job alone "
                                f"{per[n]['server'][-1]:.2f} ms)" for n in sizes))
    big = sizes[-1]
    rows = []
    for n in sizes:
        rows += [row(f"one claim, {n:,} ready jobs (leases.claim, median of {claims})", "ms",
                     per[n]["client"], higher_is_better=False,
                     key="claim_big" if n == big else "claim_small"),
                 row(f"  claim_job alone from pgbench, {n:,} ready jobs", "ms",
                     per[n]["server"], who="reference", higher_is_better=False,
                     key=f"claim_sql_{n}", detail=True)]
    rows += [row(f"  {verb} of the run of {big + claims * ctx.repeat * 2:,} jobs (once)", "s",
                 [built[big][verb]], higher_is_better=False,
                 key=f"{verb}_big", detail=True) for verb in ("prepare", "start")]
    return {"rows": rows, "raw": {"built_s": built, "per": per}, "notes": [
        f"backlog: one run per size whose jobs have no needs (all ready at start, plus "
        f"the jobs the claims take, so the backlog stays at its size); {claims} claims per "
        "repetition, each timed alone (leases.claim(sweep=False), the job completed after, "
        "untimed), the median reported; the detail row: pgbench -t N calling "
        "striatum.claim_job on the same run (the server's part). Runs were prepared and "
        "started in " + ", ".join(f"{built[n]['prepare']:.1f} + {built[n]['start']:.1f} s "
                                  f"({n:,})" for n in sizes) + "."]}


# ================================================================ a big run

def figure_bigrun(ctx: Context) -> dict[str, Any]:
    """run.status and run.why of a 10,000-job run, through the registry as the daemon
    and the MCP server call them, and as CLI subprocesses."""
    from striatum.runtime import leases
    from striatum.runtime.store import Store
    from striatum.server.registry import VERBS, Session, invoke

    n = 10_000
    calls = 5 if ctx.quick else 15
    with fresh_database(ctx) as dsn:
        workflow = write_workflow(ctx.tmp, f"big-{n}", fanout_jobs(n), ["true"])
        store = Store.connect(dsn)
        repo = new_repo(ctx, "big")
        run = ready_fanout(store, str(workflow), str(repo))
        for _ in range(100):  # some jobs done, some held: what a run mid-way shows
            claimed = leases.claim(store, run, owner=OWNER, sweep=False)
            assert claimed is not None
            leases.complete(store, run, claimed.job, claimed.token)
        for _ in range(4):
            leases.claim(store, run, owner=OWNER, sweep=False)
        store.close()
        session = Session(str(repo), lambda: Store.connect(dsn))
        samples: dict[str, list[float]] = {"run.status": [], "run.why": [],
                                           "cli run status": [], "cli why": []}
        try:
            for i in range(calls + 1):
                for verb in ("run.status", "run.why"):
                    start = time.perf_counter()
                    invoke(VERBS[verb], {"run": run}, session)
                    if i:  # the first call opens the connection
                        samples[verb].append((time.perf_counter() - start) * 1000)
            spent = {verb: _profile(lambda v=verb: invoke(VERBS[v], {"run": run}, session))
                     for verb in ("run.status", "run.why")}
        finally:
            session.close()
        env = striatum_env(dsn, ctx)
        for i in range(calls + 1):
            for key, argv in (("cli run status", ["run", "status", run, "--json"]),
                              ("cli why", ["why", run, "--json"])):
                elapsed, _, _ = run_timed([*striatum_argv(), *argv], env=env, cwd=repo)
                if i:  # the first call fills the bytecode cache
                    samples[key].append(elapsed * 1000)
    ctx.say("  big run: " + ", ".join(f"{k} {statistics.median(v):.0f} ms"
                                      for k, v in samples.items()))
    rows = [row(f"{verb} of a {n:,}-job run (registry, in process)", "ms", samples[verb],
                higher_is_better=False, key=verb) for verb in ("run.status", "run.why")]
    rows += [row(f"  `striatum {key[4:]} --json` of it (subprocess)", "ms", samples[key],
                 higher_is_better=False, key=key, detail=True)
             for key in ("cli run status", "cli why")]
    return {"rows": rows, "raw": {"samples": samples, "profile": spent}, "notes": [
        *(f"where one {verb} call's time goes (cProfile, own time, ms): "
          + ", ".join(f"{name} {ms:.1f}" for name, ms in top) for verb, top in spent.items()),
        f"big run: a {n:,}-job fan-out, its root done, 100 tasks claimed and completed and "
        f"4 held, the rest ready; {calls} timed calls of each verb through "
        "server.registry.invoke (schema check, the verb, its JSON document) on one open "
        "session, after one untimed call; the CLI rows include the interpreter's start."]}


def _profile(call: Any, top: int = 6) -> list[tuple[str, float]]:
    """The functions that spent the most time of their own in one ``call`` (ms)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.runcall(call)
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    own = sorted(((f"{Path(path).name}:{func}", value[2] * 1000)
                  for (path, _, func), value in stats.items()), key=lambda x: -x[1])
    return own[:top]


# ================================================================ fleet

def fleet_point(ctx: Context, dsn: str, workers: int, runs_n: int, per_run: int
                ) -> dict[str, Any]:
    """``workers`` `striatum worker` subprocesses (every run) working ``runs_n`` fan-outs."""
    from striatum.runtime import runs
    from striatum.runtime.store import Store

    store = Store.connect(dsn)
    ids = []
    try:
        for r in range(runs_n):
            workflow = write_workflow(ctx.tmp, f"fleet-{per_run}-{r}", fanout_jobs(per_run),
                                      ["true"])
            ids.append(runs.prepare(store, str(workflow), str(new_repo(ctx, f"fleet{r}")),
                                    overrides={}, lanes=TRUE_LANE))
        procs = start_workers(ctx, dsn, "", workers)
        try:
            wait_listening(dsn, workers, procs)
            sampler = Sampler(dsn)
            sampler.start()
            worker_ticks = {p.pid: cpu_ticks(p.pid) for p in procs}
            busy0, total0 = machine_ticks()
            start = time.perf_counter()
            for run in ids:
                runs.start(store, run)
            for run in ids:
                status = wait_run_end(dsn, run, 1800)
                if status != "completed":
                    raise RuntimeError(f"fleet run {run} ended {status}")
            elapsed = time.perf_counter() - start
            busy1, total1 = machine_ticks()
            ticks = sum(max(0, cpu_ticks(p.pid) - t) for p, t in
                        zip(procs, worker_ticks.values(), strict=True))
            pg = sampler.stop()
        finally:
            stop_workers(procs)
    finally:
        store.close()
    done = sum(jobs_in(dsn, run, "succeeded") for run in ids)
    if done != runs_n * per_run:
        raise RuntimeError(f"{done} of {runs_n * per_run} fleet jobs succeeded")
    hz = os.sysconf("SC_CLK_TCK")
    cpus = os.cpu_count() or 1
    return {"workers": workers, "jobs": done, "seconds": elapsed, "per_s": done / elapsed,
            "machine_busy": (busy1 - busy0) / max(1, total1 - total0),
            "workers_cpu_s": ticks / hz, "backends_cpu_s": pg["backend_ticks"] / hz,
            "cpus": cpus, "pg": pg}


def figure_fleet(ctx: Context) -> dict[str, Any]:
    counts = (1, 2, 4, 8, 16)
    runs_n = 4
    per_run = 50 if ctx.quick else 150
    repeat = 1 if ctx.quick else ctx.repeat
    points: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    with fresh_database(ctx) as dsn:
        for _ in range(repeat):
            for n in counts:
                got = fleet_point(ctx, dsn, n, runs_n, per_run)
                points[n].append(got)
                ctx.say(f"  fleet {n:>2} workers: {got['per_s']:.1f} jobs/s, machine "
                        f"{got['machine_busy']:.0%} busy, workers {got['workers_cpu_s']:.1f} "
                        f"CPU-s, backends {got['backends_cpu_s']:.1f} CPU-s in "
                        f"{got['seconds']:.1f} s; active backends "
                        f"{got['pg']['active_per_sample']:.1f}, lock waits "
                        f"{got['pg']['lock_waits_per_sample']:.2f} per sample; "
                        f"{got['pg']['waits']}")
    rates = {n: statistics.median(p["per_s"] for p in points[n]) for n in counts}
    flat = next((n for prev, n in zip(counts, counts[1:], strict=False)
                 if rates[n] < 1.1 * rates[prev]), None)
    rows = [row(f"{n} worker{'s' if n > 1 else ''}, {runs_n} runs of {per_run} jobs",
                "jobs/s", [p["per_s"] for p in points[n]], key=f"fleet_{n}")
            for n in counts]
    rows += [row(f"  machine CPU busy, {n} workers", "%",
                 [100 * p["machine_busy"] for p in points[n]], who="reference",
                 key=f"busy_{n}", detail=True) for n in counts]
    rows += [row(f"  lock waits per 50 ms sample, {n} workers", "waits",
                 [p["pg"]["lock_waits_per_sample"] for p in points[n]], who="reference",
                 higher_is_better=False, key=f"locks_{n}", detail=True) for n in counts]
    bound = _fleet_bound(points, flat or counts[-1])
    return {"rows": rows, "raw": points, "flattens_at": flat, "bound": bound, "notes": [
        f"fleet: what bounds the curve where it flattens: {bound}",
        f"fleet: N `striatum worker` subprocesses (every run, --concurrency 1, lane `true`), "
        f"listening before the clock; clock from starting {runs_n} prepared fan-outs of "
        f"{per_run} jobs until all four are completed; the curve "
        + (f"flattens at {flat} workers (the first count that adds < 10 %)" if flat else
           "does not flatten up to 16 workers")
        + "; while it runs pg_stat_activity and pg_locks are sampled every 50 ms "
        "(a backend 'active' with no wait event is on CPU), and the CPU time of the "
        "machine (/proc/stat), the workers and the backends (/proc/PID/stat) is taken.",
        *(f"fleet, {n} workers (last repetition): machine {p[-1]['machine_busy']:.0%} busy; "
          f"CPU-s workers {p[-1]['workers_cpu_s']:.1f}, backends {p[-1]['backends_cpu_s']:.1f} "
          f"in {p[-1]['seconds']:.1f} s; backends active per sample "
          f"{p[-1]['pg']['active_per_sample']:.1f}, of which waiting on: "
          + ", ".join(f"{k} {v}" for k, v in p[-1]["pg"]["waits"].items())
          for n, p in points.items())]}


def _fleet_bound(points: dict[int, list[dict[str, Any]]], at: int) -> str:
    """CPU or locks, from the samples at ``at`` workers: the machine busy >= 90 % is CPU;
    else locks when most active backends wait on one."""
    busy = statistics.median(p["machine_busy"] for p in points[at])
    waits: Counter[str] = Counter()
    active = 0.0
    for p in points[at]:
        waits.update(p["pg"]["waits"])
        active += p["pg"]["active_per_sample"] * p["pg"]["samples"]
    locked = sum(v for k, v in waits.items() if k.startswith("Lock:"))
    share = locked / active if active else 0.0
    said = (f"the machine {busy:.0%} busy, {share:.0%} of the active backends' samples "
            f"waiting on a lock, at {at} workers")
    if busy >= 0.9:
        return f"CPU ({said})"
    if share >= 0.5:
        return f"locks ({said})"
    return f"neither alone ({said})"


__all__ = ["figure_backlog", "figure_bigrun", "figure_fleet"]
