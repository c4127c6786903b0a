"""The reliability figures: run the reliability suite and print one table.

    python bench/reliability.py [--dsn DSN] [--short | --soak] [-k EXPR] [--json]

By default it runs every form of every scenario (``pytest -m "soak or not soak"
tests/reliability``): the long ones with the full counts (200 kills, 1,000 race
iterations, 16 processes x 2,000 events, ...) and the short ones, so the scenarios that
have no long form (backup restore, privileges, environment) are in the table too.
``--soak`` runs only the long forms (``pytest -m soak``), ``--short`` only the default
ones (what CI runs, a few minutes). ``--dsn`` is an admin DSN of a PostgreSQL
server the tests may create databases on (it becomes STRIATUM_TEST_DSN); without it the
tests start a private embedded server. ``-k`` selects tests as pytest's ``-k`` does.

Each test records its figure (tests/reliability/conftest.py, ``figure``); this script
collects them through the file named by STRIATUM_RELIABILITY_FIGURES, matches each test
with its outcome (pytest's JUnit XML), and prints: scenario, trials, the figure, wall
time, and whether the test passed. A test that failed before it could record a figure
still gets a row. The exit status is pytest's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SUITE = "tests/reliability"


def outcomes(junit: Path) -> dict[str, tuple[str, float, str]]:
    """nodeid -> (passed | failed | skipped, seconds, first line of the failure)."""
    found: dict[str, tuple[str, float, str]] = {}
    if not junit.exists():
        return found
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        nodeid = f"{module}.py::{case.get('name', '')}"
        status, message = "passed", ""
        for tag in ("failure", "error"):
            element = case.find(tag)
            if element is not None:
                status = "failed"
                message = (element.get("message") or "").strip().splitlines()[0][:160] \
                    if element.get("message") else ""
        if case.find("skipped") is not None:
            status = "skipped"
        found[nodeid] = (status, float(case.get("time", "0")), message)
    return found


def scenario_key(row: dict[str, Any]) -> tuple[int, str]:
    number = re.match(r"(\d+)", row["scenario"])
    return (int(number.group(1)) if number else 99, row["scenario"])


def table(rows: list[dict[str, Any]]) -> str:
    headers = ["scenario", "form", "trials", "figure", "wall s", "result"]
    cells = [[r["scenario"], "soak" if "soak" in r["test"] else "short", str(r["trials"]),
              r["figure"], f"{r['seconds']:.1f}", r["result"]] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(values: list[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(c) for c in cells]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", help="admin DSN of the server to test on (else embedded)")
    forms = parser.add_mutually_exclusive_group()
    forms.add_argument("--short", action="store_true", help="only the default forms")
    forms.add_argument("--soak", action="store_true", help="only the soak forms")
    parser.add_argument("-k", dest="select", help="pytest -k expression")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="striatum-figures-") as folder:
        figures = Path(folder) / "figures.jsonl"
        junit = Path(folder) / "junit.xml"
        command = [sys.executable, "-m", "pytest", SUITE, "-q", "-p", "no:cacheprovider",
                   f"--junitxml={junit}", "-o", "junit_family=xunit1"]
        if args.soak:
            command += ["-m", "soak"]
        elif not args.short:
            command += ["-m", "soak or not soak"]
        if args.select:
            command += ["-k", args.select]
        env = {**os.environ, "STRIATUM_RELIABILITY_FIGURES": str(figures),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        if args.dsn:
            env["STRIATUM_TEST_DSN"] = args.dsn
        server = args.dsn or env.get("STRIATUM_TEST_DSN") or "embedded PostgreSQL"
        started = time.monotonic()
        print(f"$ {shlex.join(command)}", file=sys.stderr)
        done = subprocess.run(command, cwd=ROOT, env=env)
        wall = time.monotonic() - started
        recorded = [json.loads(line) for line in figures.read_text().splitlines()
                    if line.strip()] if figures.exists() else []
        results = outcomes(junit)

    form = "short" if args.short else "soak" if args.soak else "all"
    rows = []
    named = set()
    for figure in recorded:
        status = results.get(figure["test"], ("?", 0.0, ""))[0]
        rows.append({**figure, "result": status})
        named.add(figure["test"])
    for nodeid, (status, seconds, message) in results.items():
        if nodeid not in named and status == "failed":
            rows.append({"scenario": nodeid.split("::")[-1], "trials": 0,
                         "figure": f"(no figure) {message}", "seconds": seconds,
                         "result": status, "test": nodeid})
    rows.sort(key=lambda r: (*scenario_key(r), "soak" in r["test"]))
    if args.json:
        print(json.dumps({"date": datetime.datetime.now(datetime.UTC).isoformat(),
                          "server": server, "forms": form,
                          "exit": done.returncode, "wall": round(wall, 1), "rows": rows},
                         indent=2))
    else:
        print()
        print(f"reliability figures, {form} forms — "
              f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {server}, "
              f"{platform.node()} ({os.cpu_count()} CPUs), total {wall:.0f} s, "
              f"pytest exit {done.returncode}")
        print(table(rows))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
