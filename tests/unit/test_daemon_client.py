"""`striatum daemon status` and `stop`, and the client, import neither psycopg nor the
registry: a command routed through the daemon starts as fast as Python and click allow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
