#!/usr/bin/env python3
"""A stand-in for a terminal coding agent, for tests and the demo.

It behaves like an agent run by a striatum lane: it reads its job from the
STRIATUM_* environment, writes the artifacts the job produces into its
artifact directory, and (for a review) leaves verdict.json there. Behaviours:

    fake_agent.py work                 write every artifact, exit 0
    fake_agent.py review [--revise-once]   as work, then accept (or, on the first
                                       pass of a review that can revise, needs_revision)
    fake_agent.py reject               a review that rejects
    fake_agent.py review --findings A,B    as review, but every pass of a review that can
                                       revise asks for a revision naming findings A and B
                                       (the same ids each round: a loop that never converges)
    fake_agent.py fail                 exit 3 without writing anything
    fake_agent.py crash-once           fail on the first attempt, then work
    fake_agent.py hang                 never finish (for timeouts)
    fake_agent.py grandchild           start a grandchild that ignores SIGTERM, then hang
    fake_agent.py escape               start a grandchild in its own session (setsid), then exit
    fake_agent.py flood [--mb N]       print N MB (default 100) to stdout, then work
    fake_agent.py slow [--seconds S]   sleep S seconds (default 1), then work
    fake_agent.py stray                work, and also change a file outside the job's writes
    fake_agent.py reject-slowly [--seconds S]   sleep S seconds (default 1), then reject
    ... --cli                          (with work, review, reject) publish each artifact and end
                                       the job itself, with `striatum job publish`, then
                                       `job verdict` or `job complete` (in a lane: through its
                                       worker's lane socket), instead of leaving them to the
                                       worker
    fake_agent.py hostile              an agent turned against the record (hostile.py): on its
                                       first attempt it keeps its lease token and fails; on a
                                       later one it tries every attack it can reach, writes
                                       hostile.json (each attempt and whether it succeeded)
                                       to its artifact directory and stdout, then works
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def artifact_dir() -> Path:
    path = Path(os.environ["STRIATUM_ARTIFACT_DIR"])
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_artifacts() -> None:
    out = artifact_dir()
    prompt = Path(os.environ.get("STRIATUM_PROMPT_FILE", "/dev/null"))
    first = prompt.read_text(encoding="utf-8").splitlines()[:1] if prompt.is_file() else []
    for name in filter(None, os.environ.get("STRIATUM_PRODUCES", "").splitlines()):
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# {name}\n\nWritten by the fake agent for job "
                          f"{os.environ['STRIATUM_JOB']}, pass "
                          f"{int(os.environ.get('STRIATUM_ITERATION', '0')) + 1}.\n"
                          f"Prompt began: {first[0] if first else '(empty)'}\n",
                          encoding="utf-8")


def verdict(outcome: str, reason: str, findings: list[str] | None = None) -> None:
    if "--cli" in sys.argv:
        CLI_VERDICT.append((outcome, reason, findings or []))
        return
    document: dict[str, object] = {"verdict": outcome, "reason": reason}
    if findings is not None:
        document["findings"] = [{"id": f, "title": f"finding {f}"} for f in findings]
    (artifact_dir() / "verdict.json").write_text(json.dumps(document), encoding="utf-8")


CLI_VERDICT: list[tuple[str, str, list[str]]] = []


def striatum(*args: str) -> None:
    beside = Path(sys.executable).parent / "striatum"
    command = str(beside) if beside.exists() else (shutil.which("striatum") or "striatum")
    done = subprocess.run([command, *args], capture_output=True, text=True, timeout=120)
    print(f"$ striatum {' '.join(args[:3])} ...: exit {done.returncode}\n"
          f"{done.stdout}{done.stderr}", end="")
    if done.returncode != 0:
        sys.exit(done.returncode)


def end_through_the_cli() -> int:
    """Publish what the job produces, then end it: what an agent that reports through the
    CLI does."""
    out = artifact_dir()
    for name in filter(None, os.environ.get("STRIATUM_PRODUCES", "").splitlines()):
        striatum("job", "publish", "--artifact", str(out / name), "--as", name)
    if CLI_VERDICT:
        outcome, reason, findings = CLI_VERDICT[0]
        named = [arg for finding in findings for arg in ("--finding", finding)]
        striatum("job", "verdict", outcome, "--reason", reason, *named)
    else:
        striatum("job", "complete")
    return 0


def option(name: str, default: float) -> float:
    if name in sys.argv:
        return float(sys.argv[sys.argv.index(name) + 1])
    return default


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "work"
    first_pass = os.environ.get("STRIATUM_ITERATION", "0") == "0"
    if mode == "fail":
        print("fake agent: failing on purpose", file=sys.stderr)
        return 3
    if mode == "crash-once" and os.environ.get("STRIATUM_ATTEMPT", "0") == "0":
        print("fake agent: crashing on the first attempt", file=sys.stderr)
        return 1
    if mode == "hang":
        time.sleep(10**6)
    if mode == "grandchild":
        subprocess.Popen([sys.executable, "-c", "import signal, time; "
                          "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(10**6)"])
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(10**6)
    if mode == "escape":
        subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); "
                          "time.sleep(10**6)"], stdout=subprocess.DEVNULL)
    if mode == "flood":
        line = "x" * 1023 + "\n"
        for _ in range(int(option("--mb", 100) * 1024)):
            sys.stdout.write(line)
    if mode in ("slow", "reject-slowly"):
        time.sleep(option("--seconds", 1))
    write_artifacts()
    if mode == "hostile":  # its report replaces the stand-in hostile.json
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import hostile

        return 0 if hostile.main() else 1
    if mode == "stray":
        Path("STRAY.txt").write_text("outside the job's writes\n", encoding="utf-8")
    if os.environ.get("STRIATUM_KIND") == "review" or mode in ("review", "reject",
                                                                "reject-slowly"):
        if mode in ("reject", "reject-slowly"):
            verdict("reject", "the fake reviewer rejects this")
        elif "--findings" in sys.argv and os.environ.get("STRIATUM_CAN_REVISE") == "1":
            named = sys.argv[sys.argv.index("--findings") + 1].split(",")
            verdict("needs_revision", f"still wrong: {', '.join(named)}", named)
        elif ("--revise-once" in sys.argv and first_pass
              and os.environ.get("STRIATUM_CAN_REVISE") == "1"):
            verdict("needs_revision", "the fake reviewer asks for one more pass")
        else:
            verdict("accept", "the fake reviewer accepts")
    if "--cli" in sys.argv:
        return end_through_the_cli()
    return 0


if __name__ == "__main__":
    sys.exit(main())
