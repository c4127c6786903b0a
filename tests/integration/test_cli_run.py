"""Acceptance: a whole run driven only through the installed ``striatum`` command.

Every call is a subprocess with STRIATUM_DSN pointing at this test's database and
``--json``; every stderr must be free of tracebacks, and every exit code is the
documented one (0 ok, 1 usage, 3 not found, 4 conflict, 5 lease lost).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .helpers import EXAMPLES_DIR, REPO_ROOT, expire_lease
from .worker_helpers import Procs, fake, lane_processes, wait_for

pytestmark = pytest.mark.e2e
EXECUTABLE = Path(sys.executable).parent / "striatum"


@dataclass
class Cli:
    env: dict[str, str]
    repo: Path
    workdir: Path

    def run(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(EXECUTABLE), "--repo", str(self.repo), *args],
                                env=self.env, cwd=self.workdir, capture_output=True, text=True,
                                timeout=120)
        assert "Traceback" not in result.stderr + result.stdout, (args, result.stderr)
        assert result.returncode == expect, (args, result.returncode, result.stderr)
        return result

    def json(self, *args: str, expect: int = 0) -> dict[str, Any]:
        result = self.run(*args, "--json", expect=expect)
        if expect == 0:
            document: dict[str, Any] = json.loads(result.stdout)
        else:  # with --json an error is one JSON document on stderr, nothing on stdout
            assert result.stdout == ""
            document = json.loads(result.stderr)
        return document

    def prepare(self, workflow: Path) -> str:
        doc = self.json("run", "prepare", "--workflow", str(workflow), "--start")
        assert doc["status"] == "running"
        return str(doc["run_id"])

    def claim(self, run_id: str) -> dict[str, Any]:
        doc = self.json("job", "claim", "--run", run_id, "--owner", "cli-agent")
        assert doc["claimed"] is True, doc
        return doc

    def held(self, claim: dict[str, Any]) -> tuple[str, ...]:
        return ("--run", claim["run"], "--job", claim["job"], "--lease", claim["lease"])

    def publish_all(self, claim: dict[str, Any]) -> None:
        for name in claim["produces"]:
            source = self.workdir / f"{claim['job']}-{claim['fence']}-{name}"
            source.write_text(f"{name} from {claim['job']} iteration {claim['iteration']}\n",
                              encoding="utf-8")
            doc = self.json("job", "publish", *self.held(claim), "--artifact", str(source),
                            "--as", name)
            assert (doc["path"], doc["iteration"]) == (name, claim["iteration"])

    def finish(self, claim: dict[str, Any], verdict: str = "accept",
               reason: str = "looks right") -> dict[str, Any]:
        """Publish what the job produces, then complete it or record the verdict."""
        self.publish_all(claim)
        if claim["kind"] == "review":
            return self.json("job", "verdict", verdict, *self.held(claim), "--reason", reason)
        return self.json("job", "complete", *self.held(claim))

    def status(self, run_id: str) -> dict[str, Any]:
        return self.json("run", "status", run_id)


@pytest.fixture
def cli(dsn: str, repo: Path, tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STRIATUM_") and k != "PYTHONPATH"}
    # The tree under test, as the in-process tests import it.
    env.update({"STRIATUM_DSN": dsn, "STRIATUM_ACTOR": "test", "PYTHONPATH": str(REPO_ROOT)})
    workdir = tmp_path / "agent"
    workdir.mkdir()
    return Cli(env, repo, workdir)


def copy_example(name: str, tmp_path: Path) -> Path:
    target = tmp_path / "workflows" / name
    target.mkdir(parents=True)
    shutil.copy(EXAMPLES_DIR / name / "workflow.json", target / "workflow.json")
    shutil.copytree(EXAMPLES_DIR / name / "prompts", target / "prompts")
    return target / "workflow.json"


def job_statuses(doc: dict[str, Any]) -> dict[str, str]:
    return {job["job"]: job["status"] for job in doc["jobs"]}


def test_code_change_run_through_the_cli_alone(cli: Cli, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("code-change", tmp_path))

    draft = cli.claim(run_id)
    assert (draft["job"], draft["iteration"], draft["produces"]) == ("draft", 0, ["draft.md"])
    assert Path(draft["prompt_file"]).is_file()
    assert cli.finish(draft)["status"] == "succeeded"

    check = cli.claim(run_id)
    assert check["job"] == "check"
    assert "draft.md from draft iteration 0" in Path(check["prompt_file"]).read_text()
    reason = "name every file the change touches"
    sent_back = cli.finish(check, "needs_revision", reason)
    assert (sent_back["status"], sent_back["run_status"]) == ("pending", "running")

    redraft = cli.claim(run_id)
    assert (redraft["job"], redraft["iteration"]) == ("draft", 1)
    assert reason in Path(redraft["prompt_file"]).read_text()
    cli.finish(redraft)

    recheck = cli.claim(run_id)
    assert (recheck["job"], recheck["iteration"]) == ("check", 1)
    assert "draft.md from draft iteration 1" in Path(recheck["prompt_file"]).read_text()
    assert cli.finish(recheck, "accept", "all files named")["status"] == "succeeded"

    apply = cli.claim(run_id)
    assert apply["job"] == "apply"
    done = cli.finish(apply)
    assert (done["status"], done["run_status"]) == ("succeeded", "completed")

    status = cli.status(run_id)
    assert status["status"] == "completed"
    assert (status["executions"], status["worst_case"]) == (5, 5)
    assert set(job_statuses(status).values()) == {"succeeded"}
    ended = cli.json("job", "claim", "--run", run_id)
    assert (ended["claimed"], ended["reason"], ended["run_status"]) == (
        False, "run_ended", "completed")

    report = cli.json("doctor")
    assert report["ok"] is True, report
    assert report["events"] > 0 and report["audit_rows"] >= 15  # every mutating call
    assert {f["check"] for f in report["findings"]} >= {"chain", "replay", "guards", "anchors"}

    events = cli.json("run", "events", run_id)["events"]
    types = [e["type"] for e in events]
    assert types[:2] == ["run.prepare", "run.start"]
    assert types[-1] == "run.complete"
    assert {"job.ready", "job.claim", "artifact.publish", "job.reset"} <= set(types)
    completed = [e["job"] for e in events if e["type"] == "job.complete"]
    assert completed == ["draft", "draft", "check", "apply"]
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)

    manifest = cli.repo / "striatum" / "runs" / run_id / "manifest.json"
    anchored = json.loads(manifest.read_text())["chain"]
    assert anchored["seq"] == events[-1]["seq"] and anchored["hash"] == events[-1]["hash"]

    text = cli.run("run", "status", run_id)
    assert "completed" in text.stdout and "executions 5 of at most 5" in text.stdout


def test_a_stale_lease_is_refused_with_exit_5(cli: Cli, dsn: str, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("minimal", tmp_path))
    first = cli.claim(run_id)
    expire_lease(dsn, run_id, first["job"])
    second = cli.claim(run_id)
    assert (second["job"], second["fence"], second["attempt"]) == (first["job"],
                                                                   first["fence"] + 1, 1)
    refused = cli.json("job", "complete", *cli.held(first), expect=5)
    assert refused["error"] == "lease_lost"
    cli.json("job", "heartbeat", *cli.held(first), expect=5)
    source = cli.workdir / "late.md"
    source.write_text("late\n", encoding="utf-8")
    cli.json("job", "publish", *cli.held(first), "--artifact", str(source), "--as", "answer.md",
             expect=5)
    stale_text = cli.run("job", "complete", *cli.held(first), expect=5)
    assert stale_text.stderr.startswith("striatum: error:")

    beat = cli.json("job", "heartbeat", *cli.held(second))
    assert beat["job"] == second["job"]
    assert cli.finish(second)["run_status"] == "completed"
    events = cli.json("run", "events", run_id)["events"]
    assert [e["type"] for e in events].count("job.complete") == 1
    assert cli.json("doctor")["ok"] is True


def test_an_unknown_run_exits_3(cli: Cli) -> None:
    for args in (("run", "status", "no-such-run"), ("run", "events", "no-such-run"),
                 ("run", "start", "no-such-run"), ("run", "cancel", "no-such-run"),
                 ("job", "claim", "--run", "no-such-run"),
                 ("checkpoint", "decide", "no-such-run", "decide", "continue")):
        assert cli.json(*args, expect=3)["error"] == "not_found"


def test_an_ended_run_refuses_start_and_resume_with_exit_4(cli: Cli, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("minimal", tmp_path))
    assert cli.finish(cli.claim(run_id))["run_status"] == "completed"
    refused = cli.json("run", "start", run_id, expect=4)
    assert refused["error"] == "conflict" and "'completed'" in refused["message"]
    cli.json("run", "resume", run_id, "--decision", "accept", expect=4)
    cli.json("run", "cancel", run_id, expect=4)
    assert cli.status(run_id)["status"] == "completed"


def test_checkpoint_decide_pauses_and_resumes_the_run(cli: Cli, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("human-checkpoint", tmp_path))
    for expected in ("analysis", "review"):
        claim = cli.claim(run_id)
        assert claim["job"] == expected
        cli.finish(claim)

    paused = cli.status(run_id)
    assert paused["status"] == "running"
    assert job_statuses(paused) == {"analysis": "succeeded", "review": "succeeded",
                                    "decide": "awaiting_decision", "implement": "pending"}
    idle = cli.json("job", "claim", "--run", run_id)
    assert (idle["claimed"], idle["reason"], idle["run_status"]) == (
        False, "waiting_for_human", "running")
    [command] = [w["command"] for w in idle["waiting"]]
    assert command.startswith(f"striatum checkpoint decide {run_id} decide ")
    assert set(command.rsplit(" ", 1)[1].split("|")) == {"continue", "cancel"}
    assert cli.json("checkpoint", "decide", run_id, "decide", "perhaps", expect=1)["error"] \
        == "usage"
    cli.json("checkpoint", "decide", run_id, "implement", "continue", expect=4)

    decided = cli.json("checkpoint", "decide", run_id, "decide", "continue")
    assert (decided["run_status"], decided["skipped"]) == ("running", [])
    cli.json("checkpoint", "decide", run_id, "decide", "cancel", expect=4)
    implement = cli.claim(run_id)
    assert implement["job"] == "implement"
    assert cli.finish(implement)["run_status"] == "completed"
    assert cli.status(run_id)["executions"] == 4
    assert cli.json("doctor")["ok"] is True


def test_a_claim_that_finds_nothing_says_why(cli: Cli, tmp_path: Path) -> None:
    """An agent's loop must tell "start the run", "wrong lane" and "wait a moment"
    apart from "stop" and "ask a human" (those are pinned by the tests above)."""
    prepared = cli.json("run", "prepare", "--workflow",
                        str(copy_example("code-change", tmp_path)))["run_id"]
    idle = cli.json("job", "claim", "--run", prepared)
    assert (idle["reason"], idle["run_status"]) == ("run_not_started", "prepared")
    assert f"striatum run start {prepared}" in idle["detail"]
    cli.json("run", "start", prepared)

    idle = cli.json("job", "claim", "--run", prepared, "--lane", "painter")
    assert idle["reason"] == "no_such_lane"
    assert idle["lanes"] == ["coder", "reviewer"] and "coder, reviewer" in idle["detail"]

    draft = cli.claim(prepared)
    idle = cli.json("job", "claim", "--run", prepared)
    assert (idle["reason"], idle["in_flight"]) == ("nothing_ready_yet", ["draft"])
    # Who holds it, and until when by the database's clock.
    until = draft["expires_at"][11:19]
    assert f"(held by cli-agent until {until} UTC)" in cli.run("run", "status", prepared).stdout
    said = cli.run("job", "claim", "--run", prepared)
    assert said.stdout == ""
    assert said.stderr.startswith("not claimed (nothing_ready_yet): nothing of run ")
    assert "(draft in flight): claim again shortly" in said.stderr
    cli.finish(draft)


def test_checkpoint_cancel_through_the_cli_skips_the_branch(cli: Cli, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("human-checkpoint", tmp_path))
    for _ in range(2):
        cli.finish(cli.claim(run_id))
    decided = cli.json("checkpoint", "decide", run_id, "decide", "cancel")
    assert (decided["run_status"], decided["skipped"]) == ("completed", ["implement"])


def test_escalation_is_resumed_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("code-change", tmp_path))
    for verdict in ("needs_revision", "needs_revision"):
        cli.finish(cli.claim(run_id))
        last = cli.finish(cli.claim(run_id), verdict, "still vague")
    assert (last["run_status"], last["blocked_on"]) == ("blocked", "check")
    idle = cli.json("job", "claim", "--run", run_id)
    assert (idle["reason"], idle["run_status"]) == ("waiting_for_human", "blocked")
    assert idle["waiting"][0]["command"] == \
        f"striatum run resume {run_id} --job check --decision accept|fail|revise"
    resumed = cli.json("run", "resume", run_id, "--decision", "accept", "--reason", "ship it")
    assert (resumed["status"], resumed["blocked_on"]) == ("running", None)
    cli.json("run", "resume", run_id, "--decision", "accept", expect=4)
    assert cli.finish(cli.claim(run_id))["run_status"] == "completed"


def test_run_events_prints_every_event_of_a_long_run(cli: Cli, store_for_cli: Any,
                                                     tmp_path: Path) -> None:
    """1,000 events is one page of the store's reads, not a limit on what is printed."""
    workflow = tmp_path / "wide" / "workflow.json"
    workflow.parent.mkdir()
    width = 400
    workflow.write_text(json.dumps({
        "name": "wide", "lanes": {"agent": {"kind": "operator"}},
        "jobs": [{"id": f"t{i:03d}", "lane": "agent", "prompt": {"text": "go"}}
                 for i in range(width)]}), encoding="utf-8")
    run_id = cli.prepare(workflow)
    store_for_cli(run_id, width)
    expected = 2 + width + 2 * width + 1  # prepare, start, ready, claim+complete, complete
    events = cli.json("run", "events", run_id)["events"]
    assert len(events) == expected, len(events)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    text = cli.run("run", "events", run_id).stdout.splitlines()
    assert len(text) == expected, text[-3:]
    later = cli.json("run", "events", run_id, "--after", str(events[-10]["seq"]))["events"]
    assert [e["seq"] for e in later] == [e["seq"] for e in events[-9:]]


@pytest.fixture
def store_for_cli(dsn: str) -> Any:
    """Claim and complete every job of a run in-process (a CLI call per job would take
    minutes), as an agent would through the verbs."""
    from striatum.runtime import leases
    from striatum.runtime.store import Store

    def drive(run_id: str, jobs: int) -> None:
        store = Store.connect(dsn)
        try:
            for _ in range(jobs):
                claim = leases.claim(store, run_id, owner="agent", sweep=False)
                assert claim is not None
                leases.complete(store, run_id, claim.job, claim.token)
        finally:
            store.close()

    return drive


# -- run start --wait: what it says when it returns -------------------------------------------

# A reviewer that never accepts: the review's budget runs out and the run is blocked.
ALWAYS_REVISE = [sys.executable, "-c", "import json, os, pathlib; "
                 "d = pathlib.Path(os.environ['STRIATUM_ARTIFACT_DIR']); "
                 "d.mkdir(parents=True, exist_ok=True); (d / 'verdict.json').write_text("
                 "json.dumps({'verdict': 'needs_revision', 'reason': 'not yet'}))"]


def prepare_with_lanes(cli: Cli, workflow: Path, **lanes: list[str]) -> str:
    overrides = [f"--lane={name}={json.dumps(argv)}" for name, argv in lanes.items()]
    return str(cli.json("run", "prepare", "--workflow", str(workflow), *overrides)["run_id"])


def manifest_of(cli: Cli, run_id: str) -> Path:
    return cli.repo / "striatum" / "runs" / run_id / "manifest.json"


def test_wait_names_the_manifest_of_a_run_that_completed(cli: Cli, tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("minimal", tmp_path), agent=fake("work"))
    done = cli.run("run", "start", run_id, "--wait")
    assert manifest_of(cli, run_id).is_file()
    assert done.stdout.splitlines()[-1] == (
        f"artifacts and manifest: {manifest_of(cli, run_id).parent}")


def assert_waits(cli: Cli, done: subprocess.CompletedProcess[str], run_id: str, status: str,
                 next_step: str, code: int = 7) -> None:
    """--wait returned before the run ended: exit 7 (130 when interrupted), no manifest
    written or named, and the step that moves the run on as the last line."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    assert cli.status(run_id)["status"] == status
    assert not manifest_of(cli, run_id).exists()
    assert "manifest" not in done.stdout
    assert done.stdout.splitlines()[-1] == next_step


def test_wait_on_a_blocked_run_says_how_to_resume_it_not_where_a_manifest_is(
        cli: Cli, tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("code-change", tmp_path),
                                coder=fake("work"), reviewer=ALWAYS_REVISE)
    done = cli.run("run", "start", run_id, "--wait", expect=7)
    assert_waits(cli, done, run_id, "blocked",
                 f"run {run_id} is blocked on check: a human decides with "
                 f"`striatum run resume {run_id} --job check --decision accept|fail|revise`")


def interrupted_wait(cli: Cli, tmp_path: Path, run_id: str, job: str,
                     status: str) -> subprocess.CompletedProcess[str]:
    """`run start --wait`, and Ctrl-C once ``job`` is ``status`` (a job the worker does
    not run, so it is working by then and takes the signal as a request to stop)."""
    procs = Procs(tmp_path / "procs")
    try:
        proc = procs.start("wait", [str(EXECUTABLE), "--repo", str(cli.repo), "run", "start",
                                    run_id, "--wait"], cli.env)
        wait_for(lambda: (job, status) in {(j["job"], j["status"])
                                           for j in cli.status(run_id)["jobs"]},
                 60, lambda: f"{job} to be {status}: {proc.err()[-2000:]}")
        proc.popen.send_signal(signal.SIGINT)
        code = proc.wait(60)
        return subprocess.CompletedProcess(proc.popen.args, code, proc.out(), proc.err())
    finally:
        procs.close()


def test_wait_interrupted_at_a_checkpoint_says_how_to_decide_it(cli: Cli,
                                                                tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("human-checkpoint", tmp_path),
                                analyst=fake("work"), reviewer=fake("review"))
    done = interrupted_wait(cli, tmp_path, run_id, "decide", "awaiting_decision")
    assert_waits(cli, done, run_id, "running",
                 f"interrupted, the jobs in hand finished: run {run_id} is running, waiting "
                 f"for checkpoint decide: `striatum checkpoint decide {run_id} decide "
                 "cancel|continue`", code=130)


def test_wait_interrupted_while_jobs_remain_says_how_to_work_them(cli: Cli,
                                                                  tmp_path: Path) -> None:
    workflow = tmp_path / "flow" / "workflow.json"
    workflow.parent.mkdir()
    workflow.write_text(json.dumps({
        "name": "handed", "lanes": {"worker": {"command": fake("work")},
                                    "agent": {"kind": "operator"}},
        "jobs": [{"id": "first", "lane": "worker", "prompt": {"text": "go"}},
                 {"id": "by-hand", "lane": "agent", "needs": ["first"],
                  "prompt": {"text": "then"}}]}), encoding="utf-8")
    run_id = prepare_with_lanes(cli, workflow)
    done = interrupted_wait(cli, tmp_path, run_id, "by-hand", "ready")
    assert_waits(cli, done, run_id, "running",
                 f"interrupted, the jobs in hand finished: run {run_id} is still running: "
                 f"work it on with `striatum run work {run_id}`, or claim its jobs with "
                 f"`striatum job claim --run {run_id}`", code=130)


# -- recovery: run retry, run work, resume --wait ---------------------------------------------

# A coder that fails until a flag file exists (a broken tool a human then fixes).
def fails_until(flag: Path) -> list[str]:
    return [sys.executable, "-c",
            "import os, pathlib, sys\n"
            f"if not pathlib.Path({str(flag)!r}).exists(): sys.exit('the tool is broken')\n"
            "d = pathlib.Path(os.environ['STRIATUM_ARTIFACT_DIR']); "
            "d.mkdir(parents=True, exist_ok=True)\n"
            "for n in filter(None, os.environ.get('STRIATUM_PRODUCES', '').splitlines()):\n"
            "    (d / n).write_text('fixed\\n')\n"]


def test_a_failed_run_is_retried_from_its_failed_job_with_a_fresh_budget(
        cli: Cli, tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    run_id = prepare_with_lanes(cli, copy_example("code-change", tmp_path),
                                coder=fails_until(flag), reviewer=fake("review"))
    done = cli.run("run", "start", run_id, "--wait", expect=7)
    assert cli.status(run_id)["status"] == "failed"
    # Without a terminal too: progress lines on stderr, and the verb that recovers.
    assert "striatum: " in done.stderr
    assert done.stdout.splitlines()[-1] == (
        f"run {run_id} failed: see `striatum run status {run_id}`; run it again from the "
        f"failed job with `striatum run retry {run_id} --wait`")
    jobs = job_statuses(cli.status(run_id))
    assert jobs == {"draft": "failed", "check": "cancelled", "apply": "cancelled"}

    refused = cli.json("run", "retry", run_id, "--job", "check", expect=4)
    assert "not failed" in refused["message"] and "failed: draft" in refused["hint"]
    cli.json("run", "work", run_id, expect=4)  # a failed run is retried, not worked

    flag.write_text("", encoding="utf-8")
    done = cli.run("run", "retry", run_id, "--job", "draft", "--reason", "tool fixed",
                   "--wait")
    assert done.stdout.splitlines()[-1].startswith("artifacts and manifest: ")
    status = cli.status(run_id)
    assert status["status"] == "completed"
    assert {j["job"]: j["attempt"] for j in status["jobs"]}["draft"] == 0  # a fresh budget
    events = [(e["type"], e["job"]) for e in cli.json("run", "events", run_id)["events"]]
    assert ("run.retry", None) in events
    assert [job for kind, job in events if kind == "job.rerun"] == ["draft", "check", "apply"]
    retried = next(e for e in cli.json("run", "events", run_id)["events"]
                   if e["type"] == "run.retry")
    assert retried["payload"]["data"] == {"by": "human", "reason": "tool fixed",
                                          "jobs": ["draft"]}
    # Each pass the retry added is granted, like a human's extra revision: doctor's bound.
    assert cli.json("doctor")["ok"] is True
    cli.json("run", "retry", run_id, expect=4)  # completed now


def test_run_work_finishes_a_run_an_interrupted_wait_left_running(
        cli: Cli, tmp_path: Path) -> None:
    workflow = tmp_path / "flow" / "workflow.json"
    workflow.parent.mkdir()
    workflow.write_text(json.dumps({
        "name": "two", "lanes": {"worker": {"command": fake("work")}},
        "jobs": [{"id": "first", "lane": "worker", "prompt": {"text": "go"}},
                 {"id": "second", "lane": "worker", "needs": ["first"],
                  "prompt": {"text": "then"}}]}), encoding="utf-8")
    run_id = prepare_with_lanes(cli, workflow)
    refused = cli.json("run", "work", run_id, expect=4)
    assert f"striatum run start {run_id} --wait" in refused["hint"]
    cli.json("run", "start", run_id)  # started, nobody working it
    done = cli.run("run", "work", run_id)
    assert done.stdout.splitlines()[-1].startswith("artifacts and manifest: ")
    assert cli.status(run_id)["status"] == "completed"
    refused = cli.json("run", "work", run_id, expect=4)
    assert "it is done" in refused["hint"]


def test_resume_wait_works_the_run_on_after_a_granted_revision(
        cli: Cli, tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("code-change", tmp_path),
                                coder=fake("work"), reviewer=ALWAYS_REVISE)
    cli.run("run", "start", run_id, "--wait", expect=7)
    refused = cli.json("run", "work", run_id, expect=4)
    assert "run resume" in refused["hint"]
    done = cli.run("run", "resume", run_id, "--decision", "revise", "--wait", expect=7)
    # The granted pass ran (draft and check again), and the reviewer still says no.
    assert cli.status(run_id)["status"] == "blocked"
    assert "draft" in done.stderr and done.stdout.splitlines()[-1].startswith(
        f"run {run_id} is blocked on check")
    done = cli.run("run", "resume", run_id, "--decision", "accept", "--wait")
    assert cli.status(run_id)["status"] == "completed"


def test_wait_until_human_hands_over_at_a_checkpoint(cli: Cli, tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("human-checkpoint", tmp_path),
                                analyst=fake("work"), reviewer=fake("review"))
    done = cli.run("run", "start", run_id, "--wait", "--until-human", expect=7)
    said = f"striatum checkpoint decide {run_id} decide cancel|continue"
    assert done.stderr.count(said) == 1  # said once, with the choices
    assert done.stdout.splitlines()[-1] == (
        f"run {run_id} is running, waiting for checkpoint decide: `{said}`")
    cli.json("checkpoint", "decide", run_id, "decide", "continue")
    cli.run("run", "work", run_id)
    assert cli.status(run_id)["status"] == "completed"


def test_run_cancel_stops_the_lane_at_once_not_at_the_next_heartbeat(
        cli: Cli, tmp_path: Path) -> None:
    """With a 300 s lease the worker's heartbeat comes every 100 s: the cancel is pushed
    to the worker (NOTIFY), which stops the lane's group then."""
    run_id = prepare_with_lanes(cli, copy_example("minimal", tmp_path), agent=fake("hang"))
    procs = Procs(tmp_path / "procs")
    try:
        worker = procs.start("wait", [str(EXECUTABLE), "--repo", str(cli.repo), "run", "start",
                                      run_id, "--wait", "--lease-seconds", "300"], cli.env)
        wait_for(lambda: lane_processes(run=run_id), 60,
                 lambda: f"the lane to start: {worker.err()[-2000:]}")
        cli.json("run", "cancel", run_id, "--reason", "changed my mind")
        # Far below the heartbeat's 100 s: the test fails without the push.
        wait_for(lambda: not lane_processes(run=run_id), 30,
                 lambda: f"the lane to stop: {worker.err()[-2000:]}")
        assert worker.wait(30) == 7
        assert f"run {run_id} was cancelled; stopping its lane" in worker.err()
    finally:
        procs.close()
    assert cli.status(run_id)["status"] == "cancelled"


# -- run status: what a person needs to act -------------------------------------------------

def test_status_says_why_a_run_failed_and_where_the_log_is(cli: Cli, tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("minimal", tmp_path),
                                agent=[sys.executable, "-c",
                                       "import sys; print('the tool is broken'); sys.exit(3)"])
    cli.run("run", "start", run_id, "--wait", expect=7)
    doc = cli.status(run_id)
    [job] = doc["jobs"]
    assert (doc["status"], job["status"]) == ("failed", "failed")
    assert doc["reason"] and job["reason"] and "exit" in job["reason"]
    assert job["log"] and job["log"].endswith(f"logs/{job['job']}.log")
    assert "the tool is broken" in (cli.repo / job["log"]).read_text(encoding="utf-8")
    text = cli.run("run", "status", run_id).stdout
    assert f"run {run_id} (minimal): failed: {doc['reason']}" in text
    assert f"    why: {job['reason']}" in text and f"    log: {job['log']}" in text
    assert f"attempt {job['attempt'] + 1}" in text  # attempts and passes count from 1


def test_status_shows_a_waiting_checkpoint_and_a_granted_pass(cli: Cli, tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("human-checkpoint", tmp_path),
                                analyst=fake("work"), reviewer=fake("review"))
    cli.run("run", "start", run_id, "--wait", "--until-human", expect=7)
    decide = next(j for j in cli.status(run_id)["jobs"] if j["job"] == "decide")
    assert set(decide["choices"]) == {"continue", "cancel"}
    text = cli.run("run", "status", run_id).stdout
    assert f"    asks: {decide['title'] or 'decide'}; choices: " in text
    assert f"    answer: striatum checkpoint decide {run_id} decide " in text

    blocked = prepare_with_lanes(cli, copy_example("code-change", tmp_path / "again"),
                                 coder=fake("work"), reviewer=ALWAYS_REVISE)
    cli.run("run", "start", blocked, "--wait", expect=7)
    cli.run("run", "resume", blocked, "--decision", "revise", "--wait", expect=7)
    doc = cli.status(blocked)
    assert doc["granted"] == 2  # draft and check ran once more, by a human's grant
    assert doc["executions"] > doc["worst_case"]
    assert (f"executions {doc['executions']} of at most {doc['worst_case']} "
            "(+2 granted by a human)") in cli.run("run", "status", blocked).stdout


def test_a_run_is_named_by_latest_or_a_unique_part_of_its_id(cli: Cli, tmp_path: Path) -> None:
    first = cli.prepare(copy_example("minimal", tmp_path / "a"))
    second = cli.prepare(copy_example("minimal", tmp_path / "b"))
    assert cli.status("latest")["run"] == second
    assert cli.status(first[-6:])["run"] == first  # the random tail
    assert cli.json("job", "claim", "--run", second[-6:])["run"] == second
    ambiguous = cli.json("run", "status", first[:8], expect=1)  # both began that day
    assert "names more than one run" in ambiguous["message"]
    assert first in ambiguous["message"] and second in ambiguous["message"]
    missing = cli.json("run", "status", "ffffffffff", expect=3)
    assert missing["error"] == "not_found"


def test_shell_completion_offers_latest_and_the_repositorys_runs(
        cli: Cli, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("minimal", tmp_path))
    env = {**cli.env, "_STRIATUM_COMPLETE": "bash_complete",
           "COMP_WORDS": f"striatum --repo {cli.repo} run status ", "COMP_CWORD": "5"}
    done = subprocess.run([str(EXECUTABLE)], env=env, capture_output=True, text=True,
                          timeout=60)
    offered = [line.split(",", 1)[1] for line in done.stdout.splitlines()]
    assert offered[:2] == ["latest", run_id], done.stdout + done.stderr


def test_prepare_of_an_invalid_workflow_prints_its_diagnostics(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x", "lanes": {"a": {"command": ["true"]}},\n'
                   ' "jobs": [{"id": "j", "lane": "b", "prompt": {"text": "x"}}]}\n')
    done = cli.run("run", "prepare", "--workflow", str(bad), expect=2)
    assert f"{bad}:2:" in done.stderr and "error[STR201]" in done.stderr
    assert "hint: declared lanes: a" in done.stderr
    assert "is not a valid workflow (1 error): no run was prepared" in done.stderr
    assert cli.json("run", "list") == {"runs": []}


def test_run_list_of_a_repository_without_runs_points_at_all(cli: Cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    cli.prepare(copy_example("minimal", tmp_path))
    done = subprocess.run([str(EXECUTABLE), "--repo", str(other), "run", "list"], env=cli.env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == ""
    assert done.stderr.strip() == (
        "no runs of this repository yet: `striatum run prepare --workflow FILE`; other "
        "repositories have runs: `striatum run list --all`")


def test_a_claim_says_what_the_job_must_produce(cli: Cli, tmp_path: Path) -> None:
    run_id = cli.prepare(copy_example("code-change", tmp_path))
    said = cli.run("job", "claim", "--run", run_id).stdout
    assert "produces:     draft.md (write them to the artifact dir, then publish each)" in said


def test_job_complete_refuses_changes_outside_the_jobs_writes(cli: Cli, tmp_path: Path) -> None:
    """The operator's path holds a job to its writes globs as a worker does."""
    subprocess.run(["git", "init", "-q", str(cli.repo)], check=True)
    (cli.repo / "README.md").write_text("before\n", encoding="utf-8")
    workflow = tmp_path / "flow" / "workflow.json"
    workflow.parent.mkdir()
    workflow.write_text(json.dumps({
        "name": "scoped", "lanes": {"me": {"kind": "operator"}},
        "jobs": [{"id": "change", "lane": "me", "prompt": {"text": "change src"},
                  "writes": ["src/**"]}]}), encoding="utf-8")
    run_id = cli.prepare(workflow)
    claim = cli.claim(run_id)
    (cli.repo / "src").mkdir()
    (cli.repo / "src" / "a.py").write_text("print('a')\n", encoding="utf-8")
    (cli.repo / "README.md").write_text("after\n", encoding="utf-8")  # dirty before, too
    refused = cli.json("job", "complete", *cli.held(claim), expect=4)
    assert refused["message"] == ("'change' changed files outside its writes globs "
                                  "(src/**): README.md")
    assert refused["details"]["paths"] == ["README.md"]
    (cli.repo / "README.md").write_text("before\n", encoding="utf-8")
    done = cli.json("job", "complete", *cli.held(claim))
    assert (done["status"], done["run_status"]) == ("succeeded", "completed")


# A coder whose first attempt edits files in its writes and then fails; the second
# writes one file and succeeds.
FLAKY_EDITOR = [sys.executable, "-c", """
import os, pathlib, sys
repo = pathlib.Path(os.environ["STRIATUM_REPO"])
if os.environ["STRIATUM_ATTEMPT"] == "0":
    (repo / "src" / "half.py").write_text("half done")
    (repo / "src" / "kept.py").write_text("mangled by the failed attempt")
    (repo / "src" / "tracked.py").write_text("mangled too")
    sys.exit("the agent crashed")
(repo / "src" / "whole.py").write_text("done")
"""]


def test_a_retry_starts_from_where_the_pass_started_not_on_the_failed_attempts_edits(
        cli: Cli, tmp_path: Path) -> None:
    repo = cli.repo
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "src").mkdir()
    (repo / "src" / "tracked.py").write_text("committed\n", encoding="utf-8")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t",
                    "commit", "-qm", "base"], check=True)
    # Uncommitted work already there when the pass starts (an earlier job's, say).
    (repo / "src" / "kept.py").write_text("an earlier job's work\n", encoding="utf-8")
    workflow = tmp_path / "flow" / "workflow.json"
    workflow.parent.mkdir()
    workflow.write_text(json.dumps({
        "name": "edit", "lanes": {"coder": {"command": FLAKY_EDITOR}},
        "jobs": [{"id": "change", "lane": "coder", "prompt": {"text": "change src"},
                  "writes": ["src/**"], "max_attempts": 2}]}), encoding="utf-8")
    run_id = prepare_with_lanes(cli, workflow)
    # Uncommitted work where the job writes: not started unless the user says so.
    refused = cli.json("run", "start", run_id, expect=4)
    assert refused["message"] == (f"run {run_id} was not started: its jobs write where the "
                                  "working tree has uncommitted changes: src/kept.py")
    assert "--allow-dirty" in refused["hint"] and cli.status(run_id)["status"] == "prepared"
    done = cli.run("run", "start", run_id, "--allow-dirty", "--wait")
    assert cli.status(run_id)["status"] == "completed", done.stderr
    assert (repo / "src" / "whole.py").read_text() == "done"
    assert not (repo / "src" / "half.py").exists()
    assert (repo / "src" / "kept.py").read_text() == "an earlier job's work\n"
    assert (repo / "src" / "tracked.py").read_text() == "committed\n"
    # Nothing is lost: the failed attempt's files are kept in its scratch folder.
    left = repo / ".striatum" / "runs" / run_id / "change" / "i0a0.left" / "src"
    assert (left / "half.py").read_text() == "half done"
    assert (left / "kept.py").read_text() == "mangled by the failed attempt"
    retried = next(e for e in cli.json("run", "events", run_id)["events"]
                   if e["type"] == "job.retry")
    assert "its changes to 3 file(s) were taken back" in retried["payload"]["data"]["reason"]


# -- preflight: what can be known before a run ------------------------------------------------

def preflight_workflow(tmp_path: Path, prompt: str, **job: Any) -> Path:
    workflow = tmp_path / "pre" / "workflow.json"
    workflow.parent.mkdir(parents=True, exist_ok=True)
    workflow.write_text(json.dumps({
        "name": "pre", "vars": {"topic": "retries"},
        "lanes": {"coder": {"command": ["no-such-agent-cli", "-p"]}},
        "jobs": [{"id": "draft", "lane": "coder", "prompt": {"text": prompt}, **job}]}),
        encoding="utf-8")
    return workflow


def test_prepare_refuses_a_template_that_cannot_render_before_any_run_exists(
        cli: Cli, tmp_path: Path) -> None:
    bad = preflight_workflow(tmp_path, "Write about {{ vars.topic.title() }} "
                                       "and {{ vars.topic + 1 }}.")
    # Like `workflow validate`: the check's document on stdout, exit 2 when it fails.
    checked = json.loads(cli.run("run", "prepare", "--workflow", str(bad), "--dry-run",
                                 "--json", expect=2).stdout)
    assert checked["ok"] is False
    [error] = [f for f in checked["findings"] if f["severity"] == "error"]
    assert error["job"] == "draft" and "cannot render the prompt of 'draft'" in \
        error["message"]
    done = cli.run("run", "prepare", "--workflow", str(bad), expect=2)
    assert "error: cannot render the prompt of 'draft'" in done.stderr
    assert "would fail" in done.stderr
    assert cli.json("run", "list") == {"runs": []}  # nothing was prepared


def test_prepare_warns_of_a_lane_whose_program_is_not_on_path(cli: Cli, tmp_path: Path) -> None:
    fine = preflight_workflow(tmp_path, "Write about {{ vars.topic }}.", writes=["src/**"])
    done = cli.run("run", "prepare", "--workflow", str(fine), "--var", "topic=caching")
    assert "warning: lane coder runs 'no-such-agent-cli', which is not on this machine's " \
           "PATH" in done.stderr
    assert "warning: draft declare writes, which cannot be checked: " in done.stderr
    quiet = cli.json("run", "prepare", "--workflow", str(fine))  # JSON: in the document
    assert [w["message"][:22] for w in quiet["warnings"]] == ["draft declare writes, ",
                                                               "lane coder runs 'no-su"]
    assert done.stdout.strip()  # the run id: a warning does not stop it
    checked = cli.run("run", "prepare", "--workflow", str(fine), "--dry-run")
    assert checked.stdout.strip().endswith("ready to run (see the warnings above)")


def test_prepare_refuses_worktree_isolation_outside_a_git_repository(
        cli: Cli, tmp_path: Path) -> None:
    isolated = preflight_workflow(tmp_path, "go", isolation="worktree", writes=["src/**"])
    refused = cli.json("run", "prepare", "--workflow", str(isolated), expect=2)
    assert "run in a worktree, which needs" in refused["message"]
    assert refused["details"]["preflight"][0]["severity"] == "error"


def test_a_resume_without_wait_names_the_verb_that_works_the_run_on(
        cli: Cli, tmp_path: Path) -> None:
    run_id = prepare_with_lanes(cli, copy_example("code-change", tmp_path),
                                coder=fake("work"), reviewer=ALWAYS_REVISE)
    cli.run("run", "start", run_id, "--wait", expect=7)
    done = cli.run("run", "resume", run_id, "--decision", "revise")
    assert done.stderr.strip().splitlines()[-1] == (
        f"next: run {run_id} is still running: work it on with `striatum run work "
        f"{run_id}`, or claim its jobs with `striatum job claim --run {run_id}`")


def test_run_check_looks_at_a_prepared_run_against_the_repository_as_it_is_now(
        cli: Cli, tmp_path: Path) -> None:
    repo = cli.repo
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "README.md").write_text("x\n", encoding="utf-8")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t",
                    "commit", "-qm", "base"], check=True)
    isolated = preflight_workflow(tmp_path, "go", isolation="worktree", writes=["src/**"])
    run_id = str(cli.json("run", "prepare", "--workflow", str(isolated))["run_id"])
    fine = json.loads(cli.run("run", "check", run_id, "--json").stdout)
    assert fine["ok"] is True
    assert [f["severity"] for f in fine["findings"]] == ["warning"]  # no-such-agent-cli
    shutil.rmtree(repo / ".git")  # the repository stopped being one since
    done = cli.run("run", "check", run_id, expect=2)
    assert "error: draft run in a worktree, which needs" in done.stderr
    assert done.stdout.strip() == f"run {run_id}: would fail (see above)"
