"""What a user waits for before striatum does anything: ``striatum --help`` against
``python -c "import click"`` (bench/cli_startup.py's method), and the embedded
PostgreSQL's first start in a fresh home, its reuse while it runs, and its start again
after ``striatum db stop``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import cli_startup
from .common import ROOT, Context, run_timed

# The driver is imported before the clock: every command that opens the store imports it,
# with a DSN of its own or not; what is timed is what the embedded default adds.
PROBE = """\
import json, time
import psycopg
from striatum.runtime import embedded
start = time.perf_counter()
embedded.ensure_running()
print(json.dumps({"seconds": time.perf_counter() - start}))
"""
STARTUP = ("python -c 'import click'", "striatum --help", "striatum workflow validate")


@contextlib.contextmanager
def embedded_home() -> Iterator[dict[str, str]]:
    """The environment of a fresh striatum home with no DSN; its server is stopped and the
    folder removed at the end. Outside the harness's 0700 temporary folder: run as root,
    the embedded server runs as a user of its own, which must reach its data folder."""
    home = Path(tempfile.mkdtemp(prefix="striatum-bench-home-"))
    os.chmod(home, 0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["STRIATUM_HOME"] = str(home)
    try:
        yield env
    finally:
        subprocess.run([*cli_startup.striatum_argv(), "db", "stop"], env=env,
                       capture_output=True, timeout=120, check=False)
        shutil.rmtree(home, ignore_errors=True)


def _probe(env: dict[str, str]) -> float:
    """ms that ensure_running() takes in a new process, its imports done."""
    _, out, _ = run_timed([sys.executable, "-c", PROBE], env=env)
    return float(json.loads(out)["seconds"]) * 1000


def embedded_starts(ctx: Context) -> dict[str, list[float]]:
    cli = cli_startup.striatum_argv()
    found: dict[str, list[float]] = {"first": [], "reuse": [], "restart": [], "cli": []}
    for _ in range(ctx.repeat):
        with embedded_home() as env:
            found["first"].append(_probe(env))
            found["reuse"].append(min(_probe(env) for _ in range(3)))
            calls = [run_timed([*cli, "run", "list", "--json"], env=env)[0] * 1000
                     for _ in range(4)]
            found["cli"].append(sorted(calls[1:])[1])  # the first fills the bytecode cache
            run_timed([*cli, "db", "stop", "--json"], env=env)
            found["restart"].append(_probe(env))
    return found


def figure_startup(ctx: Context) -> dict[str, Any]:
    from .figures import row

    runs = 10 if ctx.quick else 20
    commands = {name: argv for name, argv in cli_startup.commands().items() if name in STARTUP}
    samples = cli_startup.measure(commands, runs, warmups=2)
    heavy = sorted(m for m in cli_startup.HEAVY
                   if m in cli_startup.imported_modules(commands["striatum --help"]))
    ctx.say("  startup: the embedded server, first start / reuse / start after stop ...")
    starts = embedded_starts(ctx)
    keys = {"python -c 'import click'": "click", "striatum --help": "help",
            "striatum workflow validate": "validate"}
    rows = [row(f"{name} (median of {runs})", "ms", [s * 1000 for s in samples[name]],
                higher_is_better=False, key=keys[name],
                **({"who": "reference"} if keys[name] == "click" else {}))
            for name in STARTUP]
    rows.append(row(f"heavy modules `striatum --help` imports ({', '.join(heavy) or 'none'})",
                    "modules", [float(len(heavy))], higher_is_better=False, key="heavy",
                    detail=True))
    rows += [
        row("embedded PostgreSQL, first start in a fresh home (initdb, start, roles, "
            "migrations)", "ms", starts["first"], higher_is_better=False, key="embedded first"),
        row("embedded PostgreSQL, reuse of the running server", "ms", starts["reuse"],
            higher_is_better=False, key="embedded reuse"),
        row("embedded PostgreSQL, start again after `striatum db stop`", "ms",
            starts["restart"], higher_is_better=False, key="embedded restart"),
        row("  `striatum run list --json` on the running embedded server (whole process)",
            "ms", starts["cli"], higher_is_better=False, key="embedded cli", detail=True)]
    return {"rows": rows, "raw": {"samples_s": samples, "heavy": heavy, "embedded_ms": starts},
            "notes": [
        f"start-up: bench/cli_startup.py's `measure` ({runs} rounds after 2 warm-ups, the "
        "commands taking turns, this checkout on PYTHONPATH, from bytecode); the target is "
        "the ratio of `striatum --help` to `python -c \"import click\"` measured in the same "
        "rounds; heavy modules from `python -X importtime`.",
        "embedded: in a fresh home (no DSN) per repetition, a new interpreter that has "
        "imported psycopg and striatum.runtime.embedded times `ensure_running()`: the first "
        "start (initdb, start, passwords, roles, migrations), then its reuse while the "
        "server runs (the DSN cache and one login; best of 3), then after `striatum db "
        "stop` the start of the existing data folder; beside them a whole `striatum run "
        "list --json` on the running server (median of 3 after one untimed call)."]}
