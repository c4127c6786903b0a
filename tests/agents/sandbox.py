"""The inside of the sandbox: run as ``unshare -n python -m tests.agents.sandbox SPEC``.

In the new, empty network namespace it brings the loopback interface up, starts
the three fakes on 127.0.0.1, gives the command (``striatum run start RUN
--wait``, or an agent CLI itself for an operator session, its prompt on standard
input) the environment that points each CLI at its fake, runs it to its end,
and writes what happened to the spec's ``result`` file. The fakes' records are
JSON lines under the spec's ``records`` folder, one file per vendor.

Standard library only: it imports nothing of striatum, and the command it runs
is the installed ``striatum``.
"""

from __future__ import annotations

import fcntl
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from .fakes import APIS, Fake
from .script import Script

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
# Keys the fakes accept (any value does); a CLI without one will not start.
KEYS = {"ANTHROPIC_API_KEY": "fake-anthropic-key", "CODEX_API_KEY": "fake-openai-key",
        "GEMINI_API_KEY": "fake-gemini-key"}


def loopback_up() -> None:
    """``ip link set lo up``, without needing iproute2."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


class NameRecorder(threading.Thread):
    """A DNS server on 127.0.0.1:53 that answers every query NXDOMAIN and records the name
    asked for: with /etc/resolv.conf pointing at it, each host a CLI tries to reach is
    on record."""

    def __init__(self, record: Path) -> None:
        super().__init__(name="names", daemon=True)
        self.record = record
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 53))

    def run(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            labels, at = [], 12
            while at < len(data) and data[at]:
                labels.append(data[at + 1:at + 1 + data[at]].decode("ascii", "replace"))
                at += data[at] + 1
            end = at + 5  # the name's last byte, then QTYPE and QCLASS
            qtype = struct.unpack("!H", data[at + 1:at + 3])[0] if end <= len(data) else 0
            with open(self.record, "a") as out:
                out.write(json.dumps({"name": ".".join(labels), "type": qtype}) + "\n")
            flags = struct.pack("!H", 0x8183)  # a response, recursion available, NXDOMAIN
            self.sock.sendto(data[:2] + flags + data[4:6] + b"\0" * 6 + data[12:end], peer)


def point_resolver_at_loopback(folder: Path) -> None:
    """Bind a resolv.conf naming 127.0.0.1 over /etc/resolv.conf (in this process's own
    mount namespace)."""
    conf = folder / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\n")
    subprocess.run(["mount", "--bind", str(conf), "/etc/resolv.conf"], check=True)


def prepare_home(home: Path, ports: dict[str, int]) -> dict[str, str]:
    """Write the configuration each CLI reads from its home, pointed at the fakes; the
    environment that goes with it."""
    gemini = home / ".gemini"
    gemini.mkdir(parents=True, exist_ok=True)
    (gemini / "settings.json").write_text(json.dumps({
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        # The only switch for its usage statistics: no flag or variable does it.
        "privacy": {"usageStatisticsEnabled": False}}, indent=2))
    codex = home / ".codex"
    codex.mkdir(parents=True, exist_ok=True)
    # codex reads its endpoint from here (it ignores OPENAI_BASE_URL).
    (codex / "config.toml").write_text(
        f'openai_base_url = "http://127.0.0.1:{ports["codex"]}/v1"\n')
    return {"HOME": str(home), "CODEX_HOME": str(codex),
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{ports['claude']}",
            "GOOGLE_GEMINI_BASE_URL": f"http://127.0.0.1:{ports['gemini']}",
            **KEYS}


def main(spec_file: str) -> int:
    spec: dict[str, Any] = json.loads(Path(spec_file).read_text())
    loopback_up()
    records = Path(spec["records"])
    records.mkdir(parents=True, exist_ok=True)
    point_resolver_at_loopback(records)
    NameRecorder(records / "names.jsonl").start()
    script = Script.from_json(spec["script"])
    fakes = {vendor: Fake(api(), script, records / f"{vendor}.jsonl").start()
             for vendor, api in APIS.items()}
    env = {**spec["env"],
           **prepare_home(Path(spec["home"]), {v: f.port for v, f in fakes.items()})}
    started = time.monotonic()
    result: dict[str, Any] = {"ports": {v: f.port for v, f in fakes.items()}}
    stdin = spec.get("stdin")
    with open(spec["stdout"], "wb") as out, open(spec["stderr"], "wb") as err, \
            open(stdin or "/dev/null", "rb") as given:
        try:
            done = subprocess.run(spec["command"], cwd=spec["cwd"], env=env, stdout=out,
                                  stderr=err, stdin=given, timeout=spec["timeout"])
            result["exit_code"] = done.returncode
        except subprocess.TimeoutExpired:
            result["exit_code"] = None
            result["timed_out"] = True
    result["seconds"] = round(time.monotonic() - started, 2)
    for fake in fakes.values():
        fake.shutdown()
    Path(spec["result"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
