"""Run examples/code-change for real: workers run fake agents; one revision; doctor.

    python examples/demo.py [--example NAME] [--dsn DSN] [--repo DIR]

Each lane is replaced, for this run only, by examples/agents/fake_agent.py (a
stand-in that writes the artifacts a job produces and, as a reviewer, sends
the first draft back once). `striatum run start --wait` then works the run to
its end: claims, leases with heartbeats, lane processes, verdicts, manifest.
With no --dsn it uses striatum's embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
STRIATUM = str(Path(sys.executable).parent / "striatum")
FAKE = [sys.executable, str(HERE / "agents" / "fake_agent.py"), "work", "--revise-once"]

sys.path.insert(0, str(HERE))  # examples/ itself, when imported rather than run
from operator_demo import farewell  # noqa: E402 - the one way both demos end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="code-change")
    parser.add_argument("--dsn", default=os.environ.get("STRIATUM_DSN"))
    parser.add_argument("--repo", type=Path, default=None,
                        help="target repository (default: a new temporary git repository, "
                             "removed at the end unless --keep)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary repository, to look at its artifacts")
    options = parser.parse_args()
    repo = options.repo or Path(tempfile.mkdtemp(prefix="striatum-demo-"))
    try:
        code = demo(repo, options.example, options.dsn, created=options.repo is None)
    finally:
        farewell(repo, created=options.repo is None, keep=options.keep, dsn=options.dsn)
    sys.exit(code)


def demo(repo: Path, example: str, dsn: str | None, *, created: bool) -> int:
    """Prepare a run of ``example`` on fake agents and work it to its end; the exit code."""
    if created:
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    flow = repo / "flow"
    shutil.copytree(HERE / example, flow, dirs_exist_ok=True)
    lanes = json.loads((flow / "workflow.json").read_text())["lanes"]
    base = [STRIATUM, "--repo", str(repo), *(["--dsn", dsn] if dsn else [])]
    overrides = [f"--lane={name}={json.dumps(FAKE)}" for name in lanes]
    prepared = subprocess.run([*base, "run", "prepare", "--workflow", str(flow / "workflow.json"),
                               *overrides], capture_output=True, text=True)
    if prepared.returncode != 0:
        print(prepared.stderr, file=sys.stderr, end="")
        return prepared.returncode
    run_id = prepared.stdout.strip()
    print(f"prepared run {run_id} of {example} (lanes replaced by fake agents)")
    started = subprocess.run([*base, "run", "start", run_id, "--wait"])
    doctor = subprocess.run([*base, "doctor"])
    return started.returncode or doctor.returncode


if __name__ == "__main__":
    main()
