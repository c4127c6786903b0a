"""``python -m bench profile``: where the runtime's time goes (the figures that miss).

pg_stat_statements needs ``shared_preload_libraries`` (a server restart), so
round trips are counted on the client instead: libpq's protocol trace of the
connection (a ``ReadyForQuery``, or a pipeline Flush the client waits on, per
round trip), with each statement named
by wrapping ``psycopg.Cursor.execute`` in this process (striatum is not
changed). Then cProfile of the one-writer loop and of doctor, the per-job
database work of a worked run (``pg_stat_database`` deltas), and the fixed
costs of a job in the worker (connections, starting a lane).
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import (
    BENCH,
    Context,
    fanout_jobs,
    fresh_database,
    new_repo,
    striatum_argv,
    striatum_env,
    write_workflow,
)
from .figures import OWNER, TRUE_LANE, generate_record, ready_fanout, worked_run


@contextmanager
def traced(store: Any, path: Path, names: list[str]) -> Any:
    """Trace the store's connection at the protocol level; name every statement run."""
    import psycopg
    from psycopg import pq

    from striatum.runtime.sql import queries

    reverse = {text: name for name, text in queries().items()}
    original = psycopg.Cursor.execute

    def execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        names.append(reverse.get(query, str(query).split()[0] if query else "?"))
        return original(self, query, params, **kw)

    with open(path, "w") as out:
        store._conn.pgconn.trace(out.fileno())
        store._conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        psycopg.Cursor.execute = execute  # type: ignore[method-assign]
        try:
            yield
        finally:
            psycopg.Cursor.execute = original  # type: ignore[method-assign]
            store._conn.pgconn.untrace()


def round_trips(path: Path) -> int:
    """Times the client waited for the server: each ``ReadyForQuery`` (a statement, or a
    pipeline's Sync), plus each pipeline Flush whose answers it read before sending more
    (a Flush sent right after a Sync waits for nothing)."""
    count = 0
    previous = ""
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        direction, message = parts[0].strip()[-1:], parts[2].strip()
        waited = (direction == "B" and message == "ReadyForQuery") or (
            direction == "F" and message == "Flush" and previous != "Sync")
        if waited:
            count += 1
        if direction == "F":
            previous = message
    return count


def per_call(ctx: Context, dsn: str, fanout: int, calls: int) -> dict[str, Any]:
    """Round trips, statements and wall time of claim and of complete, at one fan-out size."""
    from striatum.runtime import leases
    from striatum.runtime.store import Store

    store = Store.connect(dsn)
    workflow = write_workflow(ctx.tmp, f"prof-{fanout}", fanout_jobs(fanout), ["true"])
    run = ready_fanout(store, str(workflow), str(new_repo(ctx, "prof")))
    out: dict[str, Any] = {"fanout": fanout}
    trace = ctx.tmp / "trace.txt"
    stats: dict[str, dict[str, Any]] = {"claim": {"ms": [], "rt": []},
                                        "complete": {"ms": [], "rt": []}}
    statements: dict[str, list[str]] = {}
    for i in range(calls):
        names: list[str] = []
        with traced(store, trace, names):
            start = time.perf_counter()
            claimed = leases.claim(store, run, owner=OWNER, sweep=False,
                                   artifact_folder=False)  # as the transitions figure
            stats["claim"]["ms"].append((time.perf_counter() - start) * 1000)
        stats["claim"]["rt"].append(round_trips(trace))
        if i == 0:
            statements["claim"] = names
        assert claimed is not None
        names = []
        with traced(store, trace, names):
            start = time.perf_counter()
            leases.complete(store, run, claimed.job, claimed.token)
            stats["complete"]["ms"].append((time.perf_counter() - start) * 1000)
        stats["complete"]["rt"].append(round_trips(trace))
        if i == 0:
            statements["complete"] = names
    # Untraced timing of the same calls (the trace itself costs a little).
    plain: dict[str, list[float]] = {"claim": [], "complete": []}
    for _ in range(calls):
        start = time.perf_counter()
        claimed = leases.claim(store, run, owner=OWNER, sweep=False, artifact_folder=False)
        mid = time.perf_counter()
        assert claimed is not None
        leases.complete(store, run, claimed.job, claimed.token)
        plain["claim"].append((mid - start) * 1000)
        plain["complete"].append((time.perf_counter() - mid) * 1000)
    for verb in ("claim", "complete"):
        out[verb] = {"round_trips": statistics.median(stats[verb]["rt"]),
                     "ms": statistics.median(plain[verb]),
                     "statements": dict(Counter(statements[verb]))}
    store.close()
    return out


def cprofile_loop(ctx: Context, dsn: str, fanout: int, pairs: int) -> dict[str, Any]:
    from striatum.runtime import leases
    from striatum.runtime.store import Store

    store = Store.connect(dsn)
    workflow = write_workflow(ctx.tmp, f"cprof-{fanout}", fanout_jobs(fanout), ["true"])
    run = ready_fanout(store, str(workflow), str(new_repo(ctx, "cprof")))
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    for _ in range(pairs):
        claimed = leases.claim(store, run, owner=OWNER, sweep=False, artifact_folder=False)
        assert claimed is not None
        leases.complete(store, run, claimed.job, claimed.token)
    profiler.disable()
    wall = time.perf_counter() - start
    store.close()
    return {"wall_s": wall, "pairs": pairs, **summarize_profile(profiler, wall, {
        "waiting on PostgreSQL (Connection.wait)": ("psycopg/connection.py", "wait"),
        "complete_in_one (the completion statement)": ("completion.py", "complete_in_one"),
        "Transition.open (lock the run, the job and its dependents)": ("engine.py", "open"),
        "advance (settle the dependents)": ("engine.py", "advance"),
        "Transition.flush (write projections + events)": ("engine.py", "flush"),
        "append_events": ("audit.py", "append_events"),
        "Event.payload (canonical JSON)": ("audit.py", "payload"),
        "prepare_prompt (render + prompt files)": ("prompts.py", "prepare_prompt"),
        "prompts.render (Jinja2)": ("prompts.py", "render"),
        "prompts.write_prompt (files)": ("prompts.py", "write_prompt"),
        "records from JSON (the claim's job and run)": ("records.py", "from_json"),
    })}


def summarize_profile(profiler: cProfile.Profile, wall: float,
                      groups: dict[str, tuple[str, str]]) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    cumulative: dict[str, float] = {}
    for label, (filename, func) in groups.items():
        total = 0.0
        for (path, _line, name), (_cc, _nc, _tt, ct, _callers) in raw.items():
            if path.endswith(filename) and (name == func or name.startswith(func)):
                total = max(total, ct)  # the outermost entry's cumulative time
        cumulative[label] = total
    top = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[:12]
    own = [{"function": f"{Path(path).name}:{line} {name}", "tottime_s": tt, "calls": nc}
           for (path, line, name), (_cc, nc, tt, _ct, _callers) in top]
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(12)
    return {"cumulative_s": cumulative, "share": {k: v / wall for k, v in cumulative.items()},
            "top_own_time": own}


def db_counters(dsn: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute("SELECT xact_commit, xact_rollback, sessions, tup_inserted, "
                           "tup_updated, tup_returned, tup_fetched FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    assert row is not None
    keys = ("xact_commit", "xact_rollback", "sessions", "tup_inserted", "tup_updated",
            "tup_returned", "tup_fetched")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def per_job_db_work(ctx: Context, dsn: str, n: int) -> dict[str, Any]:
    before = db_counters(dsn)
    got = worked_run(ctx, dsn, fanout_jobs(n), ["true"], f"prof-e2e-{n}")
    time.sleep(1.5)  # backends report their counters at most once a second
    after = db_counters(dsn)
    delta = {k: after[k] - before[k] for k in before}
    return {"jobs": n, "seconds": got["total_s"], "jobs_per_s": n / got["total_s"],
            "per_job": {k: v / n for k, v in delta.items()}}


def fixed_costs(ctx: Context, dsn: str, times: int = 20) -> dict[str, float]:
    from striatum.runtime import lanes
    from striatum.runtime.store import Store

    def median_ms(fn: Any) -> float:
        samples = []
        for _ in range(times):
            start = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - start) * 1000)
        return statistics.median(samples)

    env = {"PATH": os.environ.get("PATH", "")}
    return {
        "spawn `true` directly": median_ms(lambda: subprocess.run(["true"], env=env,
                                                                  check=True)),
        "run_lane(['true']) through the worker's lane guardian (every lane)": median_ms(
            lambda: lanes.run_lane(["true"], cwd=ctx.tmp, env=env, stdin=None, timeout=30,
                                   log_path=ctx.tmp / "lane.log", tag="bench-profile")),
        "Store.connect + close (runtime role)": median_ms(
            lambda: Store.connect(dsn).close()),
    }


def cprofile_doctor(ctx: Context, events: int) -> dict[str, Any]:
    from striatum.runtime.doctor import doctor
    from striatum.runtime.store import Store

    with fresh_database(ctx, "_prof_doctor") as dsn:
        _, _, n, _ = generate_record(dsn, events)
        store = Store.connect(dsn)
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        report = doctor(store, None)
        profiler.disable()
        wall = time.perf_counter() - start
        store.close()
    assert report.ok, report.to_json()
    return {"events": n, "wall_s": wall, "events_per_s": n / wall,
            **summarize_profile(profiler, wall, {
                "check_chain (one repository chain, SQL)": ("doctor.py", "check_chain"),
                "  _checked (hash, columns, replay: one SQL pass)": ("doctor.py", "_checked"),
                "check_audit (the audit chain, SQL)": ("doctor.py", "check_audit"),
                "check_projections": ("doctor.py", "check_projections"),
                "waiting on PostgreSQL": ("connection.py", "wait"),
            })}


CLI_GROUPS = {
    "imports (all modules)": ("<frozen importlib._bootstrap>", "_find_and_load"),
    "open_store (one connection: connect, schema check, SET ROLE)": ("config.py",
                                                                      "open_store"),
    "  ensure_migrated (on that connection)": ("migrate.py", "ensure_migrated"),
    "  Store.adopt (role check, SET ROLE)": ("store.py", "adopt"),
    "leases.claim (one statement, audited in it)": ("leases.py", "claim"),
    "  prepare_prompt (render + write prompt)": ("prompts.py", "prepare_prompt"),
    "leases.verdict (transition, audited in it)": ("leases.py", "verdict"),
    "runs.status (read run + jobs)": ("runs.py", "status"),
}


def _top_imports(stderr: str, top: int = 8) -> dict[str, float]:
    """Top-level modules by cumulative import ms, from `python -X importtime` output."""
    cumulative: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if cum.isdigit() and "." not in name:
            cumulative[name] = int(cum) / 1000
    return dict(sorted(cumulative.items(), key=lambda kv: -kv[1])[:top])


def cli_profile(ctx: Context, dsn: str) -> dict[str, Any]:
    """cProfile of each agent verb as a whole process (`python -m cProfile` on the script)."""
    from striatum.runtime import leases, runs
    from striatum.runtime.store import Store

    from .common import reviews_jobs

    store = Store.connect(dsn)
    workflow = write_workflow(ctx.tmp, "prof-reviews", reviews_jobs(6), ["true"])
    run = runs.prepare(store, str(workflow), str(new_repo(ctx, "cli")), overrides={},
                       lanes=TRUE_LANE)
    runs.start(store, run)
    first = leases.claim(store, run, owner=OWNER, sweep=False)
    assert first is not None
    leases.complete(store, run, first.job, first.token)
    store.close()
    script = [a for a in striatum_argv() if a != sys.executable]
    env = striatum_env(dsn, ctx)
    out: dict[str, Any] = {}
    for mode in ("cprofile", "importtime"):
        claim: dict[str, Any] = {}
        for verb, args in (("job claim", ["job", "claim", "--run", run, "--json"]),
                           ("job verdict", ["job", "verdict", "accept", "--reason", "ok"]),
                           ("run status", ["run", "status", run])):
            prof = ctx.tmp / "cli.prof"
            extra = ({"STRIATUM_RUN": run, "STRIATUM_JOB": claim["job"],
                      "STRIATUM_LEASE": claim["lease"]} if verb == "job verdict" else {})
            flags = (["-m", "cProfile", "-o", str(prof)] if mode == "cprofile"
                     else ["-X", "importtime"])
            start = time.perf_counter()
            done = subprocess.run([sys.executable, *flags, *script, *args],
                                  env={**env, **extra}, capture_output=True, text=True,
                                  check=True)
            wall = time.perf_counter() - start
            if verb == "job claim":
                claim = json.loads(done.stdout)
            entry = out.setdefault(verb, {})
            if mode == "importtime":
                entry["imports_ms"] = _top_imports(done.stderr)
                continue
            raw: dict[Any, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
            groups = {}
            for label, (filename, func) in CLI_GROUPS.items():
                total = 0.0
                for (path, _line, name), (_cc, _nc, _tt, ct, _callers) in raw.items():
                    if path.endswith(filename) and name == func:
                        total = max(total, ct)
                if total:
                    groups[label] = total * 1000
            entry.update(wall_ms_under_cprofile=wall * 1000, cumulative_ms=groups)
    return out


def profile(ctx: Context) -> int:
    started = datetime.now(UTC)
    out: dict[str, Any] = {"started": started.isoformat(timespec="seconds")}
    calls = 10 if ctx.quick else 20
    with fresh_database(ctx) as dsn:
        ctx.say("profile: round trips and time per claim / complete ...")
        out["per_call"] = [per_call(ctx, dsn, size, calls) for size in (50, 200, 1000)]
        ctx.say("profile: cProfile of the one-writer loop (fan-out 1000) ...")
        out["loop"] = cprofile_loop(ctx, dsn, 1000, 50 if ctx.quick else 150)
        ctx.say("profile: fixed costs of a job in the worker ...")
        out["fixed"] = fixed_costs(ctx, dsn)
        ctx.say("profile: database work per job of a worked run ...")
        out["e2e"] = per_job_db_work(ctx, dsn, 100 if ctx.quick else 300)
        ctx.say("profile: the agent verbs (cProfile, -X importtime) ...")
        out["cli_profile"] = cli_profile(ctx, dsn)
    ctx.say("profile: cProfile of doctor ...")
    out["doctor"] = cprofile_doctor(ctx, 50_000 if ctx.quick else 200_000)
    print_profile(out)
    results = BENCH / "results"
    results.mkdir(exist_ok=True)
    path = results / f"{started:%Y%m%dT%H%M%SZ}-profile.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"\nraw profile: {path.relative_to(BENCH.parent)}")
    return 0


def print_profile(out: dict[str, Any]) -> None:
    print("round trips and wall time per call (median; statements of one traced call):")
    for entry in out["per_call"]:
        for verb in ("claim", "complete"):
            got = entry[verb]
            names = ", ".join(f"{k}x{v}" if v > 1 else k for k, v in got["statements"].items())
            print(f"  fan-out {entry['fanout']:>5}  {verb:<9}{got['round_trips']:>4.0f} round "
                  f"trips {got['ms']:>7.2f} ms   [{names}]")
    loop = out["loop"]
    print(f"\none writer, fan-out 1000, {loop['pairs']} claim+complete pairs under cProfile: "
          f"{loop['wall_s']:.2f} s ({loop['wall_s'] / loop['pairs'] * 1000:.1f} ms a pair)")
    for label, share in loop["share"].items():
        print(f"  {share * 100:5.1f}%  {label}")
    print("  top own time:")
    for item in loop["top_own_time"][:8]:
        print(f"    {item['tottime_s']:6.3f} s {item['calls']:>8} calls  {item['function']}")
    print("\nfixed costs (median of 20):")
    for label, ms in out["fixed"].items():
        print(f"  {ms:7.2f} ms  {label}")
    e2e = out["e2e"]
    print(f"\nworked run of {e2e['jobs']} jobs, 4 workers: {e2e['jobs_per_s']:.1f} jobs/s; "
          "per job, from pg_stat_database:")
    print("  " + ", ".join(f"{k} {v:.1f}" for k, v in e2e["per_job"].items()))
    print("\nagent verbs under `python -m cProfile` (cumulative ms; imports overlap the rest):")
    for verb, got in out["cli_profile"].items():
        print(f"  {verb}: {got['wall_ms_under_cprofile']:.0f} ms wall under cProfile")
        for label, ms in got["cumulative_ms"].items():
            print(f"    {ms:7.1f} ms  {label}")
        print("    heaviest imports (-X importtime, cumulative ms, no profiler): "
              + ", ".join(f"{k} {v:.0f}" for k, v in got["imports_ms"].items()))
    doc = out["doctor"]
    print(f"\ndoctor in-process under cProfile: {doc['events']:,} events in {doc['wall_s']:.1f} s "
          f"({doc['events_per_s']:,.0f} /s)")
    for label, share in doc["share"].items():
        print(f"  {share * 100:5.1f}%  {label}")
    print("  top own time:")
    for item in doc["top_own_time"][:8]:
        print(f"    {item['tottime_s']:6.3f} s {item['calls']:>8} calls  {item['function']}")
