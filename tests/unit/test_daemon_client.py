"""`striatum daemon status` and `stop`, and the client, import neither psycopg nor the
registry: a command routed through the daemon starts as fast as Python and click allow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from striatum.server.place import RuntimeDir, prepare, running, take_lock

PROBE = """
import sys
from striatum.cli.main import run
import striatum.server.client
codes = [run(["daemon", "status"]), run(["daemon", "stop"])]
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool",
               "jsonschema") or m in ("striatum.server.registry", "striatum.server.gate"))
print(codes, heavy)
"""


def test_status_stop_and_the_client_import_no_driver_and_no_registry(tmp_path: Path) -> None:
    found = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                           env={"STRIATUM_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"},
                           check=True)
    assert found.stdout.strip().splitlines()[-1] == "[3, 0] []"


def test_the_lock_replaces_a_killed_daemons_pid_at_once(tmp_path: Path) -> None:
    place = RuntimeDir(tmp_path / "run")
    prepare(place)
    place.pidfile.write_text("999999\n")  # a killed daemon's, its pid since reused
    assert running(place) is None
    fd = take_lock(place)
    assert fd is not None
    try:
        assert place.pidfile.read_text() == f"{os.getpid()}\n"
        assert running(place) == os.getpid()
        assert take_lock(place, patience=0.1) is None  # one daemon per folder
    finally:
        os.close(fd)
    assert running(place) is None


def test_a_home_too_deep_for_a_socket_address_is_refused_before_anything_starts(
        tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    found = subprocess.run([sys.executable, "-m", "striatum", "daemon", "start", "--json"],
                           capture_output=True, text=True,
                           env={"STRIATUM_HOME": str(deep), "PATH": "/usr/bin:/bin"})
    assert found.returncode == 1, found.stderr
    refused = json.loads(found.stderr)
    assert "UNIX socket address" in refused["message"] and "STRIATUM_HOME" in refused["hint"]
    assert not (deep / "run" / "daemon.log").exists()
