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

import pytest

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
    assert doctor["ok"] is True, doctor["findings"]
    # The lanes were still at work when the daemon died: they felt it, and went on.
    assert "unavailable" in outcomes
