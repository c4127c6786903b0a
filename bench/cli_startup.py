"""How fast the ``striatum`` command starts: wall time of whole subprocess runs.

    python bench/cli_startup.py [--runs 20] [--warmups 2] [--json]

Each command runs --runs times after --warmups untimed runs; the commands take
turns (round robin) so a burst of load on the machine hits all of them alike,
which keeps the ratio between them meaningful. ``python -c "import click"`` is
the floor: no click CLI can start faster, so ``striatum --help`` is judged
against it. Then ``-X importtime`` shows which heavy libraries ``--help`` loads.

This prints figures only; it asserts nothing, so it never fails on a slow machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "examples/code-change/workflow.json"
HEAVY = ("networkx", "jsonschema", "jsonschema_rs", "lark", "jinja2", "psycopg", "transitions")
TARGET_HELP_RATIO = 1.3  # striatum --help / import click
TARGET_VALIDATE_S = 0.400


def striatum_argv() -> list[str]:
    """The installed console script when there is one, else the same entry point via -c."""
    script = Path(sys.executable).parent / "striatum"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from striatum.cli.entry import main; main()"]


def commands() -> dict[str, list[str]]:
    cli = striatum_argv()
    return {
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        "striatum --help": [*cli, "--help"],
        "striatum workflow --help": [*cli, "workflow", "--help"],
        "striatum workflow validate": [*cli, "workflow", "validate", EXAMPLE],
        "striatum workflow plan": [*cli, "workflow", "plan", EXAMPLE],
    }


def _env() -> dict[str, str]:
    # Time this checkout, not whatever copy may be installed in site-packages.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # As an installed wheel runs: from bytecode (the warm-ups fill a private cache).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "striatum-bench-pycache")
    return env


def run_once(argv: list[str]) -> float:
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=False)
    except FileNotFoundError:
        # e.g. the venv was reinstalled mid-run and its console script is gone for a moment
        raise SystemExit(f"{argv[0]} vanished during the run; run the benchmark again") from None
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}:\n"
                         f"{done.stderr.decode(errors='replace')}")
    return elapsed


def measure(cmds: dict[str, list[str]], runs: int, warmups: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in cmds}
    for i in range(warmups + runs):
        for name, argv in cmds.items():
            elapsed = run_once(argv)
            if i >= warmups:  # warm-ups fill the page cache and .pyc files
                samples[name].append(elapsed)
    return samples


def imported_modules(argv: list[str]) -> dict[str, float]:
    """Top-level module -> cumulative import time (ms), from ``python -X importtime``."""
    # The console script is itself a Python file, so it can run under -X.
    full = argv if argv[0] == sys.executable else [sys.executable, *argv]
    full = [full[0], "-X", "importtime", *full[1:]]
    done = subprocess.run(full, cwd=ROOT, env=_env(), capture_output=True, text=True,
                          check=False)
    cumulative: dict[str, float] = {}
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = (part.strip() for part in line[len("import time:"):].split("|"))
        if not cum.isdigit():
            continue  # the header line
        top = name.split(".")[0]
        # importtime lists parents after children: the last line for a package is its total.
        if name == top:
            cumulative[top] = int(cum) / 1000
    return cumulative


def heavy_report(cmds: dict[str, list[str]], runs: int = 5) -> dict[str, dict[str, float]]:
    """Heavy module -> median cumulative import ms, for the commands that should avoid them."""
    out = {}
    for name in ("striatum --help", "striatum workflow --help", "striatum workflow validate"):
        # Whether a module loads is exact in one run; its cost is noisy, hence a median.
        seen = [imported_modules(cmds[name]) for _ in range(runs)]
        out[name] = {m: statistics.median(s[m] for s in seen)
                     for m in HEAVY if all(m in s for s in seen)}
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f}"


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {name: {"median": statistics.median(s), "min": min(s), "max": max(s)}
            for name, s in samples.items()}


def print_report(summary: dict[str, dict[str, float]], heavy: dict[str, dict[str, float]],
                 runs: int, warmups: int, argv: list[str]) -> None:
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"striatum = {shlex.join(argv)}")
    print(f"{runs} runs per command after {warmups} warm-ups; wall time in ms\n")
    print(f"  {'command':<30}{'median':>8}{'min-max':>14}")
    for name, s in summary.items():
        print(f"  {name:<30}{_ms(s['median']):>8}{_ms(s['min']) + '-' + _ms(s['max']):>14}")
    ratio = summary["striatum --help"]["median"] / summary["python -c 'import click'"]["median"]
    validate = summary["striatum workflow validate"]["median"]
    print(f"\ntargets: --help / import click = {ratio:.2f} (<= {TARGET_HELP_RATIO}) "
          f"[{'met' if ratio <= TARGET_HELP_RATIO else 'MISSED'}]; "
          f"validate = {_ms(validate)} ms (<= {_ms(TARGET_VALIDATE_S)}) "
          f"[{'met' if validate <= TARGET_VALIDATE_S else 'MISSED'}]")
    print("\nheavy modules imported (median cumulative import ms of 5 runs, "
          "python -X importtime):")
    for name, modules in heavy.items():
        found = ", ".join(f"{m} {ms:.0f}" for m, ms in modules.items()) or "none"
        print(f"  {name:<30}{found}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per command")
    parser.add_argument("--warmups", type=int, default=2, help="untimed runs first")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.warmups < 0:
        parser.error("--runs must be >= 1 and --warmups >= 0")
    cmds = commands()
    summary = summarize(measure(cmds, args.runs, args.warmups))
    heavy = heavy_report(cmds)
    if args.json:
        ratio = (summary["striatum --help"]["median"]
                 / summary["python -c 'import click'"]["median"])
        json.dump({"python": sys.version.split()[0], "nproc": os.cpu_count(),
                   "loadavg": os.getloadavg(), "striatum": striatum_argv(),
                   "runs": args.runs, "warmups": args.warmups, "results": summary,
                   "help_over_click": ratio, "heavy_modules": heavy,
                   "targets": {"help_over_click": TARGET_HELP_RATIO,
                               "validate_s": TARGET_VALIDATE_S}}, sys.stdout, indent=2)
        print()
    else:
        print_report(summary, heavy, args.runs, args.warmups, striatum_argv())
    return 0


if __name__ == "__main__":
    sys.exit(main())
