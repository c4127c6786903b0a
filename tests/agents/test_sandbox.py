"""Nothing leaves the machine: a lane of a run worked inside the sandbox, where every CLI of
these tests runs, can reach its fake on 127.0.0.1 and nothing else, not even a port this
test opens on the host's own addresses; a name it looks up is answered "no such host" by
the sandbox's own resolver, which records it (the other tests assert that no CLI looked
up any)."""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Bench, write_workflow
from .script import Script

pytestmark = pytest.mark.timeout(120)
PROBE = Path(__file__).resolve().parent / "probe.py"
SIOCGIFADDR = 0x8915


def host_addresses() -> list[str]:
    """The IPv4 address of each of this host's interfaces but loopback."""
    found = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            if name == "lo":
                continue
            try:
                answer = fcntl.ioctl(sock, SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
            except OSError:  # no IPv4 address on it
                continue
            found.append(socket.inet_ntoa(answer[20:24]))
    return found


@pytest.fixture
def listening() -> Iterator[int]:
    """A port open on every address of the host (outside the sandbox); below the
    ephemeral range, so no fake inside can have it too."""
    for port in range(24000, 24200):
        try:
            server = socket.create_server(("0.0.0.0", port))
        except OSError:
            continue
        with server:
            yield port
        return
    pytest.fail("no free port in 24000-24199 to listen on")


def test_nothing_leaves_the_sandbox(bench: Bench, tmp_path: Path, listening: int) -> None:
    own = host_addresses()
    for address in own:  # the control: from the host, the port answers
        socket.create_connection((address, listening), timeout=5).close()
    targets = [f"{a}:{listening}" for a in own] + [
        f"127.0.0.1:{listening}",  # the host's loopback is not the sandbox's
        "1.1.1.1:443", "192.0.2.1:443"]
    workflow = write_workflow(tmp_path / "flow", {
        "name": "conformance-sandbox",
        "lanes": {"probe": {"command": ["false"]}},
        "jobs": [{"id": "probe", "lane": "probe", "produces": ["probe.json"],
                  "prompt": {"text": "Probe the network.\n"}}]})
    lane = {"command": [sys.executable, "-I", str(PROBE), "{artifact_dir}", *targets],
            "env": {"ANTHROPIC_BASE_URL": "${ANTHROPIC_BASE_URL}"}}

    run_id = bench.prepare(workflow, {"probe": lane})
    outcome = bench.work(run_id, Script(), timeout=60)

    assert outcome.status == "completed", outcome.explain()
    report = json.loads(bench.artifacts(outcome, "probe")["probe.json"])
    assert report["interfaces"] == ["lo"]
    assert report["fake"] == "connected"
    assert report["targets"] == {
        **{f"{a}:{listening}": "ENETUNREACH" for a in own},
        f"127.0.0.1:{listening}": "ECONNREFUSED",
        "1.1.1.1:443": "ENETUNREACH", "192.0.2.1:443": "ENETUNREACH"}
    # The sandbox's resolver answers every name "no such host", and records it.
    assert report["dns"] == "gaierror"
    assert outcome.record.names == ["api.anthropic.com"]
