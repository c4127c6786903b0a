"""Drive a real run of examples/code-change through the CLI, playing the agents.

This is what an AI operator does in its loop: claim a job, read the prompt,
do the work, publish what it produced, then complete it (a task) or record a
verdict (a review). Here the "work" is writing a short file, and the reviewer
sends the first draft back once, so the run shows a bounded revision.

    python examples/operator_demo.py [--dsn DSN] [--repo DIR]

With no --dsn it uses striatum's embedded PostgreSQL (started on first use,
kept running; `striatum db stop` stops it).
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


def striatum(*args: str, repo: Path, dsn: str | None) -> dict:
    command = [STRIATUM, "--repo", str(repo), *(["--dsn", dsn] if dsn else []), *args, "--json"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"striatum {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get("STRIATUM_DSN"))
    parser.add_argument("--repo", type=Path, default=None,
                        help="target repository (default: a new temporary folder, removed "
                             "at the end unless --keep)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary repository, to look at its artifacts")
    options = parser.parse_args()
    repo = options.repo or Path(tempfile.mkdtemp(prefix="striatum-demo-"))
    try:
        ok = drive(repo, options.dsn)
    finally:
        farewell(repo, created=options.repo is None, keep=options.keep, dsn=options.dsn)
    if not ok:
        sys.exit(1)


def farewell(repo: Path, *, created: bool, keep: bool, dsn: str | None) -> None:
    """Remove the temporary repository (unless kept), and say where the database is."""
    if created and not keep:
        shutil.rmtree(repo, ignore_errors=True)
        print(f"removed the temporary repository {repo} (--keep keeps it)")
    if not dsn:
        print("the embedded PostgreSQL keeps running for the next command "
              "(`striatum db status` says where); `striatum db stop` stops it")


def drive(repo: Path, dsn: str | None) -> bool:
    """The operator's loop over one run of code-change; whether it completed and doctor
    found nothing."""
    shutil.copytree(HERE / "code-change", repo / "flow", dirs_exist_ok=True)
    run = lambda *a: striatum(*a, repo=repo, dsn=dsn)  # noqa: E731

    prepared = run("run", "prepare", "--workflow", str(repo / "flow" / "workflow.json"),
                   "--start")
    run_id = prepared["run_id"]
    print(f"run {run_id} of code-change, worst case {prepared['worst_case']} executions")
    verdicts = {"check": ["needs_revision", "accept"]}
    while True:
        claimed = run("job", "claim", "--run", run_id, "--owner", "demo-operator")
        if not claimed["claimed"]:
            break
        job, lease = claimed["job"], claimed["lease"]
        held = ["--run", run_id, "--job", job, "--lease", lease]
        out = Path(claimed["artifact_dir"])
        out.mkdir(parents=True, exist_ok=True)
        for name in claimed["produces"]:
            (out / name).write_text(f"{job}, pass {claimed['iteration'] + 1}\n")
            run("job", "publish", *held, "--artifact", str(out / name), "--as", name)
        if claimed["kind"] == "review":
            verdict = verdicts[job].pop(0)
            reason = "add a test for the empty config" if verdict != "accept" else "looks right"
            run("job", "verdict", verdict, *held, "--reason", reason)
            print(f"  {job}: {verdict} ({reason})")
        else:
            run("job", "complete", *held)
            print(f"  {job}: done (pass {claimed['iteration'] + 1})")
    status = run("run", "status", run_id)
    print(f"run {run_id}: {status['status']}, {status['executions']} job executions "
          f"(at most {status['worst_case']})")
    doctor = run("doctor")
    print(f"doctor: {'all checks passed' if doctor['ok'] else 'PROBLEMS'} "
          f"({doctor['events']} events)")
    print(f"artifacts and manifest: {repo / status['artifact_root'] / run_id}")
    return bool(status["status"] == "completed" and doctor["ok"])


if __name__ == "__main__":
    main()
