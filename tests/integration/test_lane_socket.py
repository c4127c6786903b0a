"""A worker's lane socket (``server.lanegate``), through its real socket and the real
client: a lease acts on its own job alone, no verb but the lease verbs is served, a
forged, expired, earlier-attempt or other worker's lease is refused, every call leaves
an audit row, the socket is 0600 in a 0700 folder removed when the worker stops, and a
lane is handed the socket and its lease, never a DSN or the home."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from striatum.runtime import leases
from striatum.runtime.attempt import _job_env
from striatum.runtime.leases import Claim
from striatum.runtime.store import Store
from striatum.server import protocol
from striatum.server.client import Client, RemoteError
from striatum.server.lanegate import LaneGate
from striatum.server.place import SOCKET_PATH_MAX

from .helpers import expire_lease, owner_connection, write_workflow
from .worker_helpers import artifact_rows, one_task, start_run, work

STRIATUM = str(Path(sys.executable).parent / "striatum")


@pytest.fixture
def gate(dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LaneGate]:
    monkeypatch.setenv("STRIATUM_HOME", str(tmp_path / "home"))
    opened = LaneGate(dsn).open()
    try:
        yield opened
    finally:
        opened.close()


def review_flow(directory: Path) -> str:
    """``draft`` (a task producing draft.md), then ``check``, a review producing review.md."""
    return write_workflow(directory, {
        "name": "lane-socket", "lanes": {"agent": {"command": ["true"]}},
        "jobs": [{"id": "draft", "lane": "agent", "prompt": {"text": "Draft."},
                  "produces": ["draft.md"], "max_attempts": 3},
                 {"id": "check", "lane": "agent", "kind": "review", "needs": ["draft"],
                  "prompt": {"text": "Check."}, "produces": ["review.md"]}]})


def claimed(store: Store, run_id: str) -> Claim:
    found = leases.claim(store, run_id, owner="test-worker")
    assert found is not None
    return found


def as_lane(gate: LaneGate, claim: Claim) -> dict[str, str]:
    """Hold ``claim`` as one of the gate's lanes, as the worker does while its lane runs;
    returns the parameters that name the lane's own job."""
    gate.leases.hold(claim.token, _job_env(claim, str(gate.socket)))
    return {"run": claim.run, "job": claim.job, "lease": claim.token}


def agent(gate: LaneGate, **more: Any) -> Client:
    return Client(holding="none", socket_path=gate.socket, actor="tester", cwd="/", **more)


def refused(client: Client, verb: str, params: dict[str, Any]) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        client.call(verb, params)
    assert caught.value.rpc_code == protocol.FORBIDDEN, (verb, caught.value.to_json())
    return caught.value


def audit(dsn: str) -> list[tuple[str, str, str]]:
    with owner_connection(dsn) as conn:
        return [(r[0].split()[-1], r[1], r[2]) for r in conn.execute(
            "SELECT actor, verb, outcome FROM striatum.audit_log "
            "WHERE actor LIKE 'tester %%' ORDER BY seq")]


def test_a_killed_workers_folder_is_removed_by_the_next_lane_socket(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL leaves a worker no time to remove its folder; the next lane socket opened
    removes it, and leaves alone a live worker's and what it cannot tell is a worker's."""
    import subprocess
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code = ("import time; from striatum.server.lanegate import LaneGate; "
            "print(LaneGate('').folder, flush=True); time.sleep(120)")
    workers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
               for _ in range(2)]
    try:
        killed, alive = (Path(w.stdout.readline().strip()) for w in workers)  # type: ignore[union-attr]
        assert killed.parent == tmp_path and f"-{workers[0].pid}-" in killed.name
        workers[0].kill()
        workers[0].wait()
        assert killed.is_dir()
        unknown = [tmp_path / "striatum-lanes-x1y2z3w4", tmp_path / "striatum-lanes-1-abc"]
        for folder in unknown:  # an older name, and pid 1's (alive: not this user's worker)
            folder.mkdir()
        gate = LaneGate(dsn)
        try:
            assert not killed.exists()
            assert alive.is_dir() and all(folder.is_dir() for folder in unknown)
        finally:
            gate.close()
    finally:
        for worker in workers:
            worker.kill()
            worker.communicate()


def test_the_socket_is_0600_in_a_0700_folder_of_its_own_and_gone_after_close(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIATUM_HOME", str(tmp_path / "home"))
    gate = LaneGate(dsn).open()
    try:
        assert stat.S_IMODE(gate.folder.stat().st_mode) == 0o700
        assert stat.S_IMODE(gate.socket.stat().st_mode) == 0o600
        assert stat.S_ISSOCK(gate.socket.stat().st_mode)
        assert gate.socket.is_absolute() and len(str(gate.socket).encode()) <= SOCKET_PATH_MAX
        assert list(gate.folder.iterdir()) == [gate.socket]
        second = LaneGate(dsn).open()  # one socket per worker process
        assert second.socket != gate.socket
        second.close()
    finally:
        gate.close()
    assert not gate.folder.exists()


def test_a_lease_acts_on_its_own_job_alone_and_nothing_else_is_served(
        gate: LaneGate, dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    mine = claimed(store, start_run(store, review_flow(tmp_path / "a"), repo))
    theirs = claimed(store, start_run(store, review_flow(tmp_path / "b"), repo))
    lane = as_lane(gate, mine)
    other = {"run": theirs.run, "job": theirs.job, "lease": theirs.token}
    (repo / "draft.md").write_text("mine\n")
    with agent(gate) as client, agent(gate, token="any-principal-token") as claiming:
        # Its own lease on the other run's job; that job's live lease, which is not held
        # by a lane of this worker; a forged one for its own job.
        assert refused(client, "job.complete", {**lane, "run": theirs.run}).code == \
            "lease_lost"
        assert refused(client, "job.complete", other).code == "forbidden"
        forged = mine.token.split("-", 1)[0] + "-" + "0" * 32
        assert refused(client, "job.complete", {**lane, "lease": forged}).code == "lease_lost"
        # No verb but the lease verbs, whatever the envelope carries.
        for verb, params in [("run.status", {"run": mine.run}),
                             ("run.cancel", {"run": theirs.run}),
                             ("job.claim", {"run": theirs.run}), ("server.status", {}),
                             ("doctor", {})]:
            said = refused(client, verb, params)
            assert said.code == "forbidden" and "lane's socket" in said.message, verb
            assert said.exit_code == 9
        assert refused(claiming, "run.status", {"run": mine.run}).code == "forbidden"
        assert client.call("job.heartbeat", lane)["job"] == mine.job
        published = client.call("job.publish", {**lane, "artifact": str(repo / "draft.md")})
        assert published["path"] == "draft.md"
        assert client.call("job.complete", lane)["status"] == "succeeded"
        assert refused(client, "job.heartbeat", lane).code == "lease_lost"  # ended with it
    leases.check_held(store, theirs.run, theirs.job, theirs.token)  # still theirs, live
    assert audit(dsn) == [
        ("lane:none", "job.complete", "lease_lost"),
        ("lane:none", "job.complete", "forbidden"),
        ("lane:none", "job.complete", "lease_lost"),
        ("lane:none", "run.status", "forbidden"), ("lane:none", "run.cancel", "forbidden"),
        ("lane:none", "job.claim", "forbidden"), ("lane:none", "server.status", "forbidden"),
        ("lane:none", "doctor", "forbidden"), ("lane:none", "run.status", "forbidden"),
        ("lane:lease", "job heartbeat", "ok"), ("lane:lease", "job publish", "ok"),
        ("lane:lease", "job complete", "ok"),
        ("lane:none", "job.heartbeat", "lease_lost")]


def test_an_earlier_attempts_lease_and_an_expired_one_are_refused(
        gate: LaneGate, dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, review_flow(tmp_path / "flow"), repo)
    first = claimed(store, run_id)
    earlier = as_lane(gate, first)
    with agent(gate) as client:
        assert client.call("job.fail", {**earlier, "reason": "first try"})["status"] == "ready"
        second = claimed(store, run_id)
        assert (second.job, second.attempt) == (first.job, 1)
        now = as_lane(gate, second)
        said = refused(client, "job.heartbeat", earlier)
        assert said.code == "lease_lost" and said.exit_code == 5
        assert client.call("job.heartbeat", now)["job"] == second.job
        expire_lease(dsn, run_id, second.job)
        said = refused(client, "job.heartbeat", now)
        assert said.code == "lease_lost" and "expired" in said.message


def test_a_verdict_publishes_what_the_lane_left_in_its_artifact_folder(
        gate: LaneGate, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, review_flow(tmp_path / "flow"), repo)
    draft = claimed(store, run_id)
    Path(draft.artifact_dir).mkdir(parents=True, exist_ok=True)
    Path(draft.artifact_dir, "draft.md").write_text("a draft\n")
    with agent(gate) as client:
        assert client.call("job.complete", as_lane(gate, draft))["status"] == "succeeded"
        check = claimed(store, run_id)
        Path(check.artifact_dir).mkdir(parents=True, exist_ok=True)
        Path(check.artifact_dir, "review.md").write_text("fine\n")
        done = client.call("job.verdict", {**as_lane(gate, check), "outcome": "accept",
                                           "reason": "it reads well"})
    assert done["run_status"] == "completed", done
    assert [(r["job_id"], r["path"]) for r in artifact_rows(store, run_id)] == [
        ("check", "review.md"), ("draft", "draft.md")]


LANE = """
import json, os, subprocess, sys
out = os.environ["STRIATUM_ARTIFACT_DIR"]
os.makedirs(out, exist_ok=True)
sock = os.environ.get("STRIATUM_SOCKET", "")
seen = {"env": sorted(k for k in os.environ if k.startswith("STRIATUM_")),
        "socket": sock, "socket_mode": oct(os.stat(sock).st_mode & 0o777) if sock else None,
        "folder_mode": oct(os.stat(os.path.dirname(sock)).st_mode & 0o777) if sock else None}
with open(os.path.join(out, "out.md"), "w") as f:
    json.dump(seen, f)
done = subprocess.run([sys.argv[1], "job", "complete", "--json"], capture_output=True,
                      text=True)
sys.stderr.write(done.stdout + done.stderr)
sys.exit(done.returncode)
"""


def test_a_lane_is_handed_the_socket_and_its_lease_never_the_dsn_or_the_home(
        dsn: str, store: Store, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The worker's own environment names both; neither reaches the lane.
    monkeypatch.setenv("STRIATUM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STRIATUM_DSN", dsn)
    flow = one_task(tmp_path / "flow", {"command": [sys.executable, "-c", LANE, STRIATUM]})
    run_id = start_run(store, flow, repo)
    outcomes = work(dsn, run_id, timeout=120, until_run_ends=True)
    assert [o.status for o in outcomes] == ["done by the agent"], outcomes
    stored = next(r for r in artifact_rows(store, run_id) if r["path"] == "out.md")
    seen = json.loads((repo / stored["stored_at"]).read_text())
    assert "STRIATUM_DSN" not in seen["env"] and "STRIATUM_HOME" not in seen["env"], seen
    assert {"STRIATUM_SOCKET", "STRIATUM_LEASE", "STRIATUM_RUN", "STRIATUM_JOB"} <= set(
        seen["env"]), seen
    assert os.path.isabs(seen["socket"]) and seen["socket"].endswith("/worker.sock")
    assert (seen["socket_mode"], seen["folder_mode"]) == ("0o600", "0o700")
    assert not Path(seen["socket"]).parent.exists()  # removed when the worker stopped
    with owner_connection(dsn) as conn:
        completed = conn.execute("SELECT actor FROM striatum.audit_log "
                                 "WHERE verb = 'job complete' AND outcome = 'ok'").fetchall()
    assert len(completed) == 1 and completed[0][0].endswith(" lane:lease"), completed


def test_a_lane_hands_its_job_to_a_human_through_the_socket(
        gate: LaneGate, dsn: str, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, review_flow(tmp_path / "flow"), repo)
    draft = claimed(store, run_id)
    with agent(gate) as client:
        done = client.call("job.escalate", {**as_lane(gate, draft), "reason": "which file?"})
    assert (done["status"], done["run_status"]) == ("awaiting_decision", "blocked"), done
    assert audit(dsn) == [("lane:lease", "job escalate", "ok")]


def lane_says(gate: LaneGate, claim: Claim, cwd: Path, *args: str, fast: bool,
              held: Claim | None = None) -> tuple[int, str, str, set[str]]:
    """``striatum job ...`` in ``claim``'s lane environment (``held``: that lease named
    instead), each way: the fast path (under ``-X importtime``, so what it imported is
    seen), or click's (``--`` ends the command line: the fast path leaves it to click).
    Returns the exit code, stdout, stderr and the heavy packages imported."""
    import subprocess

    named = held or claim
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "STRIATUM_DSN", "STRIATUM_DIRECT", "STRIATUM_DEBUG")}
    env.update(STRIATUM_SOCKET=str(gate.socket), STRIATUM_RUN=named.run,
               STRIATUM_JOB=named.job, STRIATUM_LEASE=named.token)
    argv = ([sys.executable, "-X", "importtime", "-m", "striatum", "job", *args] if fast
            else [STRIATUM, "job", *args, "--"])
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    timing = [line for line in done.stderr.splitlines() if line.startswith("import time:")]
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in timing}
    err = "".join(line + "\n" for line in done.stderr.splitlines()
                  if not line.startswith("import time:"))
    return done.returncode, done.stdout, err, imported & {"click", "psycopg"}


def test_the_lease_verbs_in_a_lane_say_the_same_without_click(
        gate: LaneGate, store: Store, repo: Path, tmp_path: Path) -> None:
    """Every lease verb in a lane, with its refusals, by the fast path and by click: the
    same text, --json and exit codes; what the fast path served imported no click or
    psycopg."""
    import re
    from dataclasses import replace

    heard = {}
    for fast in (True, False):
        way = tmp_path / ("fast" if fast else "click")
        mine_run = start_run(store, review_flow(way / "a"), repo)
        theirs_run = start_run(store, review_flow(way / "b"), repo)
        mine, theirs = claimed(store, mine_run), claimed(store, theirs_run)
        as_lane(gate, mine)
        (repo / "draft.md").write_text("mine\n")
        said: list[tuple[Any, ...]] = []

        def say(claim: Claim, *args: str, held: Claim | None = None,
                fast: bool = fast, said: list[tuple[Any, ...]] = said) -> None:
            code, out, err, heavy = lane_says(gate, claim, repo, *args, fast=fast, held=held)
            assert "Traceback" not in out + err, err
            if fast and code == 0:
                assert not heavy, (args, heavy)
            said.append((args, code, out, err))

        forged = replace(mine, token=mine.token.split("-", 1)[0] + "-" + "0" * 32)
        say(mine, "heartbeat")
        say(mine, "heartbeat", "--lease-seconds", "600", "--json")
        say(mine, "publish", "--artifact", "draft.md")
        say(mine, "publish", "--artifact", "draft.md", "--as", "draft.md", "--json")
        say(mine, "complete", held=theirs)  # a live lease, not one of this worker's lanes
        say(mine, "complete", "--json", held=theirs)
        say(mine, "heartbeat", held=forged)
        say(mine, "heartbeat", "--json", held=forged)
        say(mine, "fail", "--reason", "first try")
        mine = claimed(store, mine_run)
        as_lane(gate, mine)
        say(mine, "release", "--json")
        mine = claimed(store, mine_run)
        as_lane(gate, mine)
        say(mine, "publish", "--artifact", "draft.md")
        say(mine, "complete")
        check = claimed(store, mine_run)
        as_lane(gate, check)
        Path(check.artifact_dir).mkdir(parents=True, exist_ok=True)
        Path(check.artifact_dir, "review.md").write_text("fine\n")
        say(check, "verdict", "accept", "--reason", "it reads well", "--finding", "F1")
        say(check, "verdict", "reject", "--reason", "no", "--json")  # it ended: lease lost
        as_lane(gate, theirs)
        say(theirs, "escalate", "--reason", "which file?")
        say(theirs, "heartbeat")  # awaiting a human: the lease is gone
        text = json.dumps(said)
        for value, name in ((mine_run, "RUN"), (theirs_run, "THEIRS"), (str(way), "WAY")):
            text = text.replace(value, name)
        text = re.sub(r"\b\d+-[0-9a-f]{32}\b", "LEASE", text)
        text = re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?", "TIME",
                      text)
        heard[fast] = json.loads(re.sub(r"\b\d\d:\d\d:\d\d\b", "HH:MM:SS", text))
    assert heard[True] == heard[False]
    codes = [code for _, code, _, _ in heard[True]]
    assert codes == [0, 0, 0, 0, 9, 9, 5, 5, 0, 0, 0, 0, 0, 5, 0, 5], heard[True]
