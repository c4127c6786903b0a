"""The six runtime figures, striatum's side of each, and pgbench.

Each ``figure_*`` returns ``{"rows": [...], "notes": [...], "raw": {...}}``; a
row is one measured quantity with its samples (one per repetition), or an
``na`` reason when it could not be measured. The peers' rows come from
bench/peers.py, run in their own venv.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import doctor_cost, peers
from .common import (
    BENCH,
    ROOT,
    Context,
    Sampler,
    chain_jobs,
    conninfo,
    dsn_parts,
    fanout_jobs,
    fresh_database,
    machine_ticks,
    new_repo,
    percentile,
    pg_env,
    reviews_jobs,
    run_timed,
    run_with_rss,
    striatum_argv,
    striatum_env,
    summary,
    write_workflow,
)
from .web import figure_web

TRUE_LANE = {"l": {"command": ["true"]}}
OWNER = "bench-writer"


def row(name: str, unit: str, samples: list[float], *, who: str = "striatum",
        higher_is_better: bool = True, **extra: Any) -> dict[str, Any]:
    return {"name": name, "unit": unit, "who": who, "samples": samples,
            "summary": summary(samples), "higher_is_better": higher_is_better, **extra}


def na_row(name: str, unit: str, why: str, *, who: str = "peer") -> dict[str, Any]:
    return {"name": name, "unit": unit, "who": who, "na": why}


# ========================================================= 1. transition throughput


def ready_fanout(store: Any, workflow: str, repo: str) -> str:
    """Prepare and start a fan-out run, and claim and complete its root: every task is
    then ready. Setup, never timed (the root's completion readies them all at once)."""
    from striatum.runtime import leases, runs

    run = runs.prepare(store, workflow, repo, overrides={}, lanes=TRUE_LANE)
    runs.start(store, run)
    root = leases.claim(store, run, owner=OWNER, sweep=False)
    assert root is not None
    leases.complete(store, run, root.job, root.token)
    return run


def _writer(dsn: str, workflow: str, repo: str, seconds: float, barrier: Any,
            results: Any) -> None:
    """One writer process: its own connection, repository (so its own chain) and run."""
    from striatum.runtime.store import Store

    store = Store.connect(dsn)
    run = ready_fanout(store, workflow, repo)
    barrier.wait()
    cpu = time.process_time()
    count, elapsed = transition_loop(store, run, seconds)
    results.put({"transitions": count, "seconds": elapsed, "retries": store.retries,
                 "cpu": time.process_time() - cpu})
    store.close()


def transition_loop(store: Any, run: str, seconds: float) -> tuple[int, float]:
    """claim -> complete through the public functions, until the deadline or no job is left.

    sweep=False and artifact_folder=False are what a worker does (it sweeps expired leases
    on its own timer, and makes the attempt's artifact folder as the lane starts)."""
    from striatum.runtime import leases

    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        claimed = leases.claim(store, run, owner=OWNER, sweep=False, artifact_folder=False)
        if claimed is None:
            break
        count += 1
        leases.complete(store, run, claimed.job, claimed.token)
        count += 1
    return count, time.perf_counter() - start


def run_writers(ctx: Context, dsn: str, writers: int, seconds: float, fanout: int
                ) -> dict[str, Any]:
    """``writers`` processes on their own repositories, while the database's backends are
    sampled: what they wait on, and the CPU the writers and their backends spend."""
    mp = multiprocessing.get_context("spawn")
    barrier = mp.Barrier(writers + 1)
    results = mp.Queue()
    procs = []
    for i in range(writers):
        workflow = write_workflow(ctx.tmp, f"fanout-{fanout}", fanout_jobs(fanout), ["true"])
        repo = new_repo(ctx, f"writer{i}")
        proc = mp.Process(target=_writer, args=(dsn, str(workflow), str(repo), seconds,
                                                barrier, results))
        proc.start()
        procs.append(proc)
    barrier.wait(timeout=300)
    sampler = Sampler(dsn)
    sampler.start()
    busy0, all0 = machine_ticks()
    got = [results.get(timeout=seconds + 300) for _ in procs]
    busy1, all1 = machine_ticks()
    sampled = sampler.stop()
    for proc in procs:
        proc.join(timeout=60)
    total = sum(r["transitions"] for r in got)
    window = max(r["seconds"] for r in got)
    tick = os.sysconf("SC_CLK_TCK")
    return {"writers": writers, "transitions": total, "seconds": window,
            "per_s": total / window, "each": got, "sampled": sampled,
            "client_ms": 1000 * sum(r["cpu"] for r in got) / max(1, total),
            "backend_ms": 1000 * sampled["backend_ticks"] / tick / max(1, total),
            "machine_busy": (busy1 - busy0) / max(1, all1 - all0)}


def audit_split(dsn: str) -> None:
    """A what-if, never a shipped mode: the audit rows of each backend chained apart
    (bench/audit_split.sql), so that 4 writers share no row but their own repositories'."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((BENCH / "audit_split.sql").read_text(encoding="utf-8").encode())


def bound_rows(raw: list[dict[str, Any]], which: str, label: str) -> list[dict[str, Any]]:
    """What bounds a writers' run: the CPU its clients and its backends spend a
    transition, the machine's CPU in use, and what the active backends wait on."""
    runs = [r[which] for r in raw]
    shares = [r["sampled"]["shares"] for r in runs]
    out = [row(f"  {label}: client CPU a transition", "ms", [r["client_ms"] for r in runs],
               higher_is_better=False, detail=True),
           row(f"  {label}: backend CPU a transition", "ms", [r["backend_ms"] for r in runs],
               who="reference", higher_is_better=False, detail=True),
           row(f"  {label}: machine CPU in use (all processes)", "%",
               [100 * r["machine_busy"] for r in runs], who="reference", detail=True)]
    for key, what in (("lock", "waiting for a lock (another's COMMIT)"),
                      ("wal", "writing or flushing WAL"), ("cpu", "on CPU")):
        out.append(row(f"  {label}: active backends {what}", "%",
                       [100 * s[key] for s in shares], who="reference", detail=True,
                       key=f"{which}_{key}"))
    return out


PGBENCH_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")


def pgbench(ctx: Context, dsn: str, clients: int, seconds: int, *,
            statement: str = "INSERT INTO bench_insert (payload) VALUES ('x');",
            transactions: int | None = None, define: dict[str, str] | None = None) -> float:
    """pgbench's tps for ``statement`` (one transaction each): for ``seconds``, or for
    ``transactions`` per client when given."""
    exe = shutil.which("pgbench") or "/usr/bin/pgbench"
    script = ctx.tmp / "pgbench.sql"
    script.write_text(statement + "\n")
    length = ["-t", str(transactions)] if transactions else ["-T", str(seconds)]
    argv = [exe, "-n", "-c", str(clients), "-j", str(min(clients, 2)), *length,
            "-f", str(script)]
    for name, value in (define or {}).items():
        argv += ["-D", f"{name}={value}"]
    _, out, err = run_timed(argv, env=pg_env(dsn))
    found = PGBENCH_TPS.search(out + err)
    if not found:
        raise RuntimeError(f"pgbench printed no tps: {out[-500:]} {err[-500:]}")
    return float(found.group(1))


def psycopg_insert_rate(dsn: str, seconds: float) -> float:
    """pgbench's one-row INSERT sent from Python by psycopg, autocommit: the floor a
    Python client pays for one statement and one commit."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            conn.execute("INSERT INTO bench_insert (payload) VALUES ('x')")
            count += 1
        return count / (time.perf_counter() - start)


def claim_statement_rate(ctx: Context, dsn: str, claims: int, reps: int) -> list[float]:
    """pgbench (a C client, no striatum code) calling striatum.claim_job: what the database
    itself spends on the claim statement — lease, lease row, chained event, commit — the
    ceiling of any client's claim rate. One run with a ready job for every call."""
    from striatum.runtime.store import Store

    workflow = write_workflow(ctx.tmp, "claims", fanout_jobs(claims * reps + 2), ["true"])
    store = Store.connect(dsn)
    try:
        run = ready_fanout(store, str(workflow), str(new_repo(ctx, "claims")))
    finally:
        store.close()
    rates = [pgbench(ctx, dsn, 1, 0, transactions=claims, define={"run": f"'{run}'"},
                     statement="SELECT job FROM striatum.claim_job("
                               ":run, NULL, NULL, 'pgbench', 'secret', 60, 'pgbench', "
                               "'job claim', 'digest');")
             for _ in range(reps)]
    leased = jobs_in(dsn, run, "leased")
    if leased != claims * reps:  # an empty claim is cheaper: it would flatter
        raise RuntimeError(f"pgbench leased {leased} jobs, not {claims * reps}")
    return rates


def complete_statement_rate(ctx: Context, dsn: str, pairs: int, reps: int) -> list[float]:
    """pgbench (no striatum code) claiming with striatum.claim_job and completing with
    striatum.complete_job, each pair one script: what the database itself spends on the
    completion statement (the lease ended, the job settled, the join's readiness counted,
    chained event, audit row, commit), from pgbench's per-statement latency (-r). The
    dependents' document is the one the Python client sends for a task of the fan-out."""
    from striatum.runtime import pinned
    from striatum.runtime.completion import dependents_document
    from striatum.runtime.store import Store

    workflow = write_workflow(ctx.tmp, "completes", fanout_jobs(pairs * reps + 2), ["true"])
    store = Store.connect(dsn)
    try:
        run = ready_fanout(store, str(workflow), str(new_repo(ctx, "completes")))
        known = pinned.known(run)
        assert known is not None, "ready_fanout completed the root in this process"
        dependents = dependents_document(known.graph, "t1")
    finally:
        store.close()
    if dependents is None:
        raise RuntimeError("a fan-out task's completion would not be one statement")
    script = ctx.tmp / "complete.sql"
    script.write_text(
        "SELECT quote_literal(job->>'job_id') AS j, quote_literal(job->>'lease_token') AS t "
        "FROM striatum.claim_job(:run, NULL, NULL, 'pgbench', 'secret', 60, 'pgbench', "
        "'job claim', 'digest') \\gset\n"
        "SELECT job FROM striatum.complete_job(:run, :j, :t, '{}', '{}', :dependents, "
        "'pgbench', 'job complete', 'digest');\n")
    rates = []
    for _ in range(reps):
        _, text, _ = run_timed([shutil.which("pgbench") or "/usr/bin/pgbench", "-n", "-r",
                                "-c", "1", "-t", str(pairs), "-D", f"run='{run}'",
                                "-D", f"dependents='{dependents}'", "-f", str(script)],
                               env=pg_env(dsn))
        after = text.split("statement latencies in milliseconds", 1)[-1]
        ms = [float(m.group(1)) for line in after.splitlines()[1:]
              if (m := PGBENCH_COMMAND.match(line))]
        if len(ms) != 2:
            raise RuntimeError(f"pgbench timed {len(ms)} statements of 2: {text[-500:]}")
        rates.append(1000 / ms[1])
    done = jobs_in(dsn, run, "succeeded")
    if done != pairs * reps + 1:  # a completion that changed nothing is cheaper: it would flatter
        raise RuntimeError(f"pgbench completed {done - 1} jobs, not {pairs * reps}")
    return rates


def record_pairs(store: Any, run: str, pairs: int, warm: int) -> list[tuple[str, str]]:
    """(half, pgbench command) for ``warm`` + ``pairs`` claim -> complete calls through
    the public functions: every statement the client sent, its parameters rendered as
    literals (psycopg's client-side binding), in order, BEGIN and COMMIT included; what
    it sent in one pipeline is one command (statements joined by pgbench's ``\\;``: one
    round trip, as the pipeline is). The first ``warm`` pairs' are marked "warm"."""
    import psycopg

    from striatum.runtime import leases

    render = psycopg.ClientCursor(store._conn)
    sent: list[tuple[str, str]] = []
    half = ["claim"]
    within = [False]
    original = psycopg.Cursor.execute

    def execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        piped = store._conn._pipeline is not None
        text = render.mogrify(query, params).strip().rstrip(";")
        if piped and within[0]:
            sent[-1] = (half[0], sent[-1][1][:-1] + "\\;\n" + text + ";")
        else:
            sent.append((half[0], text + ";"))
        within[0] = piped
        return original(self, query, params, **kw)

    psycopg.Cursor.execute = execute  # type: ignore[method-assign]
    try:
        for i in range(warm + pairs):
            half[0] = "claim" if i >= warm else "warm"
            claimed = leases.claim(store, run, owner=OWNER, sweep=False)
            if claimed is None:
                raise RuntimeError(f"run {run} ran out of ready jobs while recording")
            half[0] = "complete" if i >= warm else "warm"
            leases.complete(store, run, claimed.job, claimed.token)
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
    if store.retries:  # a retried transaction would be replayed twice
        raise RuntimeError(f"{store.retries} transactions were retried while recording")
    return sent


PGBENCH_COMMAND = re.compile(r"^\s+(-?[0-9.]+)\s+(?:[0-9]+\s+)?\S")


def replay_ceiling(ctx: Context, fanout: int, pairs: int, reps: int) -> dict[str, list[float]]:
    """The server's own ceiling for the claim and the completion: the exact statements
    one writer's claim -> complete sends, recorded once, then replayed by pgbench (C, no
    striatum client) on copies of the database as it was before them. Per half, the
    calls per second the server alone allows (pgbench -r: each statement's time)."""
    import psycopg
    from psycopg import sql

    from striatum.runtime.store import Store

    workflow = write_workflow(ctx.tmp, f"ceiling-{fanout}", fanout_jobs(fanout), ["true"])
    with fresh_database(ctx, "_ceiling") as base:
        store = Store.connect(base)
        try:
            run = ready_fanout(store, str(workflow), str(new_repo(ctx, "ceiling")))
        finally:
            store.close()
        source = sql.Identifier(dsn_parts(base)["dbname"])
        copies = [f"{dsn_parts(base)['dbname']}_{i}" for i in range(reps + 1)]
        with psycopg.connect(ctx.dsn, autocommit=True) as admin:
            for name in copies:
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), source))
        try:
            store = Store.connect(conninfo(base, dbname=copies[0]))
            try:
                role = store._conn.execute("SELECT current_user, session_user").fetchone()
                # The copies start with cold buffers: the first pairs warm them, untimed.
                sent = record_pairs(store, run, pairs, warm=pairs // 10)
            finally:
                store.close()
            script = ctx.tmp / "ceiling.sql"
            prologue = ([f"SET ROLE {role[0]};"] if role and role[0] != role[1] else [])
            script.write_text("".join(f"{text}\n" for text in
                                      [*prologue, *(text for _, text in sent)]))
            out: dict[str, list[float]] = {"claim": [], "complete": []}
            for name in copies[1:]:
                _, text, _ = run_timed([shutil.which("pgbench") or "/usr/bin/pgbench", "-n",
                                        "-r", "-c", "1", "-t", "1", "-f", str(script)],
                                       env=pg_env(conninfo(base, dbname=name)))
                after = text.split("statement latencies in milliseconds", 1)[-1]
                ms = [float(m.group(1)) for line in after.splitlines()[1:]
                      if (m := PGBENCH_COMMAND.match(line))][len(prologue):]
                if len(ms) != len(sent):
                    raise RuntimeError(f"pgbench timed {len(ms)} statements of {len(sent)}")
                for half in out:
                    spent = sum(t for (which, _), t in zip(sent, ms, strict=True)
                                if which == half)
                    out[half].append(pairs / (spent / 1000))
            leased = jobs_in(conninfo(base, dbname=copies[-1]), run, "succeeded")
            if leased != pairs + pairs // 10 + 1:  # the root and every replayed pair
                raise RuntimeError(f"the replay completed {leased - 1} jobs, not "
                                   f"{pairs + pairs // 10}")
        finally:
            with psycopg.connect(ctx.dsn, autocommit=True) as admin:
                for name in copies:
                    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(name)))
    out["pair"] = [2 / (1 / c + 1 / d) for c, d in zip(out["claim"], out["complete"],
                                                          strict=True)]
    return out


def figure_transitions(ctx: Context) -> dict[str, Any]:
    import psycopg

    seconds = 3 if ctx.quick else 10
    fanout = 400 if ctx.quick else 1000
    exe = shutil.which("pgbench") or ("/usr/bin/pgbench" if Path("/usr/bin/pgbench").exists()
                                      else None)
    samples: dict[str, list[float]] = {"pg1": [], "pg4": [], "w1": [], "w4": [], "py1": [],
                                       "claim": [], "complete": [], "w4_split": []}
    raw: list[dict[str, Any]] = []
    ceiling: dict[str, list[float]] = {}
    with fresh_database(ctx) as dsn, fresh_database(ctx, "_split") as split_dsn:
        audit_split(split_dsn)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench_insert (id bigserial PRIMARY KEY, payload text "
                         "NOT NULL, created_at timestamptz NOT NULL DEFAULT now())")
        for i in range(ctx.repeat):
            # Interleaved, so drifting load on the machine hits every side alike.
            if exe:
                samples["pg1"].append(pgbench(ctx, dsn, 1, seconds))
            one = run_writers(ctx, dsn, 1, seconds, fanout)
            if exe:  # right after the writer it bounds, under the same load
                for half, rates in replay_ceiling(ctx, fanout, 200 if ctx.quick else 500,
                                                  1).items():
                    ceiling.setdefault(half, []).extend(rates)
            four = run_writers(ctx, dsn, 4, seconds, fanout)
            split = run_writers(ctx, split_dsn, 4, seconds, fanout)
            samples["w4_split"].append(split["per_s"])
            if exe:
                samples["pg4"].append(pgbench(ctx, dsn, 4, seconds))
            samples["py1"].append(psycopg_insert_rate(dsn, seconds))
            samples["w1"].append(one["per_s"])
            samples["w4"].append(four["per_s"])
            raw.append({"one": one, "four": four, "split": split})
            ctx.say(f"  transitions rep {i + 1}: 1 writer {one['per_s']:.0f}/s, "
                    f"4 writers {four['per_s']:.0f}/s (audit chain split: "
                    f"{split['per_s']:.0f}/s; 4 writers' backends waiting for a lock "
                    f"{100 * four['sampled']['shares']['lock']:.0f} %)"
                    + (f", pgbench {samples['pg1'][-1]:.0f} / {samples['pg4'][-1]:.0f} tps"
                       if exe else ""))
        if exe:
            samples["claim"] = claim_statement_rate(ctx, dsn, 1000 if ctx.quick else 5000,
                                                    ctx.repeat)
            rates = ", ".join(f"{rate:.0f}" for rate in samples["claim"])
            ctx.say(f"  pgbench calling claim_job: {rates} tps")
            samples["complete"] = complete_statement_rate(
                ctx, dsn, 1000 if ctx.quick else 5000, ctx.repeat)
            rates = ", ".join(f"{rate:.0f}" for rate in samples["complete"])
            ctx.say(f"  pgbench calling complete_job: {rates} calls/s")
            ctx.say("  pgbench replaying claim -> complete: "
                    + ", ".join(f"{rate:.0f}" for rate in ceiling["pair"]) + " transitions/s")
    rows = [row("1 writer: claim+complete transitions", "transitions/s", samples["w1"],
                key="w1"),
            row("4 writers, 4 repositories (processes)", "transitions/s", samples["w4"],
                key="w4"),
            row("  4 writers, the audit chain split per writer (what-if, not shipped)",
                "transitions/s", samples["w4_split"], who="reference", key="w4_split",
                detail=True),
            *bound_rows(raw, "one", "1 writer"), *bound_rows(raw, "four", "4 writers")]
    if exe:
        rows += [row("pgbench one-row INSERT, 1 client", "tps", samples["pg1"],
                     who="reference", key="pg1"),
                 row("pgbench one-row INSERT, 4 clients", "tps", samples["pg4"],
                     who="reference", key="pg4")]
    else:
        rows.append(na_row("pgbench one-row INSERT", "tps", "pgbench not found",
                           who="reference"))
    rows.append(row("  the same INSERT from Python (psycopg, autocommit), 1 client", "tps",
                    samples["py1"], who="reference", key="py1", detail=True))
    if samples["claim"]:
        rows += [
            row("server ceiling: pgbench replaying 1 writer's statements", "transitions/s",
                ceiling["pair"], who="reference", key="ceiling"),
            row("  of which the claim (striatum.claim_job, as sent)", "calls/s",
                ceiling["claim"], who="reference", key="ceiling_claim", detail=True),
            row("  of which the completion (striatum.complete_job, as sent)", "calls/s",
                ceiling["complete"], who="reference", key="ceiling_complete", detail=True),
            row("  pgbench calling striatum.claim_job (no striatum client), 1 client",
                "tps", samples["claim"], who="reference", key="claim", detail=True),
            row("  pgbench calling striatum.complete_job after each claim, 1 client",
                "calls/s", samples["complete"], who="reference", key="complete",
                detail=True)]
    return {"rows": rows, "raw": raw, "notes": [
        f"fan-out of {fanout} jobs per writer; the root's claim and completion (which "
        f"readies all {fanout - 2} tasks in one transaction) are done before the clock "
        f"starts; each writer then loops claim -> complete for {seconds} s "
        "(leases.claim(sweep=False, artifact_folder=False), as a worker claims, "
        "leases.complete), every call one transaction.",
        "what bounds the writers: while they run, pg_stat_activity is sampled every 50 ms "
        "(the active backends' wait events: Lock:* is a row lock held by another "
        "transaction to its COMMIT, IO:WAL*/LWLock:WAL* the WAL's write and flush, none "
        "the CPU); client CPU is the writer processes' own, backend CPU their backends' "
        "(/proc), each divided by the transitions made. Every transition appends to the "
        "one global audit chain, whose head row each holds locked to its COMMIT (the "
        "WAL flush included): writers on different repositories still commit one at a "
        "time. The what-if row applies bench/audit_split.sql to a second database (each "
        "backend's audit rows chained apart, a record doctor would refuse) to show what "
        "that shared head costs.",
        f"pgbench -n -c C -j min(C,2) -T {seconds} -f insert.sql, the script being "  # noqa: S608 - prose
        "INSERT INTO bench_insert (payload) VALUES ('x') on a bigserial-keyed table in "
        "the same database; the Python row sends that INSERT in a psycopg loop "
        "(autocommit) for the same time: what one statement and one commit cost a "
        "Python client.",
        "the claim_job row: pgbench, 1 client, calling SELECT ... FROM striatum.claim_job(run, "
        "...) for a fixed number of transactions per repetition, on one fan-out run with a ready "
        "job for every call (checked after): the database's own cost of the claim statement "
        "(lease, lease row, chained event with its hash, commit) with no striatum code, the "
        "ceiling of any client's claim rate",
        "the complete_job row: pgbench, 1 client, a script of claim_job then complete_job "
        "of the job it leased (the dependents' document a fan-out task's completion "
        "sends: the join, counted from the rest of the run), -r: the completion "
        "statement's own latency; every call checked to have completed its job",
        "server ceiling: one writer's claim -> complete pairs on a fan-out of the same size, "
        "recorded from the Python client in each repetition right after the 1-writer run "
        "(every statement it sent, parameters rendered as literals, BEGIN and COMMIT "
        "included), then replayed by `pgbench -n -r -c 1 -t 1` on a copy of the database "
        "as it was before them; the first tenth of the pairs warm the copy's buffers and "
        "are not counted; the sum of pgbench's per-statement times is what the server "
        "alone spends; transitions/s = 2 / (claim time + completion time). A "
        "completion is one statement (striatum.complete_job), but for the few that take "
        "the general transition, whose pipeline pgbench sends as one query of "
        "statements joined by `\\;` (one round trip, where the client waits twice); "
        "pgbench sends text (parsed and planned every time), where psycopg prepares a "
        "statement after its fifth use."]}


# ======================================================= workers as subprocesses

def start_workers(ctx: Context, dsn: str, run: str, count: int, concurrency: int = 1
                  ) -> list[subprocess.Popen[bytes]]:
    """``count`` worker subprocesses, of ``run`` (of every run when it is empty)."""
    argv = [*striatum_argv(), "worker", *(["--run", run] if run else []), "--concurrency",
            str(concurrency), "--lease-seconds", "60"]
    env = striatum_env(dsn, ctx)
    logs = ctx.tmp / "worker-logs"
    logs.mkdir(exist_ok=True)
    procs = []
    for i in range(count):
        log = open(logs / f"{run}-{i}.log", "wb")  # noqa: SIM115 - closed with the process
        procs.append(subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def wait_listening(dsn: str, count: int, procs: list[subprocess.Popen[bytes]],
                   timeout: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    # A worker's listening connection LISTENs on more than one channel (ready jobs,
    # cancelled runs): its last statement is whichever LISTEN came last.
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                               "current_database() AND query LIKE 'LISTEN striatum_%%'"
                               ).fetchone()
            if row and row[0] >= count:
                return
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a worker exited before it was ready")
            time.sleep(0.05)
    raise RuntimeError(f"{count} workers did not start listening in {timeout:.0f} s")


def wait_run_end(dsn: str, run: str, timeout: float, poll: float = 0.02,
                 polls: list[int] | None = None) -> str:
    """The run's final status; ``polls`` gets how many queries (commits) it took."""
    import psycopg

    deadline = time.monotonic() + timeout
    asked = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            asked += 1
            row = conn.execute("SELECT status FROM striatum.runs WHERE id = %s", [run]
                               ).fetchone()
            if row and row[0] in ("completed", "failed", "cancelled", "blocked"):
                if polls is not None:
                    polls.append(asked)
                return str(row[0])
            time.sleep(poll)
    raise RuntimeError(f"run {run} did not end in {timeout:.0f} s")


def _cpu(process: Any, *, reaped: bool = False) -> float:
    """A process's CPU seconds; ``reaped``: with its children that ended and were waited
    for (a lane guardian's lanes)."""
    import psutil

    try:
        t = process.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system + ((t.children_user + t.children_system) if reaped else 0.0)


def cpu_snapshot(dsn: str, procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """Where a worked run's CPU goes: the worker processes, their lane guardians with the
    lanes they reaped, each server backend of the database (by pid), the machine."""
    import psutil
    import psycopg

    workers = [psutil.Process(p.pid) for p in procs if p.poll() is None]
    guardians = [child for w in workers for child in w.children()]
    with psycopg.connect(dsn, autocommit=True) as conn:
        pids = [int(r[0]) for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()").fetchall()]
    machine = psutil.cpu_times()
    return {"workers": sum(_cpu(w) for w in workers),
            "guardians": sum(_cpu(g, reaped=True) for g in guardians),
            "backends": {pid: _cpu(psutil.Process(pid)) for pid in pids
                         if psutil.pid_exists(pid)},
            "busy": machine.user + machine.system + machine.nice + machine.irq
            + machine.softirq, "idle": machine.idle + machine.iowait,
            "at": time.perf_counter()}


def commits(dsn: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT xact_commit FROM pg_stat_database "
                           "WHERE datname = current_database()").fetchone()
    return int(row[0]) if row else 0


def job_costs(before: dict[str, Any], after: dict[str, Any], jobs: int,
              commits_made: int) -> dict[str, float]:
    """Per job, between two ``cpu_snapshot``s: CPU ms of each side, commits, and how busy
    the machine was (every process on it, other sessions' included)."""
    backends = sum(cpu - before["backends"].get(pid, 0.0)
                   for pid, cpu in after["backends"].items())
    busy = after["busy"] - before["busy"]
    idle = after["idle"] - before["idle"]
    return {"worker_ms": (after["workers"] - before["workers"]) * 1000 / jobs,
            "lane_ms": (after["guardians"] - before["guardians"]) * 1000 / jobs,
            "server_ms": backends * 1000 / jobs,
            "machine_ms": busy * 1000 / jobs,
            "busy_pct": 100 * busy / (busy + idle) if busy + idle else 0.0,
            "commits": commits_made / jobs}


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def jobs_in(dsn: str, run: str, status: str) -> int:
    """How many of the run's jobs are in ``status``."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM striatum.jobs WHERE run_id = %s AND "
                           "status = %s", [run, status]).fetchone()
    return int(row[0]) if row else 0


def worked_run(ctx: Context, dsn: str, jobs: list[dict[str, Any]], command: list[str],
               name: str, *, workers: int = 4, concurrency: int = 1, on_start: Any = None,
               timeout: float = 1800, measure: bool = False) -> dict[str, Any]:
    """Prepare a run, let ``workers`` worker subprocesses (already idle) work it to its end.
    ``measure``: also where its CPU went and how many commits it made, per job (``costs``),
    from ``runs.start`` until the run ended."""
    from striatum.runtime import runs
    from striatum.runtime.store import Store

    workflow = write_workflow(ctx.tmp, name, jobs, command)
    repo = new_repo(ctx, name)
    store = Store.connect(dsn)
    try:
        t0 = time.perf_counter()
        run = runs.prepare(store, str(workflow), str(repo), overrides={},
                           lanes={"l": {"command": command}})
        prepare_s = time.perf_counter() - t0
        procs = start_workers(ctx, dsn, run, workers, concurrency)
        costs: dict[str, float] = {}
        try:
            wait_listening(dsn, workers, procs)
            if on_start is not None:
                on_start(run)
            before = cpu_snapshot(dsn, procs) if measure else None
            committed = commits(dsn) if measure else 0
            polls: list[int] = []
            t1 = time.perf_counter()
            runs.start(store, run)
            status = wait_run_end(dsn, run, timeout, polls=polls)
            run_s = time.perf_counter() - t1
            if before is not None:
                after = cpu_snapshot(dsn, procs)
        finally:
            stop_workers(procs)
        if before is not None:
            # The workers' backends report their commits as they exit. Not the jobs': the
            # start's commit, the poller's queries, the two counting queries' own.
            time.sleep(0.2)
            made = commits(dsn) - committed - 3 - sum(polls)
            costs = job_costs(before, after, len(jobs), made)
        done = jobs_in(dsn, run, "succeeded")
        if status != "completed" or done != len(jobs):
            raise RuntimeError(f"run {run} ended {status} with {done}/{len(jobs)} jobs "
                               f"succeeded (worker logs in {ctx.tmp / 'worker-logs'})")
        return {"run": run, "repo": str(repo), "prepare_s": prepare_s, "run_s": run_s,
                "total_s": prepare_s + run_s, "jobs": len(jobs), "costs": costs}
    finally:
        store.close()


# ============================================================ 2. end-to-end jobs/s

def figure_e2e(ctx: Context) -> dict[str, Any]:
    n = 200 if ctx.quick else 1000
    samples: list[float] = []
    one_process: list[float] = []
    costs: dict[str, list[float]] = {}
    raw = []
    with fresh_database(ctx) as dsn:
        for i in range(ctx.repeat):
            got = worked_run(ctx, dsn, fanout_jobs(n), ["true"], f"e2e-{n}", measure=True)
            samples.append(n / got["total_s"])
            for name, value in got["costs"].items():
                costs.setdefault(name, []).append(value)
            raw.append(got)
            single = worked_run(ctx, dsn, fanout_jobs(n), ["true"], f"e2e-{n}-c4", workers=1,
                                concurrency=4)
            one_process.append(n / single["total_s"])
            raw.append({**single, "workers": 1, "concurrency": 4})
            ctx.say(f"  e2e rep {i + 1}: {n} jobs in {got['total_s']:.1f} s "
                    f"(prepare {got['prepare_s'] * 1000:.0f} ms) = {samples[-1]:.1f} jobs/s; "
                    f"one worker with 4 slots {one_process[-1]:.1f} jobs/s")
    rows = [row(f"{n}-job fan-out, 4 workers (subprocesses)", "jobs/s", samples, key="e2e"),
            row("  the same, one worker with --concurrency 4", "jobs/s", one_process,
                key="e2e_c4", detail=True)]
    if costs:
        # What bounds the first row: where each job's CPU goes, and the commits it makes.
        rows += [row(f"  of which, a job: {what}", unit, costs[name], higher_is_better=False,
                     key=f"e2e_{name}", detail=True) for name, what, unit in (
            ("worker_ms", "CPU of the worker processes", "ms"),
            ("lane_ms", "CPU of the lane guardians and lanes (`true`)", "ms"),
            ("server_ms", "CPU of the database's server backends", "ms"),
            ("machine_ms", "CPU of the whole machine (other sessions too)", "ms"),
            ("commits", "commits (claim, completion, liveness, reads)", "commits"),
            ("busy_pct", "the machine's CPU busy meanwhile (2 cores)", "%"))]
    rows += peers.e2e_rows(ctx, n)
    return {"rows": rows, "raw": {"striatum": raw}, "notes": [
        f"striatum: `striatum worker --run R --concurrency 1` x 4 subprocesses, started and "
        f"LISTENing before the clock starts; clock = `runs.prepare` (compile, insert {n} "
        "jobs, the prepare event) + from `runs.start` until the run is `completed` "
        "(polled every 20 ms); lane `true` pinned with runs.prepare(lanes=...); "
        "every job then verified `succeeded`. The detail row: one such worker with "
        "`--concurrency 4` (four lane threads in one process).",
        "procrastinate: one worker, concurrency 4, listening before the clock starts; "
        "clock = batch_defer_async of N jobs until the N-th has run; same work: each job "
        "awaits asyncio.create_subprocess_exec('true'); no-op: each job returns at once.",
        "DBOS: launched before the clock; N workflows of one step, started with "
        "DBOS.start_workflow (its own thread pool) or enqueued on a queue with "
        "worker_concurrency=4 (polled every 10 ms); clock until every result is back; "
        "same work: the step runs subprocess.run(['true']); no-op: it returns its argument.",
        "the targets are held against the same-work rows (every side starts one process "
        "per job); the no-op rows show what the peers' own machinery costs.",
        "the 'of which' rows: the first row's runs, from `runs.start` until the run ended, "
        "divided by the jobs: CPU seconds (psutil) of the 4 worker processes, of their lane "
        "guardians with the lanes they reaped, of the server backends connected to the "
        "bench database, and of the whole machine (every process, other sessions' too); "
        "commits from pg_stat_database (the worker's own: claims, completions, reads, "
        "liveness rows), less the harness's own queries."]}


# ========================================================== 3. dispatch latency

class _Listener(threading.Thread):
    """Note the moment each `striatum_ready` notification arrives: the commit that made
    a job ready, as any idle worker sees it."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute("LISTEN striatum_ready")
        self.seen: list[tuple[str, int]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for note in self.conn.notifies(timeout=0.2):
                self.seen.append((note.payload, time.time_ns()))

    def stop(self) -> None:
        self.halt.set()
        self.join(timeout=5)
        self.conn.close()


def _ns(at: str) -> int:
    moment = datetime.fromisoformat(at)
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 1000


def dispatch_samples(dsn: str, run: str, repo: str, notified: list[int]) -> dict[str, Any]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        events = conn.execute("SELECT type, job_id, payload FROM striatum.events WHERE "
                              "run_id = %s ORDER BY seq", [run]).fetchall()
        logs = conn.execute("SELECT job_id, stored_at FROM striatum.artifacts WHERE "
                            "run_id = %s AND path LIKE 'logs/%%'", [run]).fetchall()
    ready: dict[str, int] = {}
    ready_order: list[str] = []
    claim: dict[str, int] = {}
    for kind, job, payload in events:
        at = _ns(json.loads(payload)["at"])
        if kind == "job.ready" and job not in ready:
            ready[job] = at
            ready_order.append(job)
        elif kind == "job.claim" and job not in claim:
            claim[job] = at
    lane = {job: int((Path(repo) / stored).read_text().split()[0]) for job, stored in logs}
    matched = len(notified) == len(ready_order)
    commit = dict(zip(ready_order, notified, strict=False)) if matched else {}
    out: dict[str, list[float]] = {"ready_commit_to_lane": [], "ready_tx_to_lane": [],
                                   "ready_commit_to_claim_tx": [], "claim_tx_to_lane": []}
    for job in ready_order:
        if job not in lane or job not in claim:
            continue
        out["ready_tx_to_lane"].append((lane[job] - ready[job]) / 1e6)
        out["claim_tx_to_lane"].append((lane[job] - claim[job]) / 1e6)
        if job in commit:
            out["ready_commit_to_lane"].append((lane[job] - commit[job]) / 1e6)
            out["ready_commit_to_claim_tx"].append((claim[job] - commit[job]) / 1e6)
    return {"matched_notifications": matched, "notifications": len(notified),
            "ready_events": len(ready_order), "ms": out}


def figure_dispatch(ctx: Context) -> dict[str, Any]:
    n = 100 if ctx.quick else 500
    per_rep: list[dict[str, Any]] = []
    p50: list[float] = []
    p99: list[float] = []
    with fresh_database(ctx) as dsn:
        for i in range(ctx.repeat):
            listener = _Listener(dsn)
            listener.start()
            try:
                got = worked_run(ctx, dsn, chain_jobs(n), ["date", "+%s%N"], f"chain-{n}")
            finally:
                listener.stop()
            notified = [ns for payload, ns in listener.seen if payload == got["run"]]
            found = dispatch_samples(dsn, got["run"], got["repo"], notified)
            key = ("ready_commit_to_lane" if found["matched_notifications"]
                   else "ready_tx_to_lane")
            ordered = sorted(found["ms"][key])
            p50.append(percentile(ordered, 50))
            p99.append(percentile(ordered, 99))
            per_rep.append({**got, **found, "measure": key})
            ctx.say(f"  dispatch rep {i + 1}: {len(ordered)} jobs, {key}: p50 {p50[-1]:.1f} ms,"
                    f" p99 {p99[-1]:.1f} ms")
    breakdown = {}
    for key in ("ready_commit_to_claim_tx", "claim_tx_to_lane", "ready_tx_to_lane"):
        pooled = sorted(x for rep in per_rep for x in rep["ms"][key])
        if pooled:
            breakdown[key] = {"p50": percentile(pooled, 50), "p99": percentile(pooled, 99)}
    rows = [row(f"ready -> lane started, p50 ({n}-job chain)", "ms", p50,
                higher_is_better=False, key="p50"),
            row(f"ready -> lane started, p99 ({n}-job chain)", "ms", p99,
                higher_is_better=False, key="p99")]
    for key, label in (("ready_commit_to_claim_tx", "  of which ready -> claim tx began"),
                       ("claim_tx_to_lane", "  of which claim tx began -> lane started")):
        per = [percentile(sorted(rep["ms"][key]), 50) for rep in per_rep if rep["ms"][key]]
        if per:
            rows.append(row(label + ", p50", "ms", per, higher_is_better=False, key=key,
                            detail=True))
    rows += peers.dispatch_rows(ctx, n)
    return {"rows": rows, "raw": {"striatum": per_rep, "pooled": breakdown}, "notes": [
        f"a chain of {n} jobs (each needs the one before) worked by 4 idle `striatum worker` "
        "subprocesses, so every job becomes ready while workers wait for it. The lane is "
        "`date +%s%N`: its output, published as logs/<job>.log, is the wall clock at the "
        "moment the lane's own program started (forked by the worker's lane guardian).",
        "ready = the moment a LISTENer in the harness received the `striatum_ready` "
        "notification of the transaction that made the job ready (delivered at commit); "
        "the k-th notification is matched to the k-th job.ready event. All clocks are "
        "CLOCK_REALTIME on this one machine (the DB's now() in event `at`, time.time_ns() "
        "in the harness, date in the lane).",
        "breakdown: ready -> claim = the claim transaction's now() (event `at`) minus the "
        "notification; claim -> lane = lane clock minus the claim's `at`.",
        "procrastinate: an idle worker (concurrency 4, LISTEN on); one job deferred at a "
        "time; latency = the task's time.time_ns() at start minus time.time_ns() just "
        "before defer_async."]}


# ====================================================== 4. chain verification

def _event_payloads(run: str, jobs: int, at: datetime, repo: str
                    ) -> list[tuple[str, str | None, str, str, datetime]]:
    """(run, job, type, payload, created_at) of one run worked to completion, as the runtime
    writes them (created_at = the payload's `at`, both the transaction's now())."""
    from striatum.canonical import canonical_json

    def state(status: str, executions: int = 0, fence: int = 0, owner: str | None = None
              ) -> dict[str, Any]:
        return {"status": status, "iteration": 0, "attempt": 0, "executions": executions,
                "revisions_used": 0, "fence": fence, "lease_owner": owner, "chosen": None,
                "verdict": None}

    tick = [at]

    def event(kind: str, job: str | None, st: dict[str, Any], data: dict[str, Any]
              ) -> tuple[str, str | None, str, str, datetime]:
        tick[0] += timedelta(microseconds=137)
        body = {"type": kind, "run": run, "job": job, "at": tick[0].isoformat(
            timespec="microseconds"), "state": st, "data": data}
        return run, job, kind, canonical_json(body, verify=False).decode("utf-8"), tick[0]

    names = [f"j{i}" for i in range(jobs)]
    owner = "benchhost:4242:5f2e9c1a"
    out = [event("run.prepare", None, {"status": "prepared", "blocked_on": None}, {
        "workflow": "bench-doctor", "digest": "0" * 64, "vars": {}, "repo": repo,
        "artifact_root": "striatum/runs", "worst_case": jobs,
        "jobs": {name: state("pending") for name in names}}),
        event("run.start", None, {"status": "running", "blocked_on": None}, {})]
    for name in names:
        out.append(event("job.ready", name, state("ready", 1), {}))
        out.append(event("job.claim", name, state("leased", 1, 1, owner),
                         {"owner": owner, "lease_seconds": 60}))
        digest = hashlib.sha256(name.encode()).hexdigest()
        out.append(event("artifact.publish", name, state("leased", 1, 1, owner), {
            "path": f"logs/{name}.log", "sha256": digest, "bytes": 120, "iteration": 0,
            "stored_at": f"striatum/runs/{run}/{name}/i0/logs/{name}.log"}))
        out.append(event("job.complete", name, state("succeeded", 1, 1), {}))
    out.append(event("run.complete", None, {"status": "completed", "blocked_on": None}, {}))
    return out


# The typed columns of an event's state (migration 0013), in the order they are copied.
STATE_COLUMNS = ("status", "iteration", "attempt", "executions", "revisions_used", "fence",
                 "lease_owner", "chosen", "verdict", "blocked_on")


def generate_record(dsn: str, events: int, jobs_per_run: int = 100
                    ) -> tuple[list[str], list[str], int, int]:
    """Write ~``events`` events of completed runs (and the matching projections) as the
    table owner, with the append-only triggers in place (inserts are allowed), by COPY.
    Returns the payloads and row hashes in chain order, the event and job counts."""
    import psycopg

    from striatum.runtime.audit import GENESIS, row_hash

    per_run = 3 + 4 * jobs_per_run
    runs = max(1, round(events / per_run))
    payloads: list[str] = []
    hashes: list[str] = []
    with psycopg.connect(dsn) as conn:
        repo_id = conn.execute("INSERT INTO striatum.repos (path) VALUES ('/bench/doctor') "
                               "RETURNING id").fetchone()[0]  # type: ignore[index]
        conn.execute("INSERT INTO striatum.workflows (digest, name, compiled) VALUES "
                     "(%s, 'bench-doctor', '{}')", ["0" * 64])
        at = datetime(2026, 1, 1, tzinfo=UTC)
        run_ids = [f"bench-{r:06d}" for r in range(runs)]
        with conn.cursor() as cur:
            with cur.copy("COPY striatum.runs (id, repo_id, workflow_digest, workflow_name, "
                          "status, artifact_root, worst_case, unsettled) FROM STDIN") as copy:
                for run in run_ids:
                    copy.write_row((run, repo_id, "0" * 64, "bench-doctor", "completed",
                                    "striatum/runs", jobs_per_run, 0))
            with cur.copy("COPY striatum.jobs (run_id, job_id, position, kind, lane, "
                          "lane_kind, status, max_attempts, executions, fence) FROM STDIN"
                          ) as copy:
                for run in run_ids:
                    for i in range(jobs_per_run):
                        copy.write_row((run, f"j{i}", i, "task", "l", "command", "succeeded",
                                        3, 1, 1))
            previous, seq = GENESIS, 0
            with cur.copy("COPY striatum.events (repo_id, seq, run_id, job_id, type, "
                          "payload, previous_hash, row_hash, created_at, status, iteration, "
                          "attempt, executions, revisions_used, fence, lease_owner, chosen, "
                          "verdict, blocked_on) FROM STDIN") as copy:
                for run in run_ids:
                    for run_id, job, kind, payload, moment in _event_payloads(
                            run, jobs_per_run, at, "/bench/doctor"):
                        seq += 1
                        digest = row_hash(previous, payload)
                        # The state columns as the runtime writes them (read from the
                        # payload): the table's constraint refuses the row otherwise.
                        state = json.loads(payload)["state"]
                        copy.write_row((repo_id, seq, run_id, job, kind, payload, previous,
                                        digest, moment,
                                        *(state.get(c) for c in STATE_COLUMNS)))
                        payloads.append(payload)
                        hashes.append(digest)
                        previous = digest
                    at += timedelta(seconds=5)
            cur.execute("INSERT INTO striatum.chain_heads (chain, seq, hash, previous) "
                        "VALUES (%s, %s, %s, %s)",
                        [f"repo:{repo_id}", seq, previous,
                         hashes[-2] if len(hashes) > 1 else GENESIS])
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
    return payloads, hashes, len(payloads), runs * jobs_per_run


def python_hash_loop(payloads: list[str], hashes: list[str]) -> float:
    """The practical limit: verify the same rows' chain in Python, no database, no JSON."""
    from striatum.runtime.audit import GENESIS

    sha256 = hashlib.sha256
    gc.collect()
    start = time.perf_counter()
    previous, bad = GENESIS, 0
    for payload, stored in zip(payloads, hashes, strict=True):
        if sha256((previous + payload).encode("utf-8")).hexdigest() != stored:
            bad += 1
        previous = stored
    elapsed = time.perf_counter() - start
    if bad:
        raise RuntimeError(f"{bad} rows did not hash to their stored hash")
    return elapsed


def streamed_hash_loop(dsn: str) -> tuple[float, int]:
    """What any check that reads the rows out of PostgreSQL pays at least: the rows
    streamed by COPY into Python and hashed there (no JSON, no replay)."""
    import psycopg

    from striatum.runtime.audit import GENESIS

    sha256 = hashlib.sha256
    start = time.perf_counter()
    previous, count, bad = GENESIS, 0, 0
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur, \
            cur.copy("COPY (SELECT payload, row_hash FROM striatum.events ORDER BY repo_id, "
                     "seq) TO STDOUT") as copy:
        for payload, stored in copy.rows():
            if sha256((previous + payload).encode("utf-8")).hexdigest() != stored:
                bad += 1
            previous = stored
            count += 1
    elapsed = time.perf_counter() - start
    if bad:
        raise RuntimeError(f"{bad} rows did not hash to their stored hash")
    return elapsed, count


def sql_hash_pass(dsn: str) -> tuple[float, int]:
    """The server's floor for hashing in SQL: one pass recomputing every row's hash and
    its link to the row before (no JSON parsing, no replay)."""
    import psycopg

    start = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        count, bad = conn.execute(doctor_cost.FLOOR).fetchone()  # type: ignore[misc]
    elapsed = time.perf_counter() - start
    if bad:
        raise RuntimeError(f"{bad} rows did not hash to their stored hash")
    return elapsed, int(count)


def run_doctor(ctx: Context, dsn: str, expect_events: int) -> tuple[float, int]:
    """`striatum doctor --no-anchors --json` as a subprocess: (wall s, peak RSS KiB)."""
    out = ctx.tmp / "doctor.json"
    elapsed, status, rss = run_with_rss([*striatum_argv(), "doctor", "--no-anchors", "--json"],
                                        env=striatum_env(dsn, ctx), stdout_path=out)
    text = out.read_text(errors="replace")
    try:
        report = json.loads(text)
    except ValueError:
        raise RuntimeError(f"doctor exited {status} without a report: {text[-1500:]}") from None
    if status != 0 or not report.get("ok") or report.get("events") != expect_events:
        bad = [f for f in report.get("findings", []) if not f.get("ok")]
        raise RuntimeError(f"doctor exited {status}, ok={report.get('ok')}, events "
                           f"{report.get('events')} of {expect_events}: {bad[:3]}")
    return elapsed, rss


def figure_doctor(ctx: Context) -> dict[str, Any]:
    big = 100_000 if ctx.quick else 1_000_000
    small = big // 10
    rates: list[float] = []
    rss_big: list[float] = []
    loop_rates: list[float] = []
    streamed: list[float] = []
    in_sql: list[float] = []
    raw: dict[str, Any] = {}
    with fresh_database(ctx, "_small") as dsn:
        _, _, n_small, jobs_small = generate_record(dsn, small)
        rss_small = []
        for _ in range(ctx.repeat):
            _, rss = run_doctor(ctx, dsn, n_small)
            rss_small.append(rss / 1024)
        raw["small"] = {"events": n_small, "jobs": jobs_small, "rss_mib": rss_small}
    with fresh_database(ctx) as dsn:
        start = time.perf_counter()
        payloads, hashes, n, jobs = generate_record(dsn, big)
        ctx.say(f"  doctor: generated {n:,} events ({jobs:,} jobs) in "
                f"{time.perf_counter() - start:.1f} s")
        for i in range(ctx.repeat):
            loop = python_hash_loop(payloads, hashes)
            loop_rates.append(n / loop)
            elapsed, rss = run_doctor(ctx, dsn, n)
            rates.append(n / elapsed)
            rss_big.append(rss / 1024)
            seconds, count = streamed_hash_loop(dsn)
            streamed.append(count / seconds)
            seconds, count = sql_hash_pass(dsn)
            in_sql.append(count / seconds)
            ctx.say(f"  doctor rep {i + 1}: {n / elapsed:,.0f} events/s ({elapsed:.1f} s, "
                    f"peak RSS {rss / 1024:.0f} MiB); python loop {n / loop:,.0f} /s, "
                    f"streamed {streamed[-1]:,.0f} /s, hash in SQL {in_sql[-1]:,.0f} /s")
        raw["big"] = {"events": n, "jobs": jobs, "rss_mib": rss_big, "rates": rates,
                      "loop_rates": loop_rates, "streamed": streamed, "in_sql": in_sql}
        del payloads, hashes
        ctx.say("  doctor: server CPU per event, each query alone on one backend ...")
        raw["cpu_us_per_event"] = cost = doctor_cost.breakdown(dsn, repeat=1)
        for label, micros in (cost or {}).items():
            if label != "events":
                ctx.say(f"    {micros:6.2f} us  {label}")
    rows = [row(f"doctor over {n:,} events (CLI, whole process)", "events/s", rates,
                key="doctor"),
            row("the floor: one SQL pass, sha256 and link per row, same run", "events/s",
                in_sql, who="reference", key="in_sql"),
            row(f"pure-Python sha256 chain loop, same {n:,} rows", "events/s", loop_rates,
                who="reference", key="loop"),
            row("  the rows streamed from PostgreSQL by COPY, hashed in Python", "events/s",
                streamed, who="reference", key="streamed", detail=True),
            row(f"doctor peak RSS, {n:,} events / {jobs:,} jobs", "MiB", rss_big,
                higher_is_better=False, key="rss_big"),
            row(f"doctor peak RSS, {n_small:,} events / {jobs_small:,} jobs", "MiB",
                raw["small"]["rss_mib"], higher_is_better=False, key="rss_small",
                who="reference")]
    return {"rows": rows, "raw": raw, "notes": [
        f"the record: runs of 100 jobs worked to completion (run.prepare, run.start, then "
        f"per job ready, claim, artifact.publish, complete; run.complete), {n:,} events in "
        "one repository chain, payloads canonical JSON exactly as the runtime writes them, "
        "written by COPY as the table owner with the append-only triggers in place, plus "
        "the matching runs/jobs projections so the replay passes.",
        "doctor: `striatum doctor --no-anchors --json` as a subprocess (it must report ok "
        "and the event count); wall time includes its start-up (~0.3 s); peak RSS is the "
        "ru_maxrss of doctor's own process (os.wait4 in a small interpreter that starts "
        "it, so the memory the harness holds is not charged to it).",
        "python loop: sha256(previous_hash + payload) per row and the comparison with the "
        "stored hash, over the same rows held in a list (no database, no JSON parsing).",
        "the two floors under doctor: the same rows streamed out of PostgreSQL by COPY and "
        "hashed in the Python loop (any client-side check pays this), and one SQL pass "
        "that only recomputes each row's sha256 and its link (any server-side check pays "
        "this); doctor also replays every job and run, over the state columns the "
        "database proved against each payload as it wrote them (--strict parses every "
        "payload instead).",
        "server CPU per event (raw cpu_us_per_event, printed while the figure runs): "
        "doctor's queries and the pieces of its pass, each alone on one backend with no "
        "parallel workers, CPU seconds of that backend from /proc (a server on this "
        "machine only; left out otherwise)."]}


# ================================================================= 5. CLI latency

def figure_cli(ctx: Context) -> dict[str, Any]:
    """The agent loop's verbs as whole ``striatum`` processes, direct and through the
    daemon (its fast path, and click's path to it), in one run; then the daemon's own
    cost per call."""
    from striatum.runtime import leases, runs
    from striatum.runtime.store import Store

    from . import daemon_rpc

    timed = 8 if ctx.quick else 20
    warmups = 2
    # A trailing "--" is a command line click reads as the same one and the fast path
    # leaves to click: the same call through the daemon, with click's start-up.
    ways = {"direct": ("", []), "daemon": (" daemon", []), "click": (" daemon click", ["--"])}
    verbs = ("job claim", "job verdict", "run status")
    samples: dict[str, list[float]] = {f"{verb}{tail}": [] for tail, _ in ways.values()
                                       for verb in verbs}
    cpu: dict[str, list[float]] = {key: [] for key in samples}
    home = ctx.tmp / "cli-home"  # short: the socket's path must fit in sun_path
    home.mkdir()
    with fresh_database(ctx) as dsn, daemon_rpc.daemon(dsn, home) as place:
        store = Store.connect(dsn)
        workflow = write_workflow(ctx.tmp, "reviews",
                                  reviews_jobs(len(ways) * (timed + warmups) + 2), ["true"])
        repo = new_repo(ctx, "cli")
        run = runs.prepare(store, str(workflow), str(repo), overrides={}, lanes=TRUE_LANE)
        runs.start(store, run)
        first = leases.claim(store, run, owner=OWNER, sweep=False)
        assert first is not None and first.job == "work"
        leases.complete(store, run, first.job, first.token)
        cli = striatum_argv()
        env = {**striatum_env(dsn, ctx), "STRIATUM_HOME": str(home)}
        for i in range(warmups + timed):
            # Round robin, as an agent's loop calls them: claim, verdict, status; one
            # round each way in turn.
            for way, (tail, after) in ways.items():
                on = {**env, "STRIATUM_DIRECT": "1"} if way == "direct" else env
                claim_argv = [*cli, "job", "claim", "--run", run, "--json", *after]
                elapsed, used, out = _cpu_timed(claim_argv, on, repo)
                claim = json.loads(out)
                if not claim.get("claimed"):
                    raise RuntimeError(f"job claim found nothing: {out}")
                verdict = [*cli, "job", "verdict", "accept", "--reason", "looks right", *after]
                verdict_env = {**on, "STRIATUM_RUN": run, "STRIATUM_JOB": claim["job"],
                               "STRIATUM_LEASE": claim["lease"]}
                elapsed_v, used_v, _ = _cpu_timed(verdict, verdict_env, repo)
                elapsed_s, used_s, _ = _cpu_timed([*cli, "run", "status", run, *after], on,
                                                  repo)
                if i >= warmups:
                    for verb, wall, spent in (("job claim", elapsed, used),
                                              ("job verdict", elapsed_v, used_v),
                                              ("run status", elapsed_s, used_s)):
                        samples[f"{verb}{tail}"].append(wall * 1000)
                        cpu[f"{verb}{tail}"].append(spent * 1000)
        overhead = _daemon_overhead(store, place, run, repo, 200 if ctx.quick else 1000)
        store.close()
    floor, floor_cpu = [], []
    for _ in range(timed):
        elapsed, used, _ = _cpu_timed([sys.executable, "-c", "pass"], striatum_env("", ctx),
                                      None)
        floor.append(elapsed * 1000)
        floor_cpu.append(used * 1000)
    named = {"": "direct", " daemon": "through the daemon",
             " daemon click": "through the daemon, click's path"}
    rows = []
    for key, values in samples.items():
        verb = next(v for v in verbs if key.startswith(v))
        way = named[key[len(verb):]]
        rows.append(row(f"striatum {verb} ({way}, median of {timed})", "ms", values,
                        higher_is_better=False, key=key))
        rows.append(row("  its CPU time (user + system)", "ms", cpu[key],
                        higher_is_better=False, key=f"{key} cpu", detail=True))
    rows.append(row("python -c pass (floor)", "ms", floor, who="reference",
                    higher_is_better=False, key="floor"))
    rows.append(row("  its CPU time (user + system)", "ms", floor_cpu, who="reference",
                    higher_is_better=False, key="floor cpu", detail=True))
    rows += [row(f"daemon overhead per call, {verb} (socket - in-process, medians)", "ms",
                 [value], higher_is_better=False, key=f"overhead {verb}")
             for verb, value in overhead.items()]
    return {"rows": rows, "raw": {"samples": samples, "cpu": cpu, "overhead": overhead},
            "notes": [
        f"each verb as a subprocess of the console script ({' '.join(cli)}) with "
        f"STRIATUM_DSN set and PYTHONPATH = this checkout, run from bytecode as an "
        f"installed wheel is (a private pycache filled by the warm-ups); {warmups} "
        f"untimed rounds then {timed} timed rounds of claim -> verdict accept -> run "
        "status, each round direct (STRIATUM_DIRECT=1), then through a daemon of the same "
        "database (`daemon start --foreground`) as an agent calls it (the fast path: no "
        "click), then the same command lines ended by `--`, which the fast path leaves "
        "to click (click's path to the daemon); on a run of parallel reviews; median "
        "and min-max over the timed calls (not repeated per --repeat: the calls are the "
        "samples). The verdict is `striatum job verdict` with the lease in "
        "STRIATUM_LEASE, as an operator outside a lane calls it. CPU time: the process's "
        "user + system time (getrusage of the children), which a loaded machine "
        "inflates far less than wall time.",
        "daemon overhead: bench/daemon_rpc.py's method, the median of a verb called "
        "in-process (registry.invoke on one open store) subtracted from its median through "
        "the socket on one kept connection (framing, JSON, a thread hop, the capability "
        "check and the call's audit row)."]}


def _cpu_timed(argv: list[str], env: dict[str, str], cwd: Path | None
               ) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the process, stdout)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    elapsed, out, _ = run_timed(argv, env=env, cwd=cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, spent, out


def _daemon_overhead(store: Any, place: Any, run: str, repo: Path, calls: int
                     ) -> dict[str, float]:
    import statistics

    from striatum.server.client import Client
    from striatum.server.registry import VERBS, Session, invoke

    from .daemon_rpc import timed

    session = Session(str(repo), lambda: store, lambda: {"face": "bench"})
    found = {}
    with Client(place) as kept:
        for verb, params in (("server.status", {}), ("run.status", {"run": run})):
            local = timed(lambda v=verb, p=params: invoke(VERBS[v], p, session), calls)
            remote = timed(lambda v=verb, p=params: kept.call(v, p), calls)
            found[verb] = statistics.median(remote) - statistics.median(local)
    return found


# ============================================================= 6. compile scaling

def figure_compile(ctx: Context) -> dict[str, Any]:
    import tempfile

    from . import compile_scaling as cs

    sizes = (1000, 10000, 100_000)
    rows = []
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="striatum-bench-") as tmp:
        cs.warm_up(Path(tmp))
        for shape in cs.SHAPES:
            raw[shape] = {n: cs.measure(cs.write_workflow(Path(tmp), shape, n), ctx.repeat)
                          for n in sizes}
    for shape in cs.SHAPES:
        for n in sizes:
            stats = raw[shape][n]["stages"]["total"]
            rows.append({"name": f"{shape}, {n:,} jobs: check+compile+lint+plan", "unit": "ms",
                         "who": "striatum", "samples": [], "key": f"{shape}-{n}",
                         "higher_is_better": False,
                         "summary": {k: v * 1000 for k, v in stats.items()} | {
                             "n": ctx.repeat}})
    return {"rows": rows, "raw": raw, "notes": [
        "bench/compile_scaling.py's own functions (warm_up, write_workflow, measure): the "
        "`total` stage, end to end, medians of --repeat passes; the full per-stage table is "
        "`python bench/compile_scaling.py`."]}


def _scale(name: str) -> Any:
    """A figure of bench/scale.py (which imports this module, so it is loaded late)."""
    def run(ctx: Context) -> dict[str, Any]:
        from . import scale

        figure: dict[str, Any] = getattr(scale, name)(ctx)
        return figure

    return run


def _budget(ctx: Context) -> dict[str, Any]:
    from .budget_cost import figure_budget

    return figure_budget(ctx)


def _mcp(ctx: Context) -> dict[str, Any]:
    from .mcp_calls import figure_mcp

    return figure_mcp(ctx)


def _startup(ctx: Context) -> dict[str, Any]:
    from .startup import figure_startup

    return figure_startup(ctx)


FIGURES = {
    "transitions": ("1. transition throughput", figure_transitions),
    "e2e": ("2. end-to-end jobs/s", figure_e2e),
    "dispatch": ("3. dispatch latency", figure_dispatch),
    "doctor": ("4. chain verification", figure_doctor),
    "cli": ("5. CLI latency", figure_cli),
    "compile": ("6. compile scaling", figure_compile),
    "backlog": ("7. backlog: a claim behind 100 and 100,000 ready jobs",
                _scale("figure_backlog")),
    "bigrun": ("8. reading a 10,000-job run", _scale("figure_bigrun")),
    "fleet": ("9. fleet: 1-16 workers over 4 runs", _scale("figure_fleet")),
    "web": ("10. web UI page render (1,000 jobs, 100,000 events)", figure_web),
    "budget": ("11. claim + complete with and without a budget", _budget),
    "mcp": ("12. MCP tool calls (stdio, the SDK's client)", _mcp),
    "startup": ("13. start-up: `striatum --help`, the embedded PostgreSQL", _startup),
}

__all__ = ["FIGURES", "ROOT", "transition_loop"]
