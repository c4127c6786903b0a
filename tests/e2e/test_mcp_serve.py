"""``striatum mcp serve --http``, the installed command in a subprocess: it listens on
loopback alone, keeps the SDK's DNS-rebinding protection (a foreign Host or Origin is
refused), and serves the registry's tools to the SDK's client over HTTP."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from striatum.server.registry import VERBS, tool_name

from .conftest import Cli, executable, private_home

pytestmark = pytest.mark.e2e
NOWHERE = "host=127.0.0.1 port=1 connect_timeout=1"
INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {},
    "clientInfo": {"name": "probe", "version": "1"}}}).encode()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
def test_a_host_that_is_not_loopback_is_refused_with_exit_1(cli: Cli, host: str) -> None:
    result = cli("mcp", "serve", "--http", "--host", host, "--json")
    assert result.returncode == 1 and result.stdout == ""
    refused = json.loads(result.stderr)
    assert refused["error"] == "usage" and "loopback address only" in refused["message"]
    assert "acts as you" in refused["hint"]


def post(url: str, **headers: str) -> int:
    request = urllib.request.Request(url, data=INITIALIZE, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json, text/event-stream",
        **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


async def tool_names(url: str) -> list[str]:
    async with Client(url, mode="legacy") as client:
        return [t.name for t in (await client.list_tools()).tools]


def test_http_serves_the_tools_on_loopback_and_refuses_a_foreign_host_or_origin() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([executable(), "--dsn", NOWHERE, "mcp", "serve", "--http",
                               "--port", str(port), "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline()]
        while lines[-1] not in ("}\n", ""):
            lines.append(server.stdout.readline())
        announced = json.loads("".join(lines))
        url = f"http://127.0.0.1:{port}/mcp"
        assert announced == {"transport": "http", "url": url, "tools": len(VERBS),
                             "read_only": False}
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "not listening"
                time.sleep(0.1)
        assert anyio.run(tool_names, url) == [tool_name(v) for v in VERBS.values()]
        assert post(url) == 200
        assert post(url, Host=f"attacker.example:{port}") == 421
        assert post(url, Origin="http://attacker.example") == 403
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert "Traceback" not in stderr


async def _across_a_stop(env: dict[str, str], cwd: str) -> list[Any]:
    """Over stdio: a call, `striatum db stop` (the server's connection dies with the
    database), another call; each call's result."""
    from mcp import StdioServerParameters

    server = StdioServerParameters(command=executable(), args=["mcp", "serve", "--stdio"],
                                   env=env, cwd=cwd)
    results = []
    async with Client(server, mode="legacy") as client:
        results.append(await client.call_tool("run_list", {}))
        stopped = subprocess.run([executable(), "db", "stop", "--json"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert json.loads(stopped.stdout) == {"stopped": True}, stopped.stderr
        results.append(await client.call_tool("run_list", {}))
    return results


def test_the_embedded_server_stopped_under_the_stdio_server_is_started_by_its_next_call(
        tmp_path: Path) -> None:
    with private_home() as env:
        before, after = anyio.run(_across_a_stop, env, str(tmp_path))
        assert not before.is_error and before.structured_content == {"runs": []}
        assert not after.is_error, after.content
        assert after.structured_content == {"runs": []}
        status = subprocess.run([executable(), "db", "status", "--json"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert json.loads(status.stdout)["running"] is True
