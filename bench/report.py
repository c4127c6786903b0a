"""``python -m bench report FILE``: a saved run of the harness as the Markdown of
docs/performance.md — the run's line (command, times, machine, server, load average at
start and end), the targets table (target, measured, met or MISSED, by how much) and the
full table — so that every figure on that page comes from one run.

    python -m bench report bench/results/<UTC time>-all.json [--output FILE] [--no-notes]

It reads the JSON alone: no database, no timing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import ROOT

# For a peer's (or reference's) row: which striatum row it is compared with.
PAIRS = {"pg1": "w1", "pg4": "w4", "ceiling": "w1", "w4_split": "w4",
         "procrastinate": "e2e", "dbos": "e2e",
         "dbos_queue4": "e2e", "procrastinate_noop": "e2e", "dbos_noop": "e2e",
         "dbos_queue4_noop": "e2e", "claim_small": "claim_big",
         "procrastinate_p50": "p50", "procrastinate_p99": "p99",
         "loop": "doctor", "in_sql": "doctor", "streamed": "doctor",
         "rss_small": "rss_big", "local run.status": "mcp run.status",
         "local job.claim": "mcp job.claim", "local job.complete": "mcp job.complete",
         "click": "help"}


def fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def keyed_rows(figure: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in figure.get("rows", []) if "key" in r}


def pair_ratio(found: dict[str, Any], keyed: dict[str, dict[str, Any]]) -> str:
    """striatum's median over this row's, for a row compared with one of striatum's."""
    other = keyed.get(PAIRS.get(found.get("key", ""), ""))
    median = found.get("summary", {}).get("median")
    if not other or "summary" not in other or not median:
        return ""
    return f"{other['summary']['median'] / median:.3f}x"


def at_least(target: dict[str, Any]) -> bool:
    """Whether the target is a floor (results saved before the flag was kept say it
    in their text)."""
    return bool(target.get("at_least", ">=" in target["target"]))


def measured(target: dict[str, Any]) -> str:
    if target.get("value") is None:
        return "not measured"
    value, unit = float(target["value"]), target.get("unit", "")
    if unit == "x":
        return f"{value:.3g}x"
    return f"{fmt(value)} {unit}".strip()


def status(target: dict[str, Any]) -> str:
    if target.get("met") is None:
        return "n/a"
    return "met" if target["met"] else "MISSED"


def by_how_much(target: dict[str, Any]) -> str:
    """How far from the limit, in the target's own direction: the margin when met,
    the shortfall when missed."""
    if target.get("value") is None:
        return ""
    value, limit = float(target["value"]), float(target["limit"])
    if limit == 0:
        return "none, as required" if value == 0 else f"{fmt(value)} where none is allowed"
    share = value / limit
    if at_least(target):
        if share >= 1:
            return f"{(share - 1) * 100:.0f} % above"
        return f"{(1 - share) * 100:.0f} % short ({share:.2f} of the target)"
    if share <= 1:
        return f"{(1 - share) * 100:.0f} % under"
    return f"{(share - 1) * 100:.0f} % over ({share:.2f}x the limit)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").strip()


def run_lines(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    load = " ".join(map(str, m.get("loadavg", [])))
    load_end = " ".join(map(str, m.get("loadavg_end", [])))
    lines = [f"- run: `{results['command']}`, {results['started']} -> "
             f"{results.get('finished', '?')} UTC; repeat {results['repeat']}"
             + (" (--quick)" if results.get("quick") else ""),
             f"- machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory']}, CPython "
             f"{m['python']}, {m['platform']}",
             f"- server: {m['postgres']}",
             f"- load average (1, 5, 15 min): start {load}, end {load_end}"]
    if results.get("peers"):
        lines.append("- peers: " + ", ".join(f"{k} {v}" for k, v in results["peers"].items()))
    elif results.get("peers_unavailable"):
        lines.append(f"- peers: n/a ({results['peers_unavailable']})")
    return lines


def targets_table(results: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | status | by how much |", "|---|---|---|---|"]
    for t in results.get("targets", []):
        lines.append(f"| {_cell(t['target'])} | {measured(t)} | {status(t)} | "
                     f"{by_how_much(t)} |")
    return lines


def full_table(results: dict[str, Any], titles: dict[str, str]) -> list[str]:
    lines = ["| figure / measure | median | min-max | unit | striatum / this |",
             "|---|--:|--:|---|--:|"]
    for name, figure in results["figures"].items():
        took = f" ({figure['wall_s']:.0f} s)" if "wall_s" in figure else ""
        lines.append(f"| **{_cell(titles.get(name, name))}**{took} | | | | |")
        if "error" in figure:
            lines.append(f"| n/a: {_cell(figure['error'])} | | | | |")
            continue
        keyed = keyed_rows(figure)
        for r in figure.get("rows", []):
            name_text = r["name"]
            detail = name_text.startswith(" ")
            label = ("· " if detail else "") + name_text.strip() + (
                "" if r["who"] == "striatum" else f" [{r['who']}]")
            if "na" in r:
                lines.append(f"| {_cell(label)} | n/a | | {r['unit']} | "
                             f"{_cell(r['na'][:150])} |")
                continue
            s = r["summary"]
            lines.append(f"| {_cell(label)} | {fmt(s['median'])} | "
                         f"{fmt(s['min'])}-{fmt(s['max'])} | {r['unit']} | "
                         f"{pair_ratio(r, keyed)} |")
    return lines


def notes(results: dict[str, Any], titles: dict[str, str]) -> list[str]:
    lines = []
    for name, figure in results["figures"].items():
        for note in figure.get("notes", []):
            number = titles.get(name, name).split(".")[0]
            lines.append(f"- {number}. {note}")
    return lines


def render(results: dict[str, Any], titles: dict[str, str], *, with_notes: bool = True
           ) -> str:
    parts = ["## Targets", "", "All from one run:", "", *run_lines(results), "",
             *targets_table(results), "", "## The table", "",
             "The last column divides striatum's median by the row's: for rates, above 1 "
             "means striatum is faster; for ms and MiB, above 1 means striatum takes more.",
             "", *full_table(results, titles)]
    method = notes(results, titles) if with_notes else []
    if method:
        parts += ["", "## How each figure was taken", "", *method]
    # Paths of the checkout the run was made in say nothing to a reader of the page.
    return "\n".join(parts).replace(f"{ROOT}/", "") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench report",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a JSON file of bench/results/")
    parser.add_argument("--output", type=Path, help="write the Markdown here, not stdout")
    parser.add_argument("--no-notes", action="store_true",
                        help="leave out each figure's method notes (the docs say them)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(args.results.read_text(encoding="utf-8"))
    except OSError as exc:
        parser.error(f"cannot read {args.results}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        parser.error(f"{args.results} is not JSON: {exc}")
    if not isinstance(results, dict) or not {"figures", "machine", "command"} <= set(results):
        parser.error(f"{args.results} is not a result of `python -m bench`")
    from .figures import FIGURES

    text = render(results, {name: title for name, (title, _) in FIGURES.items()},
                  with_notes=not args.no_notes)
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
