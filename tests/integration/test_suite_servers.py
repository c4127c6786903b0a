"""The test suites stop every PostgreSQL server they start.

A short pytest run in a subprocess, its temporary files in a folder of this test's own
(TMPDIR), must leave no server running on a data directory in that folder, whether the
suite started it itself (the integration suite's embedded server) or through the CLI
(the end-to-end test of the embedded default).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from .helpers import REPO_ROOT
from .worker_helpers import describe, wait_for

RUNS = {
    "integration": ["tests/integration/test_store.py", "-k", "test_migrate_is_idempotent"],
    "e2e": ["tests/e2e/test_embedded.py"],
}


def servers_in(folder: Path) -> list[psutil.Process]:
    """PostgreSQL servers (their postmasters) whose command line names ``folder``."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        argv = process.info["cmdline"] or []
        if process.info["name"] == "postgres" and any(str(folder) in a for a in argv):
            found.append(process)
    return found


@pytest.mark.parametrize("suite", list(RUNS))
def test_a_test_run_leaves_no_server_running(suite: str) -> None:
    # Short: a server's socket goes in its data directory when the path fits in a
    # socket address (about 100 bytes), else in the runtime directory, under TMPDIR too.
    temp = Path(tempfile.mkdtemp(prefix="st-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
    env["TMPDIR"] = str(temp)
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *RUNS[suite]], cwd=REPO_ROOT, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        wait_for(lambda: not servers_in(temp), 10,
                 lambda: f"the servers it started to stop: {describe(servers_in(temp))}")
    finally:
        for server in servers_in(temp):  # what a failing run left: an immediate shutdown
            try:
                server.send_signal(signal.SIGQUIT)
                server.wait(30)
            except psutil.Error:
                pass
        shutil.rmtree(temp, ignore_errors=True)
