"""``python -m bench``: every runtime figure in one table, with the peers side by side.

    python -m bench all [--dsn DSN] [--repeat N] [--quick] [--no-peers]
    python -m bench transitions|e2e|dispatch|doctor|cli|compile|web [...]
    python -m bench backlog|bigrun|fleet|budget [...] # backlog and fleet scale
    python -m bench mcp|startup [...]                 # MCP tool calls; --help, embedded server
    python -m bench profile [--dsn DSN] [--quick]     # where the runtime's time goes
    python -m bench report bench/results/FILE.json    # a saved run as the docs' Markdown

One PostgreSQL (``--dsn``, default the 127.0.0.1:5432 service); each figure
gets a fresh database ``striatum_bench_<pid>`` (the peers ``..._dbos``,
``..._procrastinate``), dropped afterwards. Each figure runs ``--repeat``
times; the table shows medians and min-max and the ratio of striatum to each
peer measured in the same run; the targets follow, met or MISSED and by how
much. Raw results go to bench/results/ as JSON (bench/report.py renders one as
Markdown). Nothing asserts on a time.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .common import BENCH, DEFAULT_DSN, Context, machine
from .report import by_how_much, fmt, keyed_rows, measured, pair_ratio, status

RESULTS = BENCH / "results"
NEEDS_PEERS = {"e2e", "dispatch"}

def _median(figure: dict[str, Any] | None, key: str) -> float | None:
    if not figure:
        return None
    found = keyed_rows(figure).get(key)
    if not found or "summary" not in found:
        return None
    return float(found["summary"]["median"])


def print_table(results: dict[str, Any]) -> None:
    from .figures import FIGURES

    print(f"\n{'figure / measure':<62}{'median':>10}  {'[min-max]':<21}{'unit':<14}"
          f"{'striatum / this':>15}")
    print("(the last column divides striatum's median by this row's: for rates > 1 means "
          "striatum is faster, for ms and MiB > 1 means striatum takes more)")
    for name, figure in results["figures"].items():
        print(f"{FIGURES[name][0]}")
        if "error" in figure:
            print(f"  n/a: {figure['error']}")
            continue
        keyed = keyed_rows(figure)
        for r in figure["rows"]:
            label = r["name"] + ("" if r["who"] == "striatum" else f" [{r['who']}]")
            if "na" in r:
                print(f"  {label:<60}{'n/a':>10}  {'':<21}{r['unit']:<14}{'n/a':>15}")
                print(f"      ({r['na'][:150]})")
                continue
            s = r["summary"]
            spread = f"[{fmt(s['min'])}-{fmt(s['max'])}]"
            print(f"  {label:<60}{fmt(s['median']):>10}  {spread:<21}{r['unit']:<14}"
                  f"{pair_ratio(r, keyed):>15}")


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    figs = results["figures"]
    out: list[dict[str, Any]] = []

    def add(text: str, value: float | None, limit: float, at_least: bool,
            unit: str = "") -> None:
        if value is None:
            out.append({"target": text, "value": None, "limit": limit, "met": None,
                        "at_least": at_least, "unit": unit})
            return
        met = value >= limit if at_least else value <= limit
        out.append({"target": text, "value": value, "limit": limit, "met": met,
                    "at_least": at_least, "of_limit": value / limit if limit else None,
                    "unit": unit})

    def ratio(fig: str, a: str, b: str) -> float | None:
        x, y = _median(figs.get(fig), a), _median(figs.get(fig), b)
        return x / y if x is not None and y else None

    if "transitions" in figs:
        add("1. one writer's transitions/s >= 0.7 x the server ceiling (pgbench replay)",
            ratio("transitions", "w1", "ceiling"), 0.7, True, "x")
        add("1. 4 writers on 4 repositories >= 1.6 x one writer",
            ratio("transitions", "w4", "w1"), 1.6, True, "x")
    if "e2e" in figs:
        add("2. end-to-end jobs/s >= 1.5 x procrastinate, same work (`true`)",
            ratio("e2e", "e2e", "procrastinate"), 1.5, True, "x")
        add("2. end-to-end jobs/s >= 3 x DBOS (start_workflow), same work (`true`)",
            ratio("e2e", "e2e", "dbos"), 3.0, True, "x")
        add("2. end-to-end jobs/s >= 3 x DBOS (queue of 4), same work (`true`)",
            ratio("e2e", "e2e", "dbos_queue4"), 3.0, True, "x")
    if "dispatch" in figs:
        add("3. dispatch p50 <= 5 ms", _median(figs["dispatch"], "p50"), 5.0, False, "ms")
        add("3. dispatch p99 <= 20 ms", _median(figs["dispatch"], "p99"), 20.0, False, "ms")
    if "doctor" in figs:
        add("4. doctor events/s >= 0.8 x the hash-only SQL pass (same run)",
            ratio("doctor", "doctor", "in_sql"), 0.8, True, "x")
        add("4. doctor memory flat: peak RSS(10x events) <= 1.25 x RSS(1x)",
            ratio("doctor", "rss_big", "rss_small"), 1.25, False, "x")
    if "cli" in figs:
        for verb in ("job claim", "job verdict", "run status"):
            add(f"5. `striatum {verb}` median <= 300 ms", _median(figs["cli"], verb), 300.0,
                False, "ms")
            add(f"5. `striatum {verb}` through the daemon median <= 60 ms",
                _median(figs["cli"], f"{verb} daemon"), 60.0, False, "ms")
        for verb in ("server.status", "run.status"):
            add(f"5. the daemon's overhead per call ({verb}) <= 1 ms",
                _median(figs["cli"], f"overhead {verb}"), 1.0, False, "ms")
    if "compile" in figs:
        for shape in ("chain", "fanout", "nested"):
            big = _median(figs["compile"], f"{shape}-10000")
            small = _median(figs["compile"], f"{shape}-1000")
            add(f"6. compile {shape}: 10,000 jobs total <= 1000 ms", big, 1000.0, False, "ms")
            add(f"6. compile {shape}: total(10k) / total(1k) <= 12",
                big / small if big and small else None, 12.0, False, "x")
            huge = _median(figs["compile"], f"{shape}-100000")
            add(f"6. compile {shape}: 100,000 jobs total <= 5000 ms", huge, 5000.0, False, "ms")
            add(f"6. compile {shape}: total(100k) / total(10k) <= 12",
                huge / big if huge and big else None, 12.0, False, "x")
    if "backlog" in figs:
        add("7. per-claim time at 100,000 ready jobs <= 1.2 x at 100",
            ratio("backlog", "claim_big", "claim_small"), 1.2, False, "x")
    if "bigrun" in figs:
        for verb in ("run.status", "run.why"):
            add(f"8. {verb} of a 10,000-job run <= 100 ms", _median(figs["bigrun"], verb),
                100.0, False, "ms")
    if "web" in figs:
        for page in ("runs", "run", "job", "events", "events-old", "inbox"):
            add(f"9. web page {page} median <= 300 ms", _median(figs["web"], f"web-{page}"),
                300.0, False, "ms")
    if "mcp" in figs:
        for verb in ("job.claim", "job.complete", "run.status"):
            add(f"12. MCP tool call {verb.replace('.', '_')} (stdio) median <= 60 ms",
                _median(figs["mcp"], f"mcp {verb}"), 60.0, False, "ms")
    if "startup" in figs:
        add("13. `striatum --help` <= 1.3 x `python -c \"import click\"` (same rounds)",
            ratio("startup", "help", "click"), 1.3, False, "x")
        add("13. `striatum --help` imports none of the heavy modules",
            _median(figs["startup"], "heavy"), 0.0, False, "modules")
        add("13. `striatum workflow validate` of an example <= 400 ms",
            _median(figs["startup"], "validate"), 400.0, False, "ms")
        add("13. embedded PostgreSQL first start (fresh home) <= 1000 ms",
            _median(figs["startup"], "embedded first"), 1000.0, False, "ms")
        add("13. embedded PostgreSQL reuse of the running server <= 5 ms",
            _median(figs["startup"], "embedded reuse"), 5.0, False, "ms")
    return out


def print_targets(targets: list[dict[str, Any]]) -> None:
    print("\ntargets, from the medians above:")
    for t in targets:
        print(f"  [{status(t):<6}] {t['target']}: {measured(t)}"
              + (f" ({by_how_much(t)})" if t["met"] is not None else ""))


def print_notes(results: dict[str, Any]) -> None:
    from .figures import FIGURES

    print("\nmethod notes:")
    for name, figure in results["figures"].items():
        for note in figure.get("notes", []):
            print(f"  {FIGURES[name][0].split('.')[0]}. {note}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from .figures import FIGURES

    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("figure", choices=["all", *FIGURES, "profile"],
                        help="one figure, all of them, or the runtime profile")
    parser.add_argument("--dsn", default=DEFAULT_DSN,
                        help="a server and a role that may CREATE DATABASE "
                             f"(default: {DEFAULT_DSN!r})")
    parser.add_argument("--repeat", type=int, default=None,
                        help="repetitions of each figure (default 3; 2 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smaller runs and shorter windows (minutes, not a quarter hour)")
    parser.add_argument("--no-peers", action="store_true", help="skip DBOS and procrastinate")
    args = parser.parse_args(argv)
    if args.repeat is None:
        args.repeat = 2 if args.quick else 3
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    from . import peers
    from .figures import FIGURES

    args = parse_args(argv)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="striatum-bench-") as tmp:
        ctx = Context(dsn=args.dsn, repeat=args.repeat, quick=args.quick, tmp=Path(tmp))
        if args.figure == "profile":
            from .profile_runtime import profile

            return profile(ctx)
        names = list(FIGURES) if args.figure == "all" else [args.figure]
        if NEEDS_PEERS & set(names):
            if args.no_peers:
                ctx.peers_why = "skipped (--no-peers)"
            else:
                peers.ensure_venv(ctx)
                if ctx.peers_python is None:
                    ctx.say(f"peers: n/a: {ctx.peers_why}")
        results: dict[str, Any] = {
            "command": command, "started": started.isoformat(timespec="seconds"),
            "machine": machine(args.dsn), "repeat": args.repeat, "quick": args.quick,
            "peers": peers.versions(ctx), "peers_unavailable": ctx.peers_why or None,
            "figures": {}}
        for name in names:
            title, run = FIGURES[name]
            ctx.say(f"{title} ...")
            t0 = time.perf_counter()
            try:
                results["figures"][name] = run(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken figure must not hide the rest
                ctx.say(traceback.format_exc())
                results["figures"][name] = {"error": f"{type(exc).__name__}: {exc}",
                                            "rows": []}
            results["figures"][name]["wall_s"] = time.perf_counter() - t0
            ctx.say(f"  ({time.perf_counter() - t0:.0f} s)")
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["machine"]["loadavg_end"] = machine(args.dsn)["loadavg"]
    results["targets"] = evaluate_targets(results)
    report(results)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{started:%Y%m%dT%H%M%SZ}-{args.figure}.json"
    out.write_text(json.dumps(results, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"\nraw results: {out.relative_to(BENCH.parent)}")
    return 0


def report(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(f"{results['command']}   ({results['started']} -> {results['finished']} UTC)")
    print(f"machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory']}, CPython {m['python']}, "
          f"{m['platform']}")
    print(f"server:  {m['postgres']}")
    print(f"load average: start {' '.join(map(str, m['loadavg']))}, end "
          f"{' '.join(map(str, m['loadavg_end']))}; repeat {results['repeat']}"
          + (" (--quick)" if results["quick"] else ""))
    if results["peers"]:
        print("peers:   " + ", ".join(f"{k} {v}" for k, v in results["peers"].items())
              + " (bench/.peers-venv)")
    elif results["peers_unavailable"]:
        print(f"peers:   n/a: {results['peers_unavailable']}")
    print_table(results)
    print_targets(results["targets"])
    print_notes(results)
