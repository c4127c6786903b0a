"""What a worker does when an attempt goes wrong outside the lane itself: an error in
striatum's own steps (git, the file system, a prompt that cannot render), a repository
that is a subdirectory of its git work tree, the lines it prints for a human, and the
guardian's clean-up under a storm of signals.

Each failure must end the attempt with its reason in the record, keep the run moving,
and leave nothing behind (no lease held by a worker that moved on, no worktree).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from striatum.runtime import leases, runs
from striatum.runtime.store import Store
from striatum.server.lanegate import LaneLeases

from .worker_helpers import (
    alive,
    cli,
    events_of,
    fake,
    git,
    git_init,
    job_row,
    one_task,
    rows,
    run_status,
    start_run,
    wait_for,
    work,
    worker_thread,
    write_workflow,
)

pytestmark = pytest.mark.timeout(120)


# -- an error in striatum's own steps of an attempt ---------------------------------------------


def test_an_error_inside_an_attempt_fails_that_attempt_and_cleans_up(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """The run's base commit is gone, so `git worktree add` fails: the attempt fails with
    git's reason, the lease is not left to expire, the outcome names the run and the job,
    no worktree stays behind, and `worker --once` says it did not succeed."""
    git_init(repo, commit=True)
    workflow = one_task(tmp_path / "flow", {"command": fake("work"), "timeout": 60},
                        isolation="worktree", max_attempts=2)
    run_id = start_run(store, workflow, repo)
    # A new history: the commit the run was prepared on no longer exists.
    subprocess.run(["rm", "-rf", str(repo / ".git")], check=True)
    (repo / "README.md").write_text("# another history\n", encoding="utf-8")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "another history")

    done = cli(dsn, repo, "worker", "--once", "--run", run_id, "--json", timeout=90)

    assert done.returncode != 0, (done.returncode, done.stdout, done.stderr)
    report = json.loads(done.stdout)
    assert [(j["run"], j["job"], j["status"]) for j in report["jobs"]] == [
        (run_id, "write", "failed")], report
    job = job_row(store, run_id, "write")
    assert (job["status"], job["lease_token"]) == ("ready", None), job
    retried = events_of(store, run_id, "write", "job.retry")
    assert len(retried) == 1, events_of(store, run_id, "write")
    reason = retried[0]["payload"]["data"]["reason"]
    assert "worktree" in reason and "git" in reason, reason
    assert "worktree" in report["jobs"][0]["detail"], report
    worktrees = list((repo / ".striatum").rglob("*.worktree"))
    assert worktrees == [], worktrees


def test_a_worker_outcome_of_an_unexpected_error_keeps_its_run_and_job(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """An OSError in striatum's own step (the attempt's scratch folder cannot be made)
    fails the attempt with the reason instead of escaping the worker."""
    workflow = one_task(tmp_path / "flow", {"command": fake("work"), "timeout": 60},
                        max_attempts=1)
    run_id = start_run(store, workflow, repo)
    (repo / ".striatum").write_text("a file where the scratch folder goes\n", encoding="utf-8")

    outcomes = work(dsn, run_id, once=True)

    assert [(o.run, o.job, o.status) for o in outcomes] == [(run_id, "write", "failed")], \
        outcomes
    failed = events_of(store, run_id, "write", "job.fail")
    assert len(failed) == 1 and ".striatum" in failed[0]["payload"]["data"]["reason"], \
        events_of(store, run_id, "write")
    assert run_status(store, run_id) == "failed"


# -- a prompt that cannot render is not a poison pill ----------------------------------------


def _unrenderable(directory: Path, lane: dict[str, object]) -> str:
    # A template prepare's preflight renders (its run id is a placeholder) that fails with
    # the run's real id (22 characters), as one reading an artifact's text could: what
    # only a claim can find.
    return write_workflow(directory, {
        "name": "unrenderable",
        "lanes": {"agent": lane},
        "jobs": [{"id": "broken", "lane": "agent",
                  "prompt": {"text": "Use {{ 1 / (run | length - 22) }}."}},
                 {"id": "fine", "lane": "agent", "prompt": {"text": "Plain."}}]})


def test_a_prompt_that_cannot_render_fails_its_job_and_the_claim_moves_on(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, _unrenderable(tmp_path / "flow", {"kind": "operator"}), repo)

    claim = leases.claim(store, run_id, owner="agent")

    # The unrenderable job failed at once with the reason (it would fail every attempt
    # alike), which fails the run: nothing is left leased, and the claim is not an error.
    assert claim is None or claim.job == "fine", claim
    broken = job_row(store, run_id, "broken")
    assert broken["status"] == "failed" and broken["lease_token"] is None, broken
    failed = events_of(store, run_id, "broken", "job.fail")
    assert len(failed) == 1, events_of(store, run_id, "broken")
    reason = failed[0]["payload"]["data"]["reason"]
    assert "render" in reason and "division" in reason, reason
    assert run_status(store, run_id) == "failed"


def test_run_start_wait_on_an_unrenderable_prompt_ends_the_run_with_the_reason(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    workflow = _unrenderable(tmp_path / "flow", {"command": fake("work"), "timeout": 60})
    run_id = runs.prepare(store, workflow, str(repo), overrides={})

    done = cli(dsn, repo, "run", "start", run_id, "--wait", timeout=90)

    assert done.returncode == 7, (done.returncode, done.stdout, done.stderr)
    assert run_status(store, run_id) == "failed"
    reason = events_of(store, run_id, kind="run.fail")[0]["payload"]["data"]["reason"]
    assert "broken" in reason and "render" in reason, reason


# -- a repository below the top of its git work tree ---------------------------------------


@pytest.mark.parametrize("mode, succeeds", [("work", True), ("stray", False)],
                         ids=["inside-writes", "outside-writes"])
def test_writes_are_checked_in_a_repository_below_the_top_of_its_work_tree(
        mode: str, succeeds: bool, dsn: str, store: Store, tmp_path: Path) -> None:
    top = tmp_path / "top"
    top.mkdir()
    git_init(top, commit=True)
    repo = top / "service"
    repo.mkdir()
    writer = [sys.executable, "-c",
              "import pathlib, subprocess, sys; pathlib.Path('src').mkdir(exist_ok=True); "
              "pathlib.Path('src/new.py').write_text('x = 1\\n'); "
              f"subprocess.run({fake(mode)!r}, check=True)"]
    workflow = one_task(tmp_path / "flow", {"command": writer, "timeout": 60},
                        writes=["src/**"], max_attempts=1)
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, once=True)

    if succeeds:
        assert [(o.status, o.detail) for o in outcomes] == [("succeeded", "")], outcomes
        assert run_status(store, run_id) == "completed"
    else:
        assert [o.status for o in outcomes] == ["failed"], outcomes
        assert "STRAY.txt" in outcomes[0].detail and "src/new.py" not in outcomes[0].detail
        assert run_status(store, run_id) == "failed"
        # What it wrote within its writes is taken back, and kept in its scratch folder.
        assert "its changes to 1 file(s) were taken back" in outcomes[0].detail
        job = next(iter((repo / ".striatum" / "runs" / run_id).iterdir()))
        assert (job / "i0a0.left" / "src" / "new.py").read_text() == "x = 1\n"
    assert (repo / "src" / "new.py").is_file() == succeeds
    assert git(top, "status", "--porcelain")  # the check read the real work tree


# -- what the worker tells a human -------------------------------------------------------------


def test_an_idle_worker_names_how_to_answer_an_escalated_review(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    always_revise = [sys.executable, "-c",
                     "import json, os, pathlib; d = pathlib.Path(os.environ["
                     "'STRIATUM_ARTIFACT_DIR']); d.mkdir(parents=True, exist_ok=True); "
                     "(d / 'verdict.json').write_text(json.dumps({'verdict': "
                     "'needs_revision', 'reason': 'not yet'}))"]
    workflow = write_workflow(tmp_path / "flow", {
        "name": "escalates",
        "lanes": {"writer": {"command": fake("work"), "timeout": 60},
                  "reviewer": {"command": always_revise, "timeout": 60}},
        "jobs": [{"id": "draft", "lane": "writer", "prompt": {"text": "draft"}},
                 {"id": "final-check", "lane": "reviewer", "kind": "review",
                  "needs": ["draft"], "prompt": {"text": "check"},
                  "revise": {"target": "draft", "max": 1}}]})
    run_id = start_run(store, workflow, repo)
    said: list[str] = []
    running = worker_thread(dsn, run_id, poll_seconds=0.05, progress=said.append)
    try:
        wait_for(lambda: run_status(store, run_id) == "blocked", 60,
                 lambda: f"the run to block: {said}")
        wait_for(lambda: any("final-check: waiting" in line for line in said), 20,
                 lambda: f"the worker to name the escalation: {said}")
    finally:
        running.worker.request_stop()
        running.join(30)
    named = [line for line in said if "final-check: waiting" in line]
    assert len(named) == 1, said
    assert f"striatum run resume {run_id} --decision accept|fail|revise" in named[0], named
    assert "checkpoint decide" not in named[0], named


def test_a_verdict_is_told_before_the_job_it_released_starts(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """With slots to spare, the claim loop takes the released job while the reviewer's lane
    thread is still returning: the lines must still come in the order things happened."""
    pairs = 6
    jobs: list[dict[str, object]] = []
    for i in range(pairs):
        needs = [f"check{i - 1}"] if i else []
        jobs.append({"id": f"task{i}", "lane": "writer", "needs": needs,
                     "prompt": {"text": "t"}})
        jobs.append({"id": f"check{i}", "lane": "reviewer", "kind": "review",
                     "needs": [f"task{i}"], "prompt": {"text": "c"}})
    workflow = write_workflow(tmp_path / "flow", {
        "name": "chain",
        "lanes": {"writer": {"command": ["true"], "timeout": 60},
                  "reviewer": {"command": fake("review"), "timeout": 60}},
        "jobs": jobs})
    run_id = start_run(store, workflow, repo)
    said: list[str] = []

    work(dsn, run_id, until_run_ends=True, concurrency=4, progress=said.append)

    assert run_status(store, run_id) == "completed", said
    lines = [line for line in said if ": started" in line or ": accept" in line
             or ": succeeded" in line]
    for i in range(pairs):
        accepted = next(n for n, line in enumerate(lines) if line.startswith(f"check{i}: "
                                                                             "accept"))
        if i + 1 < pairs:
            started = next(n for n, line in enumerate(lines)
                           if line.startswith(f"task{i + 1}: started"))
            assert accepted < started, "\n".join(lines)


# -- the audit record of a worker's own calls ----------------------------------------------------


def test_a_worker_audits_each_change_in_the_transaction_that_makes_it(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    workflow = one_task(tmp_path / "flow", {"command": fake("work"), "timeout": 60})
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, once=True)

    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    audit = rows(store, "SELECT verb, actor, outcome, xmin::text AS tx FROM striatum.audit_log "
                        "ORDER BY seq")
    events = rows(store, "SELECT type, xmin::text AS tx FROM striatum.events "
                         "WHERE run_id = %s ORDER BY seq", run_id)
    by_tx = {row["tx"]: row for row in audit}
    for kind, verb in (("job.claim", "job claim"), ("job.complete", "job complete")):
        event = next(e for e in events if e["type"] == kind)
        row = by_tx.get(event["tx"])
        assert row is not None, f"no audit row in the transaction of {kind}: {audit}"
        assert (row["verb"], row["outcome"]) == (verb, "ok"), row
        assert "worker" in row["actor"], row


# -- the guardian's clean-up ---------------------------------------------------------------------


def test_a_storm_of_signals_cannot_cut_the_guardians_clean_up_short(tmp_path: Path) -> None:
    """The guardian is told to stop again and again while it stops: every lane still dies
    with it, and it prints no traceback. The window is microseconds wide, so the storm is
    repeated."""
    for round_ in range(12):
        _storm(tmp_path / f"round{round_}")


def _storm(directory: Path) -> None:
    from striatum.runtime import lanes

    directory.mkdir(parents=True)
    ours, theirs = socket.socketpair()
    stderr = directory / "guardian.err"
    with open(stderr, "wb") as err:
        guardian = subprocess.Popen(
            [sys.executable, "-I", str(lanes.GUARDIAN), str(theirs.fileno()), str(os.getpid())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=err, start_new_session=True)
    theirs.close()
    status_read, status_write = os.pipe()
    output_read, output_write = os.pipe()
    body = json.dumps({"argv": [sys.executable, "-c", "import time; time.sleep(600)"],
                       "cwd": str(directory), "env": {"PATH": os.environ["PATH"]}}).encode()
    socket.send_fds(ours, [lanes.HEADER.pack(len(body))], [status_write, output_write])
    ours.sendall(body)
    os.close(status_write)
    os.close(output_write)
    lane_pid = 0
    try:
        with os.fdopen(status_read, "rb", buffering=0) as status:
            line = status.readline().decode()
            assert line.startswith("pid "), line
            lane_pid = int(line.split()[1])
            deadline = time.monotonic() + 2.0
            while guardian.poll() is None and time.monotonic() < deadline:
                try:
                    os.kill(guardian.pid, signal.SIGTERM)
                except ProcessLookupError:
                    break
            guardian.wait(timeout=30)
        try:
            lane = psutil.Process(lane_pid)
        except psutil.NoSuchProcess:
            pass
        else:
            wait_for(lambda: not alive(lane), 10, f"lane {lane_pid} to die with its guardian")
    finally:
        ours.close()
        os.close(output_read)
        if lane_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(lane_pid, signal.SIGKILL)
    assert "Traceback" not in stderr.read_text(errors="replace"), stderr.read_text()


# -- what a review of the above found --------------------------------------------------------


def test_a_template_that_raises_a_python_error_fails_its_job_and_the_worker_goes_on(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """Jinja2 raises TypeError (not a TemplateError) for a string plus a number: the job
    fails at once with the reason, and the worker is not taken down with it."""
    workflow = write_workflow(tmp_path / "flow", {
        "name": "type-error", "vars": {"goal": "text"},
        "lanes": {"agent": {"command": fake("work"), "timeout": 60}},
        # Past prepare's preflight (whose run id is a placeholder), only the real run id
        # (22 characters) reaches the sum: what only a claim can find.
        "jobs": [{"id": "broken", "lane": "agent",
                  "prompt": {"text": "do {{ (run | length - 22) or vars.goal + 1 }}"}}]})
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [(o.job, o.status) for o in outcomes] == [("broken", "failed")], outcomes
    assert "TypeError" in outcomes[0].detail, outcomes
    assert job_row(store, run_id, "broken")["status"] == "failed"
    assert len(events_of(store, run_id, "broken", "job.claim")) == 1  # no retry
    assert run_status(store, run_id) == "failed"


def test_an_attempt_that_cannot_be_prepared_is_not_claimed_again_at_once(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """Its folder cannot be written (a local trouble, maybe of this host alone): one attempt
    is failed and the claimer is told why, instead of claiming the same job into the same
    trouble until its attempts are gone."""
    from striatum.errors import AttemptNotPrepared

    workflow = one_task(tmp_path / "flow", {"kind": "operator"}, max_attempts=3)
    run_id = start_run(store, workflow, repo)
    (repo / ".striatum").write_text("a file where the scratch folder goes\n", encoding="utf-8")

    with pytest.raises(AttemptNotPrepared) as refused:
        leases.claim(store, run_id, owner="agent")

    assert ".striatum" in refused.value.message and "retried" in refused.value.message
    job = job_row(store, run_id, "write")
    assert (job["status"], job["attempt"]) == ("ready", 1), job
    assert run_status(store, run_id) == "running"


def test_a_worker_ends_no_attempt_of_its_own_on_a_configuration_it_cannot_work(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    """isolation: worktree in a folder that is no git repository fails the job once, with
    the reason, instead of spending every attempt on it. (prepare refuses it when the
    folder is no repository then: here it stops being one after.)"""
    workflow = one_task(tmp_path / "flow", {"command": fake("work"), "timeout": 60},
                        isolation="worktree", max_attempts=3)
    git_init(repo, commit=True)
    run_id = start_run(store, workflow, repo)
    shutil.rmtree(repo / ".git")

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [o.status for o in outcomes] == ["failed"], outcomes
    assert "git repository" in outcomes[0].detail
    assert len(events_of(store, run_id, "write", "job.claim")) == 1
    assert run_status(store, run_id) == "failed"


def test_a_worker_goes_on_after_a_turn_the_database_refused(
        dsn: str, store: Store, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from striatum.errors import RetriesExhausted
    from striatum.runtime import worker as worker_module

    real = worker_module.leases.sweep_expired
    calls = {"n": 0}

    def contended(*args: object, **kwargs: object) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RetriesExhausted("gave up after 8 retries of a conflicting transaction")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(worker_module.leases, "sweep_expired", contended)
    run_id = start_run(store, one_task(tmp_path / "flow", {"command": fake("work"),
                                                            "timeout": 60}), repo)
    said: list[str] = []

    outcomes = work(dsn, run_id, until_run_ends=True, progress=said.append)

    assert [o.status for o in outcomes] == ["succeeded"], (outcomes, said)
    assert any("claim turn failed" in line for line in said), said
    assert run_status(store, run_id) == "completed"


def test_the_ticket_that_orders_progress_lines_is_given_back_whatever_ends_an_attempt(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The transition that fails an attempt raises something no one expected (a manifest
    that cannot be written): its ticket is still given back, or the line of every job
    claimed meanwhile would wait for it."""
    import types

    from striatum.runtime import attempt as attempt_module

    class Stores:
        def check(self) -> None:
            pass

        def store(self) -> object:
            return object()

    def broken_fail(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError(2, "No such file or directory", "manifest.json.pending")

    monkeypatch.setattr(attempt_module.leases, "fail", broken_fail)
    monkeypatch.setattr(attempt_module._Attempt, "execute",
                        lambda self: self._fail("exited with code 1", []))
    attempts = attempt_module.Attempts(Stores(), None, 0, lambda line: None,  # type: ignore[arg-type]
                                       "/nonexistent/worker.sock", LaneLeases())
    claim = types.SimpleNamespace(run="r", job="j", token="1-x", iteration=0, attempt=0,
                                  run_row=types.SimpleNamespace(repo_path="/nonexistent"),
                                  prompt_file="/nonexistent/j/i0a0.md")

    outcome = attempts.run(claim)  # type: ignore[arg-type]

    assert outcome.status == "error" and "manifest.json.pending" in outcome.detail, outcome
    assert attempts.told.out() == frozenset(), "the ticket was kept"


# -- the log of an attempt its agent ended itself --------------------------------------------


def test_a_review_that_records_its_own_verdict_still_gets_its_log(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    striatum = str(Path(sys.executable).parent / "striatum")
    reviewer = ["sh", "-c", f"echo 'read the draft'; {striatum} job verdict accept "
                            "--reason 'looks right'"]
    workflow = write_workflow(tmp_path / "flow", {
        "name": "self-verdict",
        "lanes": {"writer": {"command": fake("work"), "timeout": 60},
                  "reviewer": {"command": reviewer, "timeout": 60}},
        "jobs": [{"id": "draft", "lane": "writer", "prompt": {"text": "d"}},
                 {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                  "prompt": {"text": "c"}}]})
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [(o.job, o.status) for o in outcomes] == [("draft", "succeeded"),
                                                     ("check", "done by the agent")], outcomes
    assert run_status(store, run_id) == "completed"
    logs = rows(store, "SELECT iteration, fence FROM striatum.artifacts WHERE run_id = %s "
                       "AND job_id = 'check' AND path = 'logs/check.log'", run_id)
    assert logs == [{"iteration": 0, "fence": 1}], logs
    from .worker_helpers import artifact_file

    assert "read the draft" in artifact_file(store, run_id, repo, "check",
                                             "logs/check.log").read_text(encoding="utf-8")


def test_an_attempt_that_changes_nothing_outside_the_record_asks_no_read_before_its_end(
        dsn: str, store: Store, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Its ending's own lease check tells a job the agent ended itself: the read that
    would tell it first is asked only when the ending is refused (the agent's own
    verdict), not for every job."""
    from striatum.runtime import attempt

    asked: list[str] = []
    still_mine = attempt._still_mine

    def counted(store: Store, claim: leases.Claim) -> bool:
        asked.append(claim.job)
        return still_mine(store, claim)

    monkeypatch.setattr(attempt, "_still_mine", counted)
    striatum = str(Path(sys.executable).parent / "striatum")
    workflow = write_workflow(tmp_path / "flow", {
        "name": "no-read",
        "lanes": {"writer": {"command": fake("work"), "timeout": 60},
                  "reviewer": {"command": ["sh", "-c", f"{striatum} job verdict accept "
                                                       "--reason 'looks right'"],
                               "timeout": 60}},
        "jobs": [{"id": "draft", "lane": "writer", "prompt": {"text": "d"}},
                 {"id": "more", "lane": "writer", "prompt": {"text": "m"},
                  "needs": ["draft"]},
                 {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["more"],
                  "prompt": {"text": "c"}}]})
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [(o.job, o.status) for o in outcomes] == [
        ("draft", "succeeded"), ("more", "succeeded"), ("check", "done by the agent")]
    assert asked == ["check"]


@pytest.mark.parametrize("kind", ["review", "task"])
def test_an_agent_that_ends_its_job_itself_publishes_what_it_wrote_to_its_artifact_dir(
        dsn: str, store: Store, repo: Path, tmp_path: Path, kind: str) -> None:
    """The contract tells a command lane's agent to write what its job produces in the
    artifact directory, for the worker to publish when the lane exits: the agent's own
    `job verdict accept` (or `job complete`) publishes it first, instead of being
    refused for an artifact it was told only to write (the attempt then failed)."""
    striatum = str(Path(sys.executable).parent / "striatum")
    ends = "verdict accept --reason 'looks right'" if kind == "review" else "complete"
    agent = ["sh", "-c", 'printf "# Critique\\n" > "$STRIATUM_ARTIFACT_DIR/critique.md"; '
                         f"{striatum} job {ends}"]
    workflow = write_workflow(tmp_path / "flow", {
        "name": "self-ended",
        "lanes": {"agent": {"command": agent, "timeout": 60}},
        "jobs": [{"id": "check", "lane": "agent", "kind": kind, "produces": ["critique.md"],
                  "max_attempts": 1, "prompt": {"text": "c"}}]})
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [(o.job, o.status) for o in outcomes] == [("check", "done by the agent")], outcomes
    assert run_status(store, run_id) == "completed"
    from .worker_helpers import artifact_file

    assert artifact_file(store, run_id, repo, "check", "critique.md").read_text(
        encoding="utf-8") == "# Critique\n"


def test_a_late_log_is_refused_for_an_expired_lease_and_never_covers_a_later_one(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    from striatum.errors import LeaseLost

    from .helpers import expire_lease

    workflow = one_task(tmp_path / "flow", {"kind": "operator"}, max_attempts=3)
    run_id = start_run(store, workflow, repo)
    log = tmp_path / "lane.log"
    log.write_text("first attempt\n", encoding="utf-8")
    first = leases.claim(store, run_id, owner="a")
    assert first is not None
    with pytest.raises(LeaseLost, match="still held"):
        leases.publish_log(store, run_id, "write", first.token, str(log))
    expire_lease(dsn, run_id, "write")
    leases.sweep_expired(store, run_id)
    with pytest.raises(LeaseLost, match="expired"):
        leases.publish_log(store, run_id, "write", first.token, str(log))
    second = leases.claim(store, run_id, owner="b")
    assert second is not None and second.iteration == first.iteration
    later = tmp_path / "later.log"
    later.write_text("second attempt\n", encoding="utf-8")
    leases.fail(store, run_id, "write", second.token, "gave up",
                files=[leases.stage(str(later), "logs/write.log")])
    third = leases.claim(store, run_id, owner="c")
    assert third is not None
    leases.release(store, run_id, "write", third.token)
    # The released attempt may publish its log; the second attempt's stays.
    assert leases.publish_log(store, run_id, "write", third.token, str(log)) is not None
    assert leases.publish_log(store, run_id, "write", second.token, str(log)) is None
    with pytest.raises(LeaseLost, match="not a lease"):
        leases.publish_log(store, run_id, "write", f"9-{'0' * 32}", str(log))


def test_a_lane_reaches_the_database_its_worker_was_given(
        dsn: str, store: Store, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker was given its database directly (as `striatum --dsn X worker` does), not
    through STRIATUM_DSN: the agent's own `striatum job ...` still reaches it, through the
    worker's lane socket, with no DSN of its own."""
    monkeypatch.delenv("STRIATUM_DSN", raising=False)
    striatum = str(Path(sys.executable).parent / "striatum")
    dump = [sys.executable, "-c", "import json, os, subprocess, sys; "
            "print(json.dumps(os.environ.get('STRIATUM_DSN')), flush=True); "
            f"sys.exit(subprocess.run([{striatum!r}, 'job', 'heartbeat']).returncode)"]
    run_id = start_run(store, one_task(tmp_path / "flow", {"command": dump, "timeout": 60},
                                       produces=[]), repo)

    outcomes = work(dsn, run_id, once=True)

    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    from .worker_helpers import artifact_file

    log = artifact_file(store, run_id, repo, "write", "logs/write.log")
    said = log.read_text(encoding="utf-8").splitlines()
    assert json.loads(said[0]) is None and said[1].startswith("lease extended to "), said


def test_a_lane_whose_program_does_not_exist_fails_at_once(
        dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    workflow = one_task(tmp_path / "flow", {"command": ["no-such-agent-cli", "-p"],
                                            "timeout": 60}, max_attempts=3)
    run_id = start_run(store, workflow, repo)

    outcomes = work(dsn, run_id, until_run_ends=True)

    assert [o.status for o in outcomes] == ["failed"], outcomes
    assert "no-such-agent-cli" in outcomes[0].detail and "127" in outcomes[0].detail
    assert len(events_of(store, run_id, "write", "job.claim")) == 1
    assert run_status(store, run_id) == "failed"
