"""`striatum job ...` inside a lane (STRIATUM_SOCKET set): one call on the lane's socket
with the lease, the text and --json the direct path prints, the gate's errors with
their exit codes, exit 6 when nothing answers, and neither psycopg nor the registry
imported. The socket here is a stand-in speaking the protocol (no database): what the
real lane socket answers is tests/integration/test_lane_socket.py's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from striatum.server import protocol

RUN = "20261205-000000-abcdef"
OUTCOME = {"run": RUN, "job": "check", "status": "succeeded", "iteration": 0,
           "run_status": "blocked", "blocked_on": "check"}
ANSWERS: dict[str, Any] = {
    "job.heartbeat": {"run": RUN, "job": "check", "expires_at": "2026-12-05T06:01:02+00:00"},
    "job.publish": {"run": RUN, "job": "check", "path": "review.md",
                    "stored_at": "striatum/runs/x/check/i0/review.md", "sha256": "ab" * 32},
    "job.complete": OUTCOME,
    "job.release": {**OUTCOME, "status": "ready", "run_status": "running", "blocked_on": None},
}
LEASE_LOST = {"error": "lease_lost", "message": "check: this lease is no longer yours",
              "exit": 5}

PROBE = """
import sys
from striatum.cli.main import run
code = run(sys.argv[1:])
sys.stdout.flush()
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("psycopg", "psycopg_pool",
               "jsonschema") or m in ("striatum.server.registry", "striatum.server.gate"))
print("exit", code, heavy)
"""


class StandIn:
    """A lane socket that answers each verb from ANSWERS (a lease_lost refusal for any
    other) and keeps the requests."""

    def __init__(self, path: Path) -> None:
        self.requests: list[dict[str, Any]] = []
        self.server = socket.socket(socket.AF_UNIX)
        self.server.bind(str(path))
        self.server.listen()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    request = json.loads(line)
                    self.requests.append(request)
                    found = ANSWERS.get(request["method"])
                    conn.sendall(protocol.result(request["id"], found) if found else
                                 protocol.error(request["id"], protocol.FORBIDDEN, LEASE_LOST))


@pytest.fixture
def lane() -> Iterator[tuple[StandIn, dict[str, str]]]:
    folder = Path(tempfile.mkdtemp(prefix="striatum-test-lane-"))
    stand_in = StandIn(folder / "worker.sock")
    env = {"PATH": "/usr/bin:/bin", "STRIATUM_HOME": str(folder / "no-home"),
           "STRIATUM_SOCKET": str(folder / "worker.sock"), "STRIATUM_RUN": RUN,
           "STRIATUM_JOB": "check", "STRIATUM_LEASE": "3-secret"}
    try:
        yield stand_in, env
    finally:
        stand_in.server.close()
        for each in folder.iterdir():
            each.unlink()
        folder.rmdir()


def cli(env: dict[str, str], *args: str, cwd: str = "/") -> tuple[list[str], str]:
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    *printed, last = done.stdout.strip().splitlines()
    return printed + [last], done.stderr


def test_the_lease_verbs_go_to_the_lane_socket_and_print_what_the_direct_path_prints(
        lane: tuple[StandIn, dict[str, str]], tmp_path: Path) -> None:
    stand_in, env = lane
    assert cli(env, "job", "heartbeat")[0] == ["lease extended to 06:01:02", "exit 0 []"]
    (tmp_path / "review.md").write_text("fine\n")
    assert cli(env, "job", "publish", "--artifact", "review.md", cwd=str(tmp_path))[0] == [
        f"published review.md → striatum/runs/x/check/i0/review.md sha256:{'ab' * 32}",
        "exit 0 []"]
    assert cli(env, "job", "complete")[0] == [
        f"check: succeeded; run {RUN}: blocked (blocked on check)", "exit 0 []"]
    printed, _ = cli(env, "job", "release", "--json")
    assert json.loads("\n".join(printed[:-1])) == ANSWERS["job.release"]
    assert printed[-1] == "exit 0 []"
    sent = [(r["method"], r["params"]) for r in stand_in.requests]
    held = {"run": RUN, "job": "check", "lease": "3-secret"}
    assert sent == [
        ("job.heartbeat", {**held, "lease_seconds": 300}),
        ("job.publish", {**held, "artifact": str(tmp_path / "review.md"), "name": None}),
        ("job.complete", held), ("job.release", held)]
    # No token in the envelope: the lease, in the parameters, is the capability.
    assert all("token" not in r["striatum"] and r["striatum"]["cwd"]
               for r in stand_in.requests)


def test_a_refusal_keeps_its_code_and_exit_code_and_no_socket_is_exit_6(
        lane: tuple[StandIn, dict[str, str]]) -> None:
    _, env = lane
    printed, said = cli(env, "job", "verdict", "accept", "--reason", "mine", "--json")
    assert printed == ["exit 5 []"]
    assert json.loads(said)["error"] == "lease_lost"
    printed, said = cli(env, "job", "claim", "--run", RUN)
    assert printed == ["exit 5 []"], said
    gone = {**env, "STRIATUM_SOCKET": os.path.join(os.path.dirname(env["STRIATUM_SOCKET"]),
                                                   "gone.sock")}
    printed, said = cli(gone, "job", "fail", "--reason", "x")
    assert printed == ["exit 6 []"] and "$STRIATUM_SOCKET" in said, said
