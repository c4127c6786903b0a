"""A lane that looks at the network it was given, run by a worker inside the sandbox:

    python -I probe.py ARTIFACT_DIR HOST:PORT...

It writes ARTIFACT_DIR/probe.json: the network interfaces of its namespace, and
for each address (the fake's at $ANTHROPIC_BASE_URL, then every HOST:PORT) what
a TCP connection attempt did ("connected" or the error's name), and what
resolving a public name did. Standard library only.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit


def attempt(host: str, port: int) -> str:
    try:
        with socket.create_connection((host, port), timeout=5):
            return "connected"
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, type(exc).__name__)


def resolve(name: str) -> str:
    try:
        return f"resolved to {socket.getaddrinfo(name, 443)[0][4][0]}"
    except OSError as exc:
        return type(exc).__name__


def main() -> None:
    out, *targets = sys.argv[1:]
    where = urlsplit(os.environ["ANTHROPIC_BASE_URL"])
    # Not /sys/class/net: sysfs shows the namespace of whoever mounted it.
    report = {"interfaces": sorted(name for _, name in socket.if_nameindex()),
              "fake": attempt(where.hostname or "", where.port or 80),
              "targets": {t: attempt(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1]))
                          for t in targets},
              "dns": resolve("api.anthropic.com")}
    (Path(out) / "probe.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
