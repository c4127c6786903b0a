"""Workers on a real PostgreSQL with real subprocesses: the examples end to end on fake
agents, several workers sharing one run, workers killed or paused mid-job, and the lane
supervision (timeouts, escaped grandchildren, capped logs, environment allowlist,
``writes`` and worktrees, verdicts and retries).

The CLI runs as installed (``pip install /work/main``) in subprocesses; the lane
supervision tests run ``striatum.runtime.worker.Worker`` in this process.
"""

from __future__ import annotations

import gc
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import psutil
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from striatum.runtime import leases, runs
from striatum.runtime.lanes import lane_environment, run_lane
from striatum.runtime.store import Store

from .worker_helpers import (
    EXAMPLES,
    FAKE_AGENT,
    alive,
    artifact_file,
    artifact_rows,
    cli,
    cli_env,
    cli_json,
    cmdline,
    copy_example,
    describe,
    doctor_ok,
    events_of,
    fake,
    git,
    git_init,
    job_row,
    kill_lane_processes,
    lane_processes,
    lease_rows,
    one_task,
    rows,
    run_status,
    spawned,
    start_run,
    wait_for,
    wait_run_ended,
    work,
    worker_thread,
    write_workflow,
)

pytestmark = pytest.mark.timeout(120)



def completes(store: Store, run_id: str) -> Counter[str]:
    """job -> how many job.complete events it has."""
    return Counter(e["job"] for e in events_of(store, run_id, kind="job.complete"))


def leased_at_fence(store: Store, run_id: str, job_id: str, fence: int) -> dict[str, Any] | None:
    row = job_row(store, run_id, job_id)
    return row if row["status"] == "leased" and row["fence"] == fence else None


# -- 1. every example, end to end, through `run start --wait` --------------------------------


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_to_completion_on_fake_agents(name: str, dsn: str, repo: Path,
                                                   tmp_path: Path) -> None:
    git_init(repo)
    workflow = copy_example(name, repo)
    lanes = json.loads(workflow.read_text(encoding="utf-8"))["lanes"]
    agent = json.dumps(fake("work", "--revise-once"))
    prepared = cli(dsn, repo, "run", "prepare", "--workflow", str(workflow),
                   *[f"--lane={lane}={agent}" for lane in lanes])
    assert prepared.returncode == 0, prepared.stderr
    run_id = prepared.stdout.strip()

    with spawned(tmp_path / "procs") as procs:
        waiting = procs.striatum("run-start", dsn, repo, "run", "start", run_id, "--wait")
        if name == "human-checkpoint":
            def awaiting() -> bool:
                doc = cli_json(dsn, repo, "run", "status", run_id)
                assert doc["status"] in ("prepared", "running"), doc
                return any(j["job"] == "decide" and j["status"] == "awaiting_decision"
                           for j in doc["jobs"])

            wait_for(awaiting, 60, lambda: f"checkpoint decide to await a decision "
                                           f"(run start says: {waiting.err()})", interval=0.2)
            assert waiting.popen.poll() is None, "run start --wait left before the decision"
            decided = cli(dsn, repo, "checkpoint", "decide", run_id, "decide", "continue")
            assert decided.returncode == 0, decided.stderr
        code = waiting.wait(90)
        assert code == 0, f"run start --wait exited {code}:\n{waiting.out()}\n{waiting.err()}"

    doc = cli_json(dsn, repo, "run", "status", run_id)
    assert doc["status"] == "completed", doc
    assert 0 < doc["executions"] <= doc["worst_case"], doc
    assert {j["status"] for j in doc["jobs"]} <= {"succeeded", "skipped"}, doc["jobs"]
    assert all(j["attempt"] == 0 for j in doc["jobs"]), "a fake agent's attempt failed"
    if any("revise" in job for job in json.loads(workflow.read_text())["jobs"]):
        assert any(j["iteration"] > 0 for j in doc["jobs"]), "--revise-once sent nothing back"
    if name == "human-checkpoint":
        jobs = {j["job"]: j for j in doc["jobs"]}
        assert jobs["decide"]["chosen"] == "continue"
        assert jobs["implement"]["status"] == "succeeded"
    manifest = repo / "striatum" / "runs" / run_id / "manifest.json"
    assert manifest.is_file(), "the ended run wrote no manifest"
    doctor_ok(dsn, repo)


# -- 2. four workers share multi-review ------------------------------------------------------


def test_four_workers_share_multi_review(dsn: str, store: Store, repo: Path,
                                         tmp_path: Path) -> None:
    git_init(repo)
    workflow = copy_example("multi-review", repo)
    slow = {"command": fake("slow", "--seconds", "1"), "timeout": 60}
    lanes = {"author": {"command": fake("work"), "timeout": 60},
             "claude": slow, "gemini": slow, "operator": slow}
    run_id = runs.prepare(store, str(workflow), str(repo), overrides={}, lanes=lanes)
    reviews = ["review-correctness", "review-operability", "review-security"]

    with spawned(tmp_path / "procs") as procs:
        workers = [procs.striatum(f"worker-{i}", dsn, repo, "worker", "--run", run_id,
                                  "--concurrency", "1") for i in range(4)]
        names = []
        for proc in workers:
            found = wait_for(lambda p=proc: re.search(r"worker (\S+) waiting", p.err()), 30,
                             lambda p=proc: f"{p.name} to start: {p.err()}")
            names.append(found.group(1))
        runs.start(store, run_id)
        status = wait_run_ended(store, run_id, 60)
        assert status == "completed", runs.status(store, run_id).to_json()

        review_leases = [r for r in lease_rows(store, run_id) if r["job_id"] in reviews]
        assert sorted(r["job_id"] for r in review_leases) == reviews, review_leases
        assert all(r["outcome"] == "complete" for r in review_leases), review_leases
        owners = {r["owner"] for r in review_leases}
        assert len(owners) >= 2, f"one worker held all three reviews: {owners}"
        assert owners <= set(names), (owners, names)
        latest_start = max(r["acquired_at"] for r in review_leases)
        earliest_end = min(r["ended_at"] for r in review_leases)
        assert latest_start < earliest_end, (
            "the three reviews did not overlap in time: "
            + ", ".join(f"{r['job_id']} {r['acquired_at']:%T.%f}-{r['ended_at']:%T.%f}"
                        for r in review_leases))

        claims = [e for e in events_of(store, run_id, kind="job.claim") if e["job"] in reviews]
        assert {e["payload"]["data"]["owner"] for e in claims} == owners
        view = runs.status(store, run_id)
        assert completes(store, run_id) == Counter({j.job_id: 1 for j in view.jobs}), (
            "every job must complete exactly once")
        for review in reviews:
            accepted = events_of(store, run_id, review, "job.complete")[0]["payload"]["data"]
            assert accepted["verdict"] == "accept", accepted
        assert view.executions <= view.run.worst_case

        for proc in workers:
            proc.popen.send_signal(signal.SIGTERM)
        for proc in workers:
            code = proc.wait(20)
            assert code == 0, f"{proc.name} exited {code} on SIGTERM:\n{proc.err()}"
    doctor_ok(dsn, repo)


# -- 3. code-change: exactly one revision ----------------------------------------------------


def test_code_change_goes_through_exactly_one_revision(dsn: str, store: Store,
                                                       repo: Path) -> None:
    git_init(repo)
    workflow = copy_example("code-change", repo)
    agent = {"command": fake("work", "--revise-once"), "timeout": 60}
    run_id = start_run(store, str(workflow), repo, {"coder": agent, "reviewer": agent})

    outcomes = work(dsn, run_id, until_run_ends=True, concurrency=2)

    view = runs.status(store, run_id)
    assert view.run.status == "completed", view.to_json()
    jobs = {j.job_id: j for j in view.jobs}
    assert (jobs["draft"].iteration, jobs["check"].iteration, jobs["apply"].iteration) == (1, 1, 0)
    assert jobs["check"].verdict == "accept"
    verdicts = rows(store, "SELECT iteration, verdict FROM striatum.verdicts "
                           "WHERE run_id = %s AND job_id = 'check' ORDER BY iteration", run_id)
    assert [(v["iteration"], v["verdict"]) for v in verdicts] == [
        (0, "needs_revision"), (1, "accept")]
    assert [(o.job, o.status) for o in outcomes] == [
        ("draft", "succeeded"), ("check", "needs_revision"), ("draft", "succeeded"),
        ("check", "accept"), ("apply", "succeeded")]
    assert view.executions == 5 <= view.run.worst_case
    revised = _prompt_of(repo, run_id, "draft", 1).read_text(encoding="utf-8")
    assert "the fake reviewer asks for one more pass" in revised, revised


def _prompt_of(repo: Path, run_id: str, job_id: str, iteration: int) -> Path:
    return repo / ".striatum" / "runs" / run_id / job_id / f"i{iteration}a0.md"


# -- 4. a worker SIGKILLed mid-job -----------------------------------------------------------

# The lane is pinned per run, so it looks at its attempt: the first one outlives its
# lease by far (the worker is killed long before it ends), the retry is quick.
ATTEMPT_DEPENDENT = (
    "import os, sys; first = os.environ['STRIATUM_ATTEMPT'] == '0'; "
    "os.execv(sys.executable, [sys.executable, sys.argv[1], 'slow', '--seconds', "
    "'60' if first else '1'])")


def test_sigkilled_worker_lease_expires_and_another_worker_completes_once(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    lane = {"command": [sys.executable, "-c", ATTEMPT_DEPENDENT, str(FAKE_AGENT)],
            "timeout": 120}
    run_id = start_run(store, one_task(tmp_path / "flow", lane), repo)
    first_token = None
    try:
        with spawned(tmp_path / "procs") as procs:
            doomed = procs.striatum("worker-a", dsn, repo, "worker", "--run", run_id,
                                    "--lease-seconds", "5")
            first = wait_for(lambda: leased_at_fence(store, run_id, "write", 1), 30,
                             lambda: f"worker A to claim the job: {doomed.err()}")
            first_token = first["lease_token"]
            wait_for(lambda: lane_processes(token=first_token), 20, "worker A's lane to start")
            doomed.signal_group(signal.SIGKILL)
            assert doomed.wait(10) == -signal.SIGKILL

            rescuer = procs.striatum("worker-b", dsn, repo, "worker", "--run", run_id,
                                     "--lease-seconds", "5", "--once")
            code = rescuer.wait(40)
            assert code == 0, f"worker B exited {code}:\n{rescuer.err()}"

        job = job_row(store, run_id, "write")
        assert run_status(store, run_id) == "completed"
        assert (job["status"], job["fence"], job["attempt"]) == ("succeeded", 2, 1), job
        assert completes(store, run_id) == Counter({"write": 1})
        expired = events_of(store, run_id, "write", "job.expire")
        assert len(expired) == 1, expired
        assert expired[0]["payload"]["state"]["attempt"] == 1
        assert first["lease_owner"] in expired[0]["payload"]["data"]["reason"]
        held = lease_rows(store, run_id, "write")
        assert [(r["fence"], r["attempt"], r["outcome"]) for r in held] == [
            (1, 0, "expire"), (2, 1, "complete")], held
        assert held[0]["owner"] == first["lease_owner"] != held[1]["owner"]
        assert {r["fence"] for r in artifact_rows(store, run_id)} == {2}
        doctor_ok(dsn, repo)

        survivors = lane_processes(token=first_token)
        assert not survivors, (
            "the lane of the SIGKILLed worker is still running after its lease expired and "
            f"the job was done again by another worker: {describe(survivors)}")
    finally:
        kill_lane_processes(token=first_token)


# A lane that leaves three kinds of process: a grandchild that ignores SIGTERM (in the
# lane's group), an escapee that left the session with setsid but keeps its lease token,
# and one that left the session with a cleared environment (no token); then it hangs.
UNRULY = ('"$0" "$1" escape; env -i setsid "$0" -c "import time; time.sleep(600)" "$2" & '
          'exec "$0" "$1" grandchild')


def test_sigkilled_worker_takes_every_process_of_its_lane_with_it_at_once(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """Not when the lease expires: at once, so a job reclaimed by another worker is never
    worked by two agents. The worker's lane guardian learns of its death from the kernel
    and kills the lane's group and everything it had adopted."""
    marker = f"striatum-bare-{secrets.token_hex(6)}"
    lane = {"command": ["sh", "-c", UNRULY, sys.executable, str(FAKE_AGENT), marker],
            "timeout": 600}
    run_id = start_run(store, one_task(tmp_path / "flow", lane), repo)

    def marked() -> list[psutil.Process]:
        return [p for p in psutil.process_iter() if marker in " ".join(cmdline(p)) and alive(p)]

    def everything() -> list[psutil.Process]:
        found = lane_processes(run=run_id)
        kinds = [" ".join(cmdline(p)) for p in found]
        ready = (any("SIG_IGN" in k for k in kinds) and any("os.setsid()" in k for k in kinds)
                 and marked())
        return found + marked() if ready else []

    try:
        with spawned(tmp_path / "procs") as procs:
            doomed = procs.striatum("worker", dsn, repo, "worker", "--run", run_id,
                                    "--lease-seconds", "60")
            seen = wait_for(everything, 30, lambda: f"the lane's processes: {doomed.err()}")
            doomed.signal_group(signal.SIGKILL)
            assert doomed.wait(10) == -signal.SIGKILL
            started = time.monotonic()
            wait_for(lambda: not [p for p in seen if alive(p)], 5,
                     lambda: f"the lane's processes to die: {describe(seen)}", interval=0.05)
            assert time.monotonic() - started < 5
        assert job_row(store, run_id, "write")["status"] == "leased", "the lease is not over"
    finally:
        kill_lane_processes(run=run_id)
        for process in marked():
            process.kill()


def test_a_worker_reuses_its_connections_and_heartbeats_on_one(
        dsn: str, store: Store, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Four jobs, each outliving its lease, two at a time: the worker opens its claim
    connection, one per lane thread and one for every heartbeat, whatever the number of
    jobs, and every lease is kept alive to its end.

    A job ends once its lease was extended three times (a heartbeat every third of the
    lease, so past the lease it was claimed with), not after a fixed sleep: how long a
    loaded machine takes to start a lane cannot end a job before its lease ran out."""
    opened: list[str] = []
    connect = Store.connect.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Store], dsn: str, **kwargs: Any) -> Store:
        opened.append(threading.current_thread().name)
        return connect(cls, dsn, **kwargs)  # type: ignore[no-any-return]

    gates = tmp_path / "gates"
    gates.mkdir()
    beats: Counter[str] = Counter()
    heartbeat = leases.heartbeat

    def beating(store: Store, run: str, job: str, token: str, seconds: int) -> Any:
        extended = heartbeat(store, run, job, token, seconds)
        beats[job] += 1
        if beats[job] == 3:
            (gates / job).touch()  # the lane may end now
        return extended

    waiting = ("import pathlib, sys, time\n"
               "gate, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
               "while not gate.exists(): time.sleep(0.02)\n"
               "(out / (gate.name + '.md')).write_text('done\\n')\n")
    workflow = write_workflow(tmp_path / "flow", {
        "name": "long-jobs",
        "lanes": {"agent": {"command": [sys.executable, "-c", waiting,
                                        f"{gates}/{{job}}", "{artifact_dir}"],
                            "timeout": 60}},
        "jobs": [{"id": f"t{i}", "lane": "agent", "prompt": {"text": "wait"},
                  "produces": [f"t{i}.md"], "max_attempts": 1} for i in range(4)]})
    run_id = start_run(store, workflow, repo)
    monkeypatch.setattr(Store, "connect", classmethod(counting))
    monkeypatch.setattr(leases, "heartbeat", beating)

    outcomes = work(dsn, run_id, timeout=90, until_run_ends=True, concurrency=2,
                    lease_seconds=3)
    monkeypatch.undo()

    assert sorted(o.status for o in outcomes) == ["succeeded"] * 4, outcomes
    assert all(beats[f"t{i}"] >= 3 for i in range(4)), beats
    assert not events_of(store, run_id, kind="job.expire"), "a lease lapsed mid-job"
    assert len(opened) <= 4, f"connections opened for 4 jobs: {opened}"
    assert sum(name.startswith("striatum-lane") for name in opened) <= 2, opened
    assert sum(name == "striatum-heartbeat" for name in opened) == 1, opened


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_lane_ending_wakes_its_worker_to_fill_the_slot(
        concurrency: int, dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """Every job is ready from the start, so no NOTIFY will come: a worker refills a slot
    when a lane ends, not at its next poll (30 s here)."""
    workflow = write_workflow(tmp_path / "flow", {
        "name": "short-jobs", "lanes": {"agent": {"command": ["true"]}},
        "jobs": [{"id": f"t{i}", "lane": "agent", "prompt": {"text": "go"}}
                 for i in range(6)]})
    run_id = start_run(store, workflow, repo)
    outcomes = work(dsn, run_id, timeout=25, until_run_ends=True, concurrency=concurrency,
                    poll_seconds=30)
    assert sorted(o.status for o in outcomes) == ["succeeded"] * 6, outcomes


# -- 5. a worker paused (SIGSTOP) past its lease ---------------------------------------------


def test_paused_worker_is_fenced_out_after_its_lease_moves_on(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    lane = {"command": fake("slow", "--seconds", "3"), "timeout": 60}
    run_id = start_run(store, one_task(tmp_path / "flow", lane), repo)
    stale_file = tmp_path / "stale.md"
    stale_file.write_text("from a paused worker\n", encoding="utf-8")
    first_token = None
    try:
        with spawned(tmp_path / "procs") as procs:
            paused = procs.striatum("worker-a", dsn, repo, "worker", "--run", run_id,
                                    "--lease-seconds", "5")
            first = wait_for(lambda: leased_at_fence(store, run_id, "write", 1), 30,
                             lambda: f"worker A to claim the job: {paused.err()}")
            first_token = first["lease_token"]
            lane_groups = {os.getpgid(p.pid) for p in wait_for(
                lambda: lane_processes(token=first_token), 20, "worker A's lane to start")}
            # The whole machine pauses: the worker and its lane (its own session).
            paused.signal_group(signal.SIGSTOP)
            for group in lane_groups:
                os.killpg(group, signal.SIGSTOP)

            rescuer = procs.striatum("worker-b", dsn, repo, "worker", "--run", run_id,
                                     "--lease-seconds", "5", "--once")
            wait_for(lambda: leased_at_fence(store, run_id, "write", 2), 30,
                     lambda: f"worker B to reclaim the job: {rescuer.err()}")
            # While B holds the job, every verb with A's token is refused.
            with pytest.raises(leases.LeaseLost):
                leases.heartbeat(store, run_id, "write", first_token, 5)
            with pytest.raises(leases.LeaseLost):
                leases.publish(store, run_id, "write", first_token, str(stale_file), "out.md")
            with pytest.raises(leases.LeaseLost):
                leases.complete(store, run_id, "write", first_token)
            with pytest.raises(leases.LeaseLost):
                leases.fail(store, run_id, "write", first_token, "stale")
            code = rescuer.wait(30)
            assert code == 0, f"worker B exited {code}:\n{rescuer.err()}"
            assert run_status(store, run_id) == "completed"

            for group in lane_groups:
                os.killpg(group, signal.SIGCONT)
            paused.signal_group(signal.SIGCONT)
            wait_for(lambda: re.search(r"write: (lease lost|done by the agent)", paused.err()),
                     20, lambda: f"worker A to give the job up: {paused.err()}")
            assert "succeeded" not in paused.err(), paused.err()
            paused.popen.send_signal(signal.SIGTERM)
            assert paused.wait(20) == 0, paused.err()

        with pytest.raises(leases.LeaseLost):
            leases.complete(store, run_id, "write", first_token)
        job = job_row(store, run_id, "write")
        assert (job["status"], job["fence"]) == ("succeeded", 2), job
        assert completes(store, run_id) == Counter({"write": 1})
        assert len(events_of(store, run_id, "write", "job.expire")) == 1
        published = artifact_rows(store, run_id)
        assert {r["fence"] for r in published} == {2}, published
        out = artifact_file(store, run_id, repo, "write", "out.md").read_text(encoding="utf-8")
        assert "from a paused worker" not in out
        held = lease_rows(store, run_id, "write")
        assert [(r["fence"], r["outcome"]) for r in held] == [(1, "expire"), (2, "complete")]
        assert not lane_processes(token=first_token), "worker A's lane outlived it"
        doctor_ok(dsn, repo)
    finally:
        kill_lane_processes(token=first_token)


# -- 6. timeouts kill the whole tree ---------------------------------------------------------


ESCAPE_THEN_HANG = ['"$0" "$1" escape && exec "$0" "$1" hang', sys.executable, str(FAKE_AGENT)]


GONE = "(gone)"


def lease_of(process: psutil.Process) -> str | None:
    """A lane process's lease token; GONE for one that exited since it was listed (the
    shell's first child, which starts the escapee and exits, can end between the two)."""
    try:
        return process.environ().get("STRIATUM_LEASE")
    except psutil.NoSuchProcess:
        return GONE


@pytest.mark.parametrize("command, grandchild", [
    (fake("grandchild"), "SIG_IGN"),  # the agent and its grandchild both ignore SIGTERM
    (["sh", "-c", *ESCAPE_THEN_HANG], "os.setsid()"),  # a grandchild leaves the session
], ids=["sigterm-proof-grandchild", "setsid-grandchild"])
def test_timeout_kills_the_lane_and_every_descendant(command: list[str], grandchild: str,
                                                     dsn: str, store: Store, repo: Path,
                                                     tmp_path: Path) -> None:
    timeout = 2
    workflow = one_task(tmp_path / "flow", {"command": command, "timeout": timeout},
                        max_attempts=1)
    run_id = start_run(store, workflow, repo)
    try:
        running = worker_thread(dsn, run_id, once=True)

        def started() -> list[psutil.Process]:
            found = lane_processes(run=run_id)
            return found if any(grandchild in " ".join(cmdline(p)) for p in found) else []

        seen = wait_for(started, 10, f"the lane's grandchild ({grandchild})")
        tokens = {lease for p in seen if (lease := lease_of(p)) != GONE}
        assert len(tokens) == 1 and None not in tokens, tokens
        (token,) = tokens
        outcomes = running.join(30)

        assert [(o.status, o.detail) for o in outcomes] == [
            ("failed", f"timed out after {timeout}s")], outcomes
        assert timeout <= outcomes[0].seconds <= timeout + 5, outcomes[0].seconds
        failed = events_of(store, run_id, "write", "job.fail")
        assert len(failed) == 1 and "timed out" in failed[0]["payload"]["data"]["reason"]
        assert run_status(store, run_id) == "failed"
        survivors = lane_processes(token=token) + lane_processes(run=run_id)
        assert not survivors, f"the timed-out lane left {describe(survivors)}"
        assert not [p for p in seen if alive(p)], describe(seen)
    finally:
        kill_lane_processes(run=run_id)


def test_a_setsid_escapee_is_killed_when_the_lane_exits(tmp_path: Path) -> None:
    token = f"1-{secrets.token_hex(16)}"
    out = tmp_path / "out"
    env = lane_environment({}, {"STRIATUM_LEASE": token, "STRIATUM_ARTIFACT_DIR": str(out),
                                "STRIATUM_JOB": "escape", "STRIATUM_RUN": "no-run"})
    try:
        # The lane lives on a second after the escape, so the grandchild has surely left
        # the process group (os.setsid) and only its lease token can find it.
        argv = ["sh", "-c", '"$0" "$1" escape && sleep 1', sys.executable, str(FAKE_AGENT)]
        result = run_lane(argv, cwd=tmp_path, env=env, stdin=None, timeout=30,
                          log_path=tmp_path / "lane.log", tag=token)
        assert result.ok, result
        assert result.killed == 1, f"the escapee was not found and killed: {result}"
        assert not lane_processes(token=token), describe(lane_processes(token=token))
    finally:
        kill_lane_processes(token=token)


def test_lane_returns_though_an_untagged_descendant_holds_its_output(tmp_path: Path) -> None:
    """A descendant that cleared its environment (``env -i``) and left the session cannot be
    found by its lease token; run_lane must still return once the lane has exited (its
    pump is given up on after 10 s: "a holder we could not kill: stop reading")."""
    marker = f"striatum-untagged-{secrets.token_hex(6)}"
    # The lane waits a second, so the descendant has left the process group before the
    # lane's end kills the group.
    script = (f"env -i setsid {sys.executable} -c 'import time; time.sleep(60)' {marker} & "
              "sleep 1")
    token = f"1-{secrets.token_hex(16)}"
    env = lane_environment({}, {"STRIATUM_LEASE": token})
    results: list[Any] = []
    lane = threading.Thread(target=lambda: results.append(run_lane(
        ["sh", "-c", script], cwd=tmp_path, env=env, stdin=None, timeout=5,
        log_path=tmp_path / "lane.log", tag=token)), daemon=True)
    started = time.monotonic()
    lane.start()
    try:
        wait_for(lambda: [p for p in psutil.process_iter() if marker in " ".join(cmdline(p))],
                 10, "the untagged descendant to start")
        lane.join(15)
        assert not lane.is_alive(), (
            f"run_lane has not returned {time.monotonic() - started:.0f}s after a lane that "
            "exited after 1s: it waits for the untagged process holding its output pipe")
        assert results and results[0].exit_code == 0, results
    finally:
        holders = [p for p in psutil.process_iter() if marker in " ".join(cmdline(p))]
        for process in holders:
            process.kill()
        psutil.wait_procs(holders, timeout=5)
        lane.join(15)


def test_run_lane_closes_the_lane_output_pipe(tmp_path: Path) -> None:
    token = f"1-{secrets.token_hex(16)}"
    env = lane_environment({}, {"STRIATUM_LEASE": token})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = run_lane([sys.executable, "-c", "print('hello')"], cwd=tmp_path, env=env,
                          stdin=None, timeout=30, log_path=tmp_path / "lane.log", tag=token)
        gc.collect()
    assert result.ok and (tmp_path / "lane.log").read_text() == "hello\n"
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not unclosed, f"run_lane left its pipes to the garbage collector: {unclosed}"


def test_a_lane_whose_guardian_is_killed_is_killed_and_the_next_lane_runs(
        tmp_path: Path) -> None:
    """The guardian (the lanes' parent) killed on its own: the lane is not left to run
    unsupervised, the result says it did not end by itself, and a new guardian starts
    the next lane."""
    token = f"1-{secrets.token_hex(16)}"
    env = lane_environment({}, {"STRIATUM_LEASE": token})
    results: list[Any] = []
    lane = threading.Thread(target=lambda: results.append(run_lane(
        ["sh", "-c", "sleep 60 & sleep 60"], cwd=tmp_path, env=env, stdin=None, timeout=60,
        log_path=tmp_path / "lane.log", tag=token)), daemon=True)
    lane.start()
    try:
        found = wait_for(lambda: lane_processes(token=token), 10, "the lane to start")
        guardians = {p.ppid() for p in found if p.pid == os.getpgid(p.pid)}
        assert len(guardians) == 1, describe(found)
        os.kill(guardians.pop(), signal.SIGKILL)
        lane.join(15)
        assert not lane.is_alive(), "run_lane did not return after its guardian died"
        assert results[0].exit_code is None and not results[0].ok, results
        assert "guardian died" in (tmp_path / "lane.log").read_text()
        assert not [p for p in found if alive(p)], describe(found)

        after = run_lane([sys.executable, "-c", "print('again')"], cwd=tmp_path, env=env,
                         stdin=None, timeout=30, log_path=tmp_path / "again.log", tag=token)
        assert after.ok and (tmp_path / "again.log").read_text() == "again\n", after
    finally:
        kill_lane_processes(token=token)


def test_the_guardian_reads_the_header_the_worker_writes() -> None:
    from striatum.runtime import guardian, lanes

    assert lanes.HEADER.format == guardian.HEADER.format


# -- 7. the log is capped ----------------------------------------------------------------------


def test_flooding_lane_log_is_capped_with_a_marker_and_the_job_succeeds(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    cap = 1_000_000
    flood = 20 * 1024 * 1024
    lane = {"command": fake("flood", "--mb", "20"), "timeout": 120}
    run_id = start_run(store, one_task(tmp_path / "flow", lane), repo)

    outcomes = work(dsn, run_id, once=True, log_cap=cap)

    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    assert run_status(store, run_id) == "completed"
    log = artifact_file(store, run_id, repo, "write", "logs/write.log")
    assert log.stat().st_size <= cap + 200, log.stat().st_size
    data = log.read_bytes()
    assert data.startswith(b"x" * 1023 + b"\n")
    marker = (f"\n[striatum: output truncated: {flood - cap:,} of {flood:,} bytes not kept "
              f"(cap {cap:,})]\n").encode()
    assert data.endswith(marker), data[-200:]
    assert len(data) == cap + len(marker)


# -- 8. the lane's environment is an allowlist ---------------------------------------------------


DUMP_ENV = ("import os, json; json.dump(dict(os.environ), "
            "open(os.environ['STRIATUM_ARTIFACT_DIR'] + '/env.json', 'w'))")
CANARY_NAMES = [
    "DATABASE_URL", "PGPASSWORD", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
    "FOO", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN", "GITHUB_TOKEN",
    "GH_TOKEN", "NPM_TOKEN", "SLACK_WEBHOOK_URL", "SECRET", "PASSWORD", "API_KEY",
    "STRIATUM_CANARY", "SSH_AUTH_SOCK", "PYTHONSTARTUP_SECRET", "LC_SECRET",
]


@pytest.mark.parametrize("dsn_password", [True, False], ids=["dsn-with-password", "bare-dsn"])
def test_lane_sees_only_allowed_and_declared_variables(dsn_password: bool, dsn: str,
                                                       store: Store, repo: Path,
                                                       tmp_path: Path) -> None:
    canaries = {name: f"canary-{name.lower()}-{secrets.token_hex(8)}" for name in CANARY_NAMES}
    password = str(conninfo_to_dict(dsn).get("password") or "")
    if not dsn_password and password:
        pytest.skip("the test server's DSN carries a password")
    if dsn_password and not password:
        password = f"canary-dsn-password-{secrets.token_hex(8)}"
    worker_dsn = make_conninfo(dsn, password=password) if password else dsn
    lane = {"command": [sys.executable, "-c", DUMP_ENV], "timeout": 60,
            "env": {"OPENAI_API_KEY": "${OPENAI_API_KEY}"}}
    workflow = write_workflow(tmp_path / "flow", {
        "name": "env", "lanes": {"agent": lane},
        "jobs": [{"id": "dump", "lane": "agent", "prompt": {"text": "dump"},
                  "produces": ["env.json"]}]})
    run_id = start_run(store, workflow, repo)

    env = cli_env(worker_dsn, **canaries)
    with spawned(tmp_path / "procs") as procs:
        worker = procs.striatum("worker", worker_dsn, repo, "worker", "--run", run_id, "--once",
                                env=env)
        code = worker.wait(30)
        assert code == 0, worker.err()
    assert run_status(store, run_id) == "completed", worker.err()

    dumped = artifact_file(store, run_id, repo, "dump", "env.json")
    text = dumped.read_text(encoding="utf-8")
    seen = json.loads(text)
    leaked = sorted(name for name, value in canaries.items()
                    if value in text and name != "OPENAI_API_KEY")
    assert not leaked, f"these reached the lane without being declared: {leaked}"
    if password:
        assert password not in text, "the DSN's password reached the lane"
    # With a password or without, a lane holds no login: its worker's lane socket instead.
    assert "STRIATUM_DSN" not in seen and "STRIATUM_HOME" not in seen, sorted(seen)
    assert os.path.isabs(seen["STRIATUM_SOCKET"]), seen
    assert seen.get("OPENAI_API_KEY") == canaries["OPENAI_API_KEY"]
    for name in ("STRIATUM_RUN", "STRIATUM_JOB", "STRIATUM_LEASE", "STRIATUM_ARTIFACT_DIR"):
        assert seen.get(name), f"{name} is missing from the lane's environment"
    assert (seen["STRIATUM_RUN"], seen["STRIATUM_JOB"]) == (run_id, "dump")
    assert seen["STRIATUM_LEASE"].startswith("1-")
    allowed = {"PATH", "HOME", "LANG", "TERM", "LC_CTYPE", "OPENAI_API_KEY"}
    unexpected = sorted(k for k in seen if k not in allowed and not k.startswith("STRIATUM_"))
    assert not unexpected, f"unexpected variables in the lane: {unexpected}"


# -- 9. writes globs and worktrees -----------------------------------------------------------


def test_change_outside_writes_fails_the_attempt(dsn: str, store: Store, repo: Path,
                                                  tmp_path: Path) -> None:
    git_init(repo, commit=True)
    workflow = one_task(tmp_path / "flow", {"command": fake("stray"), "timeout": 60},
                        writes=["src/**"], max_attempts=1)
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, once=True)

    assert [o.status for o in outcomes] == ["failed"], outcomes
    assert "STRAY.txt" in outcomes[0].detail and "writes" in outcomes[0].detail
    failed = events_of(store, run_id, "write", "job.fail")
    assert len(failed) == 1 and "STRAY.txt" in failed[0]["payload"]["data"]["reason"]
    assert run_status(store, run_id) == "failed"


def test_change_outside_writes_is_not_laundered_by_a_retry(dsn: str, store: Store, repo: Path,
                                                           tmp_path: Path) -> None:
    """With the default max_attempts (3), the stray file the first attempt left behind must
    not let a retry pass the writes check and complete the run with it in the tree."""
    git_init(repo, commit=True)
    workflow = one_task(tmp_path / "flow", {"command": fake("stray"), "timeout": 60},
                        writes=["src/**"])
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert outcomes[0].status == "failed" and "STRAY.txt" in outcomes[0].detail, outcomes
    status = run_status(store, run_id)
    left = (repo / "STRAY.txt").exists()
    assert not (status == "completed" and left), (
        f"the run {status} with STRAY.txt, a change outside the job's writes, still in the "
        f"working tree: attempts {[(o.status, o.detail) for o in outcomes]}")


@pytest.mark.parametrize("writes, succeeds", [(["src/**"], False), (["*.txt"], True)],
                         ids=["outside-writes", "inside-writes"])
def test_worktree_isolation_records_a_diff_and_leaves_the_tree_alone(
        writes: list[str], succeeds: bool, dsn: str, store: Store, repo: Path,
        tmp_path: Path) -> None:
    git_init(repo, commit=True)
    head = git(repo, "rev-parse", "HEAD").strip()
    workflow = one_task(tmp_path / "flow", {"command": fake("stray"), "timeout": 60},
                        writes=writes, isolation="worktree", max_attempts=1)
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, once=True)

    assert [o.status for o in outcomes] == ["succeeded" if succeeds else "failed"], outcomes
    if not succeeds:
        assert "STRAY.txt" in outcomes[0].detail
    assert run_status(store, run_id) == ("completed" if succeeds else "failed")
    diff = artifact_file(store, run_id, repo, "write", "changes/write.diff")
    text = diff.read_text(encoding="utf-8")
    assert "diff --git a/STRAY.txt b/STRAY.txt" in text and "+outside the job's writes" in text
    assert not (repo / "STRAY.txt").exists(), "the lane wrote into the repository itself"
    assert git(repo, "rev-parse", "HEAD").strip() == head
    dirty = [line[3:] for line in git(repo, "status", "--porcelain",
                                      "--untracked-files=all").splitlines()]
    assert all(p.startswith((".striatum/", "striatum/runs/")) for p in dirty), dirty
    worktrees = [line for line in git(repo, "worktree", "list", "--porcelain").splitlines()
                 if line.startswith("worktree ")]
    assert worktrees == [f"worktree {repo.resolve()}"], worktrees


# -- 10. verdicts, failures and retries ------------------------------------------------------


def test_review_that_leaves_no_verdict_fails_its_attempt(dsn: str, store: Store, repo: Path,
                                                         tmp_path: Path) -> None:
    silent = {"command": [sys.executable, "-c", "print('looked at it, said nothing')"],
              "timeout": 60}
    workflow = write_workflow(tmp_path / "flow", {
        "name": "silent-review",
        "lanes": {"writer": {"command": fake("work"), "timeout": 60}, "reviewer": silent},
        "jobs": [{"id": "draft", "lane": "writer", "prompt": {"text": "draft"},
                  "produces": ["draft.md"]},
                 {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                  "prompt": {"text": "check"}, "consumes": ["draft.md"], "max_attempts": 2}]})
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [(o.job, o.status) for o in outcomes] == [
        ("draft", "succeeded"), ("check", "failed"), ("check", "failed")], outcomes
    assert all("no verdict" in o.detail for o in outcomes[1:]), outcomes
    retried = events_of(store, run_id, "check", "job.retry")
    failed = events_of(store, run_id, "check", "job.fail")
    assert len(retried) == 1 and "no verdict" in retried[0]["payload"]["data"]["reason"]
    assert len(failed) == 1 and "no verdict" in failed[0]["payload"]["data"]["reason"]
    assert not rows(store, "SELECT 1 FROM striatum.verdicts WHERE run_id = %s", run_id)
    assert run_status(store, run_id) == "failed"


def test_failing_lane_is_retried_up_to_max_attempts_then_fails_the_run(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    workflow = one_task(tmp_path / "flow", {"command": fake("fail"), "timeout": 60},
                        max_attempts=3)
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [(o.status, o.detail) for o in outcomes] == [("failed", "exited with code 3")] * 3
    assert [e["type"] for e in events_of(store, run_id, "write")
            if e["type"] in ("job.claim", "job.retry", "job.fail", "job.complete")] == [
        "job.claim", "job.retry", "job.claim", "job.retry", "job.claim", "job.fail"]
    failed = events_of(store, run_id, "write", "job.fail")[0]["payload"]
    assert failed["data"]["attempts"] == 3 and failed["state"]["status"] == "failed"
    assert [r["attempt"] for r in lease_rows(store, run_id, "write")] == [0, 1, 2]
    run_failed = events_of(store, run_id, kind="run.fail")
    assert len(run_failed) == 1 and "after 3 attempt(s)" in run_failed[0]["payload"]["data"][
        "reason"]
    assert run_status(store, run_id) == "failed"
    view = runs.status(store, run_id)
    assert view.executions == 1, "retries of one pass are not executions"


def test_crash_once_succeeds_on_the_second_attempt(dsn: str, store: Store, repo: Path,
                                                   tmp_path: Path) -> None:
    workflow = one_task(tmp_path / "flow", {"command": fake("crash-once"), "timeout": 60})
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [(o.status, o.detail) for o in outcomes] == [
        ("failed", "exited with code 1"), ("succeeded", "")], outcomes
    job = job_row(store, run_id, "write")
    assert (job["status"], job["attempt"], job["fence"]) == ("succeeded", 1, 2), job
    assert [(r["attempt"], r["outcome"]) for r in lease_rows(store, run_id, "write")] == [
        (0, "retry"), (1, "complete")]
    assert completes(store, run_id) == Counter({"write": 1})
    published = {(r["path"], r["fence"]) for r in artifact_rows(store, run_id)}
    assert published == {("logs/write.log", 2), ("out.md", 2)}, published
    assert run_status(store, run_id) == "completed"



def test_an_idle_worker_names_a_waiting_checkpoint_once(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """The checkpoint is awaited from the start; the worker, idle on its run, says so
    once and how to answer it, however many times it wakes."""
    workflow = write_workflow(tmp_path / "flow", {
        "name": "gate", "lanes": {"agent": {"command": ["true"]}, "human": {"kind": "human"}},
        "jobs": [{"id": "gate", "lane": "human", "kind": "checkpoint", "title": "Go?",
                  "choices": {"go": ["after"], "stop": []}},
                 {"id": "after", "lane": "agent", "needs": ["gate"],
                  "prompt": {"text": "go"}}]})
    run_id = start_run(store, workflow, repo)
    said: list[str] = []
    running = worker_thread(dsn, run_id, poll_seconds=0.05, progress=said.append)
    try:
        wait_for(lambda: any("waiting for a decision" in line for line in said), 20,
                 lambda: f"the worker to name the checkpoint: {said}")
        time.sleep(0.5)  # ten more polls
    finally:
        running.worker.request_stop()
        running.join(20)
    named = [line for line in said if "waiting for a decision" in line]
    assert named == [f"gate: waiting for a decision: striatum checkpoint decide {run_id} gate "
                     "go|stop"], said
