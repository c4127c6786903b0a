"""Which way a command takes to its verb (``cli.calls``): the home's daemon when its socket
answers and it serves the database the command would use, else the database directly.
A stand-in daemon (a real UNIX socket in a thread, answering one canned line) plays the
daemon; no database is reached."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from striatum.cli.calls import daemon_client
from striatum.server.place import dsn_digest

from .test_cli import invoke

RUN = "20261205-053757-f6a202"
STATUS = {"run": RUN, "workflow": "w", "status": "running", "blocked_on": None, "reason": None,
          "executions": 1, "worst_case": 3, "granted": 0, "jobs": []}


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # Short: a socket's path must fit in sun_path, which pytest's tmp_path may not.
    path = Path(tempfile.mkdtemp(prefix="sc-", dir="/tmp"))
    (path / "run").mkdir(mode=0o700)
    monkeypatch.setenv("STRIATUM_HOME", str(path))
    monkeypatch.delenv("STRIATUM_DSN", raising=False)
    monkeypatch.delenv("STRIATUM_DIRECT", raising=False)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class StandIn:
    """A socket at the daemon's address that answers each request line with ``answer``
    (None: hangs up without answering, as a daemon killed amid the call)."""

    def __init__(self, home: Path, answer: dict[str, object] | None) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(home / "run" / "daemon.sock"))
        self.sock.listen(4)
        self.answer = answer
        self.asked: list[dict[str, object]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                for line in lines:
                    request = json.loads(line)
                    self.asked.append(request)
                    if self.answer is None:
                        break
                    conn.sendall(json.dumps({"jsonrpc": "2.0", "id": request["id"],
                                             "result": self.answer}).encode() + b"\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def stand_in(home: Path) -> Iterator[StandIn]:
    served = StandIn(home, STATUS)
    yield served
    served.close()


def test_no_socket_no_daemon(home: Path) -> None:
    assert daemon_client(".", None) is None


def test_a_socket_nobody_listens_on_is_no_daemon(home: Path) -> None:
    """A killed daemon's socket file refuses connections: the command goes direct."""
    left = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    left.bind(str(home / "run" / "daemon.sock"))
    left.close()
    assert (home / "run" / "daemon.sock").exists()
    assert daemon_client(".", None) is None


def test_the_daemon_serves_a_command_given_no_dsn(stand_in: StandIn) -> None:
    client = daemon_client(".", None)
    assert client is not None
    client.close()


def test_a_dsn_is_served_only_by_the_daemon_started_with_it(home: Path,
                                                            stand_in: StandIn) -> None:
    assert daemon_client(".", "dbname=a") is None  # the daemon said nothing of its DSN
    (home / "run" / "dsn-sha256").write_text(dsn_digest("dbname=a") + "\n")
    client = daemon_client(".", "dbname=a")
    assert client is not None
    client.close()
    assert daemon_client(".", "dbname=b") is None
    assert daemon_client(".", "dbname=a ") is None  # the same string, not a similar one


def test_a_routed_command_renders_the_daemons_document(home: Path,
                                                       stand_in: StandIn) -> None:
    shown = invoke("run", "status", RUN)
    assert shown.code == 0, shown.err
    assert shown.out.splitlines()[0] == f"run {RUN} (w): running"
    asked = stand_in.asked[-1]
    assert (asked["method"], asked["params"]) == ("run.status", {"run": RUN})
    envelope = asked["striatum"]
    assert isinstance(envelope, dict) and envelope["repo"] == str(Path.cwd())
    as_json = invoke("run", "status", RUN, "--json")
    assert json.loads(as_json.out) == STATUS


@pytest.mark.parametrize("how", [["--direct"], []])
def test_direct_never_asks_the_daemon(home: Path, stand_in: StandIn,
                                      monkeypatch: pytest.MonkeyPatch,
                                      how: list[str]) -> None:
    """--direct or STRIATUM_DIRECT=1: the command opens the database it names (here one
    nobody serves: exit 6, store_unavailable) though the daemon serves that DSN."""
    dsn = "host=127.0.0.1 port=1 connect_timeout=1"
    (home / "run" / "dsn-sha256").write_text(dsn_digest(dsn))
    if not how:
        monkeypatch.setenv("STRIATUM_DIRECT", "1")
    result = invoke(*how, "--dsn", dsn, "run", "status", RUN, "--json")
    assert result.code == 6, result.err
    assert json.loads(result.err)["error"] == "store_unavailable"
    assert stand_in.asked == []


def test_a_daemon_gone_amid_the_call_is_exit_6_with_what_to_check(home: Path) -> None:
    served = StandIn(home, None)
    try:
        result = invoke("job", "claim", "--run", RUN, "--json")
    finally:
        served.close()
    assert result.code == 6, result.err
    error = json.loads(result.err)
    assert error["error"] == "daemon_unavailable"
    assert "may have been applied" in error["hint"]
    assert served.asked[0]["method"] == "job.claim"
