"""``striatum daemon``, the installed command in a subprocess, on the test run's striatum
home (its embedded server): start, an idempotent start, status, a daemon SIGKILLed
and the stale socket it leaves, cleaned by the next start; stop; --foreground under a
supervisor's SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.reliability.conftest import count_attempts

from .conftest import Cli, executable

pytestmark = pytest.mark.e2e


def status(cli: Cli) -> tuple[int, dict[str, object]]:
    found = cli("daemon", "status", "--json")
    if found.returncode == 6:  # one runs and does not answer yet: starting
        assert json.loads(found.stderr)["error"] == "daemon_unavailable"
        return 6, {}
    return found.returncode, json.loads(found.stdout)


def test_start_status_kill_start_again_stop(cli: Cli, run_dir: Path) -> None:
    code, doc = status(cli)
    assert code == 3 and doc["running"] is False

    started = cli("daemon", "start", "--json")
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)
    assert first["started"] is True and first["face"] == "daemon"
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    for name in ("client-token", "viewer-token", "daemon.sock"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == 0o600, name

    again = cli("daemon", "start")
    assert again.returncode == 0 and "already running" in again.stdout
    assert f"pid {first['pid']}" in again.stdout

    code, doc = status(cli)
    assert code == 0 and doc["pid"] == first["pid"] and doc["socket"] == str(
        run_dir / "daemon.sock")
    assert {"database", "uptime_seconds", "version", "started_at"} <= set(doc)
    listed = cli("daemon", "call", "run.list", "--params", '{"all": true}')
    assert listed.returncode == 0 and "runs" in json.loads(listed.stdout)
    refused = cli("daemon", "call", "run.cancel", "--params", '{"run": "r"}',
                  "--as", "viewer", "--json")
    assert refused.returncode == 9 and json.loads(refused.stderr)["error"] == "forbidden"

    os.kill(int(str(first["pid"])), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while status(cli)[0] != 3:
        assert time.monotonic() < deadline, "the killed daemon still counts as running"
        time.sleep(0.1)
    assert (run_dir / "daemon.sock").exists()  # stale: nobody listens on it
    call = cli("daemon", "call", "server.status")
    assert call.returncode == 6 and "no daemon answers" in call.stderr

    restarted = cli("daemon", "start", "--json")
    assert restarted.returncode == 0, restarted.stderr
    second = json.loads(restarted.stdout)
    assert second["started"] is True and second["pid"] != first["pid"]
    assert cli("daemon", "call", "server.status").returncode == 0

    stopped = cli("daemon", "stop")
    assert stopped.returncode == 0 and f"pid {second['pid']}" in stopped.stdout
    assert not (run_dir / "daemon.sock").exists()
    assert status(cli)[0] == 3
    twice = cli("daemon", "stop")
    assert twice.returncode == 0 and "not running" in twice.stdout


def test_foreground_serves_until_sigterm_and_a_second_one_steps_aside(cli: Cli,
                                                                      run_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    served = subprocess.Popen([executable(), "daemon", "start", "--foreground"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while status(cli)[0] != 0:
            assert served.poll() is None, served.communicate()
            assert time.monotonic() < deadline, "the daemon never answered"
            time.sleep(0.1)
        assert status(cli)[1]["pid"] == served.pid
        second = subprocess.run([executable(), "daemon", "start", "--foreground"], env=env,
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 0 and "already running" in second.stderr
        served.send_signal(signal.SIGTERM)
        out, err = served.communicate(timeout=60)
        assert served.returncode == 0, err
        assert "stopped" in err and "Traceback" not in err
        assert status(cli)[0] == 3
    finally:
        if served.poll() is None:
            served.kill()
            served.wait()


def test_a_daemon_killed_amid_calls_applies_none_by_half_nor_any_twice(
        cli: Cli, run_dir: Path, tmp_path: Path) -> None:
    from striatum.errors import DaemonUnavailable
    from striatum.server.client import Client, RemoteError
    from striatum.server.place import RuntimeDir

    place = RuntimeDir(run_dir)
    tasks = [f"t{i:02d}" for i in range(40)]
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({"name": "flat", "lanes": {"worker": {"kind": "operator"}},
                                    "jobs": [{"id": t, "lane": "worker", "prompt": {
                                        "text": t}} for t in tasks]}))
    assert cli("daemon", "start").returncode == 0
    with Client(place, repo=str(tmp_path)) as principal:
        run = principal.call("run.prepare", {"workflow": str(workflow), "start": True})[
            "run_id"]
    outcomes: list[str] = []
    stop_at = time.monotonic() + 120

    def patiently(client: Client, verb: str, params: dict[str, object]) -> object:
        while True:
            try:
                return client.call(verb, params)
            except DaemonUnavailable:  # killed: wait for the next daemon, then retry
                outcomes.append("unavailable")
                assert time.monotonic() < stop_at, "the daemon never came back"
                time.sleep(0.2)

    def lane(n: int) -> None:
        while True:
            with Client(place, repo=str(tmp_path)) as principal:
                claim = patiently(principal, "job.claim", {"run": run, "lease_seconds": 5,
                                                           "owner": f"lane{n}"})
            assert isinstance(claim, dict)
            if not claim["claimed"]:
                if claim["run_status"] != "running":
                    return
                time.sleep(0.5)  # a lease held by a killed call's claim: wait for expiry
                continue
            with Client(place, holding="none") as agent:
                try:
                    patiently(agent, "job.complete", {"run": run, "job": claim["job"],
                                                      "lease": claim["lease"]})
                    outcomes.append("completed")
                except RemoteError as refused:
                    # Applied before the kill (the retry finds the lease ended), or the
                    # lease expired meanwhile and the job went back to ready.
                    assert refused.code == "lease_lost", refused.message
                    outcomes.append("lease_lost")

    threads = [threading.Thread(target=lane, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    while outcomes.count("completed") < 10:
        assert time.monotonic() < stop_at
        time.sleep(0.01)
    code, doc = status(cli)
    os.kill(int(str(doc["pid"])), signal.SIGKILL)
    time.sleep(0.5)
    assert cli("daemon", "start").returncode == 0
    for thread in threads:
        thread.join(150)
        assert not thread.is_alive()

    with Client(place, repo=str(tmp_path)) as principal:
        view = principal.call("run.status", {"run": run})
        events = principal.call("run.events", {"run": run})["events"]
        doctor = principal.call("doctor", {"anchors": False})
    assert view["status"] == "completed"
    completions = [e["job"] for e in events if e["type"] == "job.complete"]
    assert sorted(completions) == tasks  # each once: none lost, none twice
    # No transition half-applied: the chain replays to the tables (the doctor's replay)
    # and the daemon's rows each have their change (its rpc check).
    assert doctor["ok"] is True, doctor["findings"]
    # The reliability suite's counters: every attempt in the chain, every lease ended
    # by its completion or its expiry (a claim the kill cut off from its answer).
    with psycopg.connect(database(cli)) as conn:
        per_job, _ = count_attempts(conn, [run])
    assert sorted(job for _, job in per_job) == tasks
    # The lanes were still at work when the daemon died: they felt it, and went on.
    assert "unavailable" in outcomes


def database(cli: Cli) -> str:
    found = cli("db", "url", "--json")
    assert found.returncode == 0, found.stderr
    return str(json.loads(found.stdout)["dsn"])


def test_a_cli_call_in_flight_when_the_daemon_is_killed_exits_6_and_its_retry_completes_once(
        cli: Cli, run_dir: Path, tmp_path: Path) -> None:
    """The kill lands while the call is in the database (its job's row held by another
    session): the CLI says so with exit 6, the change is applied whole or not at all,
    and the same call after a restart completes the job, once."""
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({"name": "one", "lanes": {"worker": {"kind": "operator"}},
                                    "jobs": [{"id": "only", "lane": "worker",
                                              "prompt": {"text": "t"}}]}))
    assert cli("daemon", "start").returncode == 0
    prepared = cli("--repo", str(tmp_path), "daemon", "call", "run.prepare", "--params",
                   json.dumps({"workflow": str(workflow), "start": True}), "--json")
    assert prepared.returncode == 0, prepared.stderr
    run = json.loads(prepared.stdout)["run_id"]
    claimed = cli("daemon", "call", "job.claim", "--params", json.dumps({"run": run}))
    claim = json.loads(claimed.stdout)
    lane = json.dumps({"run": run, "job": "only", "lease": claim["lease"]})
    complete = [executable(), "daemon", "call", "job.complete", "--params", lane,
                "--as", "none", "--json"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STRIATUM_DEBUG")}
    dsn = database(cli)
    daemon = int(str(status(cli)[1]["pid"]))
    with psycopg.connect(dsn, autocommit=True) as blocker:
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM striatum.jobs WHERE run_id = %s FOR UPDATE", (run,))
        calling = subprocess.Popen(complete, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not blocker.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'striatum daemon'").fetchone()[0]:  # type: ignore[index]
            assert time.monotonic() < deadline, "the completion never reached the database"
            time.sleep(0.05)
        os.kill(daemon, signal.SIGKILL)
        out, err = calling.communicate(timeout=60)
        blocker.execute("ROLLBACK")
    assert calling.returncode == 6, (out, err)
    error = json.loads(err)
    assert error["error"] == "daemon_unavailable" and "before answering" in error["message"]
    assert "may have been applied" in error["hint"] and "Traceback" not in err

    assert cli("daemon", "start").returncode == 0
    retried = cli("daemon", "call", "job.complete", "--params", lane, "--as", "none", "--json")
    # The call the kill cut off was applied whole (its transaction was on the server, the
    # commit with it), or not at all: the retry completes it, or finds it completed.
    if retried.returncode == 5:
        assert json.loads(retried.stderr)["error"] == "lease_lost"
    else:
        assert retried.returncode == 0, retried.stderr
        assert json.loads(retried.stdout)["status"] == "succeeded"
    view = json.loads(cli("daemon", "call", "run.status", "--params",
                          json.dumps({"run": run})).stdout)
    assert view["status"] == "completed"
    with psycopg.connect(dsn) as conn:
        per_job, ended = count_attempts(conn, [run])
    assert per_job[(run, "only")]["job.complete"] == 1 and len(ended) == 1
    doctor = cli("daemon", "call", "doctor", "--params", '{"anchors": false}')
    assert doctor.returncode == 0 and json.loads(doctor.stdout)["ok"] is True, doctor.stdout
