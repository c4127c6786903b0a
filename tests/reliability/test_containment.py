"""Scenarios 11 and 12: what a lane process can and cannot do to its worker.

11. Containment: a lane that leaves a SIGTERM-proof grandchild holding its stdout, one
    that escapes the session with setsid, one that prints without end, and one that never
    exits. Every time: the supervisor returns within the timeout plus 5 s, nothing the
    lane started survives, and a flood is cut at the cap with a marker.
12. Environment: secrets in the worker's environment (20 canaries, some under innocent
    names) never reach the lane, nor its children, unless the lane declares them.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.runtime import runs
from striatum.runtime.lanes import ALLOWED_ENV, lane_environment, run_lane
from striatum.runtime.store import Store
from striatum.runtime.worker import Worker, WorkerOptions

from .conftest import (
    FAKE_AGENT,
    Record,
    describe,
    fake,
    kill_lane_processes,
    lane_processes,
    write_workflow,
)

# run_lane may leave the lane's stdout pipe to the garbage collector when a holder it
# could not kill keeps it open (tests/integration/test_workers.py says the same).
UNCLOSED_PIPE = pytest.mark.filterwarnings(
    "ignore:unclosed file <_io.BufferedReader:ResourceWarning")

TIMEOUT = 1.0  # for the lanes that never end
CAP = 256 * 1024
SLACK = 5.0  # the bound: timeout + 5 s
MODES = {  # argv, timeout, whether it ends by timing out
    "grandchild": (fake("grandchild"), TIMEOUT, True),  # a SIGTERM-proof grandchild
    "escape": (["sh", "-c", '"$0" "$1" escape && exec "$0" "$1" hang', sys.executable,
                str(FAKE_AGENT)], TIMEOUT, True),  # a grandchild leaves with setsid
    "flood": (fake("flood", "--mb", "8"), 30.0, False),  # prints 8 MB, then ends
    "hang": (fake("hang"), TIMEOUT, True),  # never exits
}


@dataclass
class Contained:
    mode: str
    seconds: float
    survivors: str
    log_ok: bool
    detail: str


def contain(mode: str, folder: Path) -> Contained:
    token = f"1-{secrets.token_hex(16)}"
    out = folder / token
    out.mkdir(parents=True)
    env = lane_environment({}, {"STRIATUM_LEASE": token, "STRIATUM_ARTIFACT_DIR": str(out),
                                "STRIATUM_JOB": "job", "STRIATUM_RUN": "containment",
                                "STRIATUM_PRODUCES": "out.md"})
    log = out / "lane.log"
    argv, timeout, times_out = MODES[mode]
    started = time.monotonic()
    try:
        result = run_lane(argv, cwd=out, env=env, stdin=None, timeout=timeout,
                          log_path=log, log_cap=CAP, tag=token)
        seconds = time.monotonic() - started
        survivors = lane_processes(token=token)
        data = log.read_bytes()
        if mode == "flood":
            log_ok = (len(data) <= CAP + 200 and b"[striatum: output truncated:" in data[-200:]
                      and result.truncated)
        else:
            log_ok = len(data) <= CAP + 200
        detail = "" if result.timed_out == times_out else f"timed_out={result.timed_out}"
        if seconds > timeout + SLACK:
            detail += f" took {seconds:.1f}s"
        return Contained(mode, seconds, describe(survivors), log_ok, detail)
    finally:
        kill_lane_processes(token=token)


def zombie_children() -> set[int]:
    """This process's children that exited and were never waited for."""
    found = set()
    for child in psutil.Process().children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def run_containment(tmp_path: Path, per_mode: int, figure: Record, parallel: int) -> None:
    started = time.monotonic()
    jobs = [mode for _ in range(per_mode) for mode in MODES]
    zombies_before = zombie_children()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        results = list(pool.map(lambda m: contain(m, tmp_path / "lanes"), jobs))
    zombies = len(zombie_children() - zombies_before)
    slow = [(r.mode, round(r.seconds, 1)) for r in results if "took" in r.detail]
    leaked = [(r.mode, r.survivors) for r in results if r.survivors != "none"]
    uncapped = [r.mode for r in results if not r.log_ok]
    odd = [(r.mode, r.detail) for r in results if r.detail]
    worst = max(r.seconds for r in results if MODES[r.mode][2])
    figure("11 subprocess containment", len(results),
           f"within timeout+5s {len(results) - len(slow)} / {len(results)} (worst "
           f"{worst:.1f}s for a {TIMEOUT:.0f}s timeout); surviving descendants {len(leaked)}; "
           f"floods capped {per_mode - sum(1 for m in uncapped if m == 'flood')} / {per_mode}; "
           f"(zombies left in the supervisor: {zombies})", time.monotonic() - started)
    assert not slow, f"lanes that outlived timeout + {SLACK:.0f}s: {slow}"
    assert not leaked, f"processes a lane left alive: {leaked}"
    assert not uncapped, f"logs not capped with a marker: {uncapped}"
    assert not odd, odd


@UNCLOSED_PIPE
def test_every_kind_of_unruly_lane_is_contained(tmp_path: Path, figure: Record) -> None:
    run_containment(tmp_path, 2, figure, parallel=8)


@UNCLOSED_PIPE
@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_every_kind_of_unruly_lane_is_contained(tmp_path: Path, figure: Record) -> None:
    run_containment(tmp_path, 100, figure, parallel=4)


@UNCLOSED_PIPE
def test_the_supervisor_reaps_the_processes_it_adopts(tmp_path: Path, figure: Record) -> None:
    """The worker is a child subreaper: what a lane leaves behind is re-parented to it. Once
    killed, those processes must be waited for, or a long-lived worker fills the process
    table with zombies, a few per timed-out lane."""
    before = zombie_children()
    for mode in MODES:
        contain(mode, tmp_path / "reap")
    time.sleep(0.5)
    left = sorted(zombie_children() - before)
    figure("11 subprocess containment (reaping)", len(MODES),
           f"zombie processes left in the supervisor after {len(MODES)} lanes: {len(left)}", 0.0)
    assert not left, (
        f"{len(left)} zombie children of the supervisor after one lane of each kind "
        f"({', '.join(MODES)}): pids {left}")


# -- 12. the environment -------------------------------------------------------------------------

CANARIES = [
    # the obvious ones
    "PGPASSWORD", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN", "NPM_TOKEN", "SSH_AUTH_SOCK", "SECRET",
    # innocent names, and names that share a prefix with what is allowed
    "DATABASE_URL", "FOO", "BAR", "PATHEXT", "HOMEPAGE", "LANGUAGE", "TERMINFO", "LC_ALL",
    "LD_PRELOAD", "PYTHONPATH", "STRIATUM_SECRET", "X",
]
DECLARED = {"DATABASE_URL": "${DATABASE_URL}", "AGENT_KEY": "${OPENAI_API_KEY}"}
# The lane dumps its environment, and has a child dump its own (a grandchild of the worker).
DUMP = ("import json, os, subprocess, sys; d = os.environ['STRIATUM_ARTIFACT_DIR']; "
        "json.dump(dict(os.environ), open(d + '/env.json', 'w')); "
        "subprocess.run([sys.executable, '-c', 'import json, os; json.dump(dict(os.environ), "
        "open(os.environ[\"STRIATUM_ARTIFACT_DIR\"] + \"/child.json\", \"w\"))'], check=True)")


def test_twenty_canaries_reach_the_lane_only_when_declared(
        dsn: str, store: Store, repo: Path, tmp_path: Path, figure: Record,
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(CANARIES) == 20
    canaries = {name: f"canary-{secrets.token_hex(8)}" for name in CANARIES}
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    workflow = write_workflow(tmp_path / "flow", {
        "name": "env", "lanes": {"agent": {"command": [sys.executable, "-c", DUMP],
                                           "timeout": 60, "env": DECLARED}},
        "jobs": [{"id": "dump", "lane": "agent", "prompt": {"text": "dump"},
                  "produces": ["env.json", "child.json"]}]})
    run_id = runs.prepare(store, workflow, str(repo), overrides={})
    runs.start(store, run_id)
    started = time.monotonic()
    try:
        outcomes = Worker(dsn, WorkerOptions(run=run_id, once=True, poll_seconds=0.2)).run()
    finally:
        kill_lane_processes(run=run_id)
    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    out = repo / "striatum" / "runs" / run_id / "dump" / "i0"
    texts = [(out / "env.json").read_text(encoding="utf-8"),
             (out / "child.json").read_text(encoding="utf-8")]
    allowed = {canaries["DATABASE_URL"], canaries["OPENAI_API_KEY"]}
    leaked = sorted({name for text in texts for name, value in canaries.items()
                     if value in text and value not in allowed})
    for text in texts:
        seen = json.loads(text)
        assert seen.get("DATABASE_URL") == canaries["DATABASE_URL"], "a declared name is lost"
        assert seen.get("AGENT_KEY") == canaries["OPENAI_API_KEY"]
        assert "OPENAI_API_KEY" not in seen, "only the declared name reaches the lane"
    figure("12 environment scrubbing", len(canaries),
           f"undeclared canaries that reached the lane or its child {len(leaked)} / "
           f"{len(canaries) - 2} (2 declared ones passed)", time.monotonic() - started)
    assert not leaked, f"reached the lane without being declared: {leaked}"


NAMES = st.text(alphabet=string.ascii_uppercase + string.digits + "_", min_size=1,
                max_size=12).filter(lambda n: not n[0].isdigit())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worker=st.dictionaries(NAMES, st.text(min_size=1, max_size=20), max_size=30),
       declared=st.dictionaries(NAMES, NAMES, max_size=5))
def test_the_lane_environment_is_an_allowlist(worker: dict[str, str],
                                              declared: dict[str, str]) -> None:
    """Whatever the worker's environment, the lane gets the allowlist, the lane's own
    declarations and the job's STRIATUM_* variables: nothing else."""
    lane = {name: "${" + source + "}" for name, source in declared.items()}
    job = {"STRIATUM_RUN": "r", "STRIATUM_JOB": "j"}
    env = lane_environment(lane, job, worker)
    expected: dict[str, Any] = {n: worker[n] for n in ALLOWED_ENV if n in worker}
    for name, source in declared.items():
        if source in worker:
            expected[name] = worker[source]
        else:
            expected.pop(name, None)  # passed through by name, and the worker has none
    expected.update(job)
    assert env == expected


def test_the_real_environment_of_this_process_does_not_leak_into_a_lane(
        tmp_path: Path) -> None:
    """run_lane with the allowlist: the lane process sees nothing of this test process's
    environment beyond PATH, HOME, LANG and TERM."""
    token = f"1-{secrets.token_hex(16)}"
    env = lane_environment({}, {"STRIATUM_LEASE": token, "STRIATUM_ARTIFACT_DIR": str(tmp_path)})
    script = ("import json, os; json.dump(dict(os.environ), "
              "open(os.environ['STRIATUM_ARTIFACT_DIR'] + '/env.json', 'w'))")
    result = run_lane([sys.executable, "-c", script], cwd=tmp_path, env=env, stdin=None,
                      timeout=30, log_path=tmp_path / "lane.log", tag=token)
    assert result.ok, (tmp_path / "lane.log").read_text()
    seen = json.loads((tmp_path / "env.json").read_text())
    extra = sorted(set(seen) - set(ALLOWED_ENV) - {"STRIATUM_LEASE", "STRIATUM_ARTIFACT_DIR",
                                                   "LC_CTYPE"})
    assert not extra, f"the lane saw {extra}"
    assert {k: v for k, v in seen.items() if k in ALLOWED_ENV} == {
        k: os.environ[k] for k in ALLOWED_ENV if k in os.environ}
