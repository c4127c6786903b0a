"""The daemon, the installed command in a process of its own, under abuse: a thousand
connections at once (idle, garbage, valid calls), its memory read from /proc before
and after; and its database stopped under it (the home's embedded server, which it
starts again; a server of one's own, which it waits for)."""

from __future__ import annotations

import json
import os
import resource
import select
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from .conftest import Cli, executable, private_home

pytestmark = pytest.mark.e2e

CONNECTIONS = 1000
LIMIT = 256  # the daemon's documented default (docs/daemon.md)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def open_files_limit(pid: int) -> tuple[int, int]:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-file limit for pid {pid}")


def request(ident: int, method: str, token: str | None = None) -> bytes:
    envelope = {"protocol": 1, **({"token": token} if token else {})}
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": method, "params": {},
                       "striatum": envelope}).encode() + b"\n"


def first_lines(socks: list[socket.socket], within: float) -> dict[int, bytes]:
    """The first line each socket receives within ``within`` seconds, by index ("" for a
    socket the daemon closed without a word); a socket that got nothing is left out."""
    got: dict[int, bytes] = {}
    buffers: dict[int, bytes] = {i: b"" for i in range(len(socks))}
    index = {sock.fileno(): i for i, sock in enumerate(socks)}
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    deadline = time.monotonic() + within
    while len(got) < len(socks) and time.monotonic() < deadline:
        for fd, _ in poller.poll(200):
            i = index[fd]
            chunk = socks[i].recv(65536)
            buffers[i] += chunk
            if b"\n" in buffers[i] or not chunk:
                got[i] = buffers[i].split(b"\n", 1)[0]
                poller.unregister(fd)
    return got


def test_a_thousand_connections_at_once_past_the_limit_are_told_so_and_memory_stays_bounded(
        cli: Cli, run_dir: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * CONNECTIONS + 100:
        if hard != resource.RLIM_INFINITY and hard < 2 * CONNECTIONS + 100:
            pytest.skip(f"the open-file limit ({hard}) cannot hold {CONNECTIONS} connections")
        resource.setrlimit(resource.RLIMIT_NOFILE, (2 * CONNECTIONS + 100, hard))
    started = cli("daemon", "start", "--json")
    assert started.returncode == 0, started.stderr
    pid = int(json.loads(started.stdout)["pid"])
    token = (run_dir / "client-token").read_text().strip()
    status = json.loads(cli("daemon", "status", "--json").stdout)
    assert status["max_connections"] == LIMIT
    assert status["open_files"] >= LIMIT  # and what /proc says the process runs with:
    assert open_files_limit(pid)[0] == status["open_files"]
    assert cli("daemon", "call", "run.list", "--params", '{"all": true}').returncode == 0
    before = rss_kib(pid)

    socks: list[socket.socket] = []
    try:
        for _ in range(CONNECTIONS):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(run_dir / "daemon.sock"))  # blocking: waits for the backlog
            sock.settimeout(30)
            socks.append(sock)
        # One in four idle; one in four garbage; the rest valid calls, half of them
        # the principal's, half holding nothing (refused: a read needs a token).
        kinds = ["idle", "garbage", "principal", "none"]
        for i, sock in enumerate(socks):
            kind = kinds[i % 4]
            try:
                if kind == "garbage":
                    sock.sendall(b"\x00\xffnot json at all {{{\n")
                elif kind == "principal":
                    sock.sendall(request(i, "server.status", token))
                elif kind == "none":
                    sock.sendall(request(i, "run.list"))
            except OSError:
                pass  # refused and closed already: its first line says so
        lines = first_lines(socks, 60)
        during = rss_kib(pid)
    finally:
        for sock in socks:
            sock.close()

    seen: Counter[str] = Counter()
    for i, line in lines.items():
        kind = kinds[i % 4]
        if not line:
            # Closed with nothing said: only an idle connection within the limit, when
            # the daemon's idle limit passed first (a slow, loaded machine).
            assert kind == "idle", (i, kind)
            seen["idle closed"] += 1
            continue
        answer = json.loads(line)
        assert answer["jsonrpc"] == "2.0" and answer["striatum"] == {"protocol": 1}
        error = answer.get("error")
        if error and error["data"]["code"] == "daemon_unavailable":
            assert error["code"] == -32600 and answer["id"] is None
            assert f"{LIMIT} connections at most" in error["message"]
            assert error["data"]["exit"] == 6 and error["data"]["hint"]
            seen["refused"] += 1
        elif kind == "garbage":
            assert error["code"] == -32700 and error["data"]["code"] == "usage"
            seen["garbage"] += 1
        elif kind == "principal":
            assert answer["id"] == i and answer["result"]["pid"] == pid
            seen["served"] += 1
        else:
            assert kind == "none" and error["code"] == -32001, (kind, answer)
            seen["forbidden"] += 1
    # Each connection past the limit was told so; each within it was answered, but the
    # idle ones, which sent nothing and got nothing.
    assert seen["refused"] == CONNECTIONS - LIMIT, seen
    assert seen["served"] + seen["garbage"] + seen["forbidden"] == LIMIT * 3 // 4, seen
    assert len(lines) - seen["idle closed"] == CONNECTIONS - LIMIT // 4, seen
    # Never a crash: the same daemon serves on; its memory grew by less than 64 MiB.
    again = json.loads(cli("daemon", "call", "server.status").stdout)
    assert again["pid"] == pid
    after = rss_kib(pid)
    assert max(during, after) - before < 64 * 1024, (before, during, after)
    # The daemon's own log has no traceback.
    assert "Traceback" not in (run_dir / "daemon.log").read_text(errors="replace")


def test_a_daemon_started_with_a_low_open_file_limit_raises_it_to_the_hard_one(
        cli: Cli, run_dir: Path) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"the hard open-file limit ({hard}) is too low to raise to")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STRIATUM_DEBUG")}

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))

    started = subprocess.run([executable(), "daemon", "start", "--json"], env=env,
                             preexec_fn=low, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, started.stderr
    pid = int(json.loads(started.stdout)["pid"])
    wanted = hard if hard != resource.RLIM_INFINITY else -1
    assert open_files_limit(pid)[0] == wanted or wanted == -1
    status = json.loads(cli("daemon", "status", "--json").stdout)
    assert status["max_connections"] == LIMIT
    assert "open-file limit raised from 128" in (run_dir / "daemon.log").read_text()


# -- the database stopped under the daemon ----------------------------------------------------


@pytest.fixture
def home() -> Iterator[dict[str, str]]:
    with private_home() as env:
        yield env


def striatum(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([executable(), *args], env=env, capture_output=True, text=True,
                          timeout=120)


def ok(env: dict[str, str], *args: str) -> Any:
    done = striatum(env, *args, "--json")
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout)


def test_the_daemon_starts_the_stopped_embedded_server_again_once_and_the_calls_succeed(
        home: dict[str, str]) -> None:
    ok(home, "daemon", "start")
    assert ok(home, "daemon", "call", "run.list", "--params", '{"all": true}') == {"runs": []}
    server = ok(home, "db", "status")["pid"]
    for _ in range(2):  # and again: the pool it opened on the restarted server is renewed
        assert ok(home, "db", "stop")["stopped"] is True
        with ThreadPoolExecutor(4) as pool:
            calls = list(pool.map(lambda _: striatum(
                home, "daemon", "call", "run.list", "--params", '{"all": true}', "--json"),
                range(4)))
        assert [c.returncode for c in calls] == [0] * 4, [c.stderr for c in calls]
        assert all(json.loads(c.stdout) == {"runs": []} for c in calls)
        status = ok(home, "db", "status")
        assert status["running"] is True and status["pid"] != server
        server = status["pid"]
    log = (Path(home["STRIATUM_HOME"]) / "run" / "daemon.log").read_text()
    # Once per stop, by the first call that found it stopped; the others waited for it.
    assert log.count("the embedded PostgreSQL is not running: starting it again") == 2, log
    assert "Traceback" not in log


def test_with_a_dsn_of_ones_own_a_stopped_server_fails_the_call_with_exit_6_until_it_is_back(
        home: dict[str, str]) -> None:
    dsn = ok(home, "db", "url")["dsn"]  # the home's server, given as a DSN of one's own
    own = {**home, "STRIATUM_DSN": dsn}
    ok(own, "daemon", "start")
    assert ok(own, "daemon", "call", "run.list", "--params", '{"all": true}') == {"runs": []}
    assert ok(home, "db", "stop")["stopped"] is True
    failed = striatum(own, "daemon", "call", "run.list", "--params", '{"all": true}', "--json")
    assert failed.returncode == 6, failed.stderr
    error = json.loads(failed.stderr)
    assert error["error"] == "store_unavailable" and "cannot reach PostgreSQL" in error[
        "message"] and error["hint"]
    assert "Traceback" not in failed.stderr
    assert ok(home, "db", "status")["running"] is False  # the daemon left it stopped
    assert ok(home, "db", "url")["dsn"] == dsn  # back (started by this command)
    deadline = time.monotonic() + 60
    while True:
        again = striatum(own, "daemon", "call", "run.list", "--params", '{"all": true}',
                         "--json")
        if again.returncode == 0:
            break
        assert again.returncode == 6 and time.monotonic() < deadline, again.stderr
        time.sleep(0.5)
    assert json.loads(again.stdout) == {"runs": []}
