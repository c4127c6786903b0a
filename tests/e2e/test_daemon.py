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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Cli, executable

pytestmark = pytest.mark.e2e


@pytest.fixture
def run_dir(cli: Cli) -> Iterator[Path]:
    """The runtime folder of the test run's striatum home; no daemon is left behind."""
    place = Path(os.environ["STRIATUM_HOME"]) / "run"
    yield place
    stopped = cli("daemon", "stop", "--timeout", "60")
    assert stopped.returncode == 0, stopped.stderr


def status(cli: Cli) -> tuple[int, dict[str, object]]:
    found = cli("daemon", "status", "--json")
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
