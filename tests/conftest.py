"""Shared test configuration: soak variants run only when asked for with ``-m soak``, and a
striatum home of the test run's own.

No test may start (or migrate) the embedded server in the user's own data directory:
STRIATUM_HOME points at a temporary folder for the whole run, and an embedded server
started there, by a test or by a CLI command a test ran, is stopped at the end.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="soak variant: run with -m soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def striatum_home() -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix="striatum-home-"))
    os.chmod(home, 0o755)  # the embedded server may run as its own system user
    before = os.environ.get("STRIATUM_HOME")
    os.environ["STRIATUM_HOME"] = str(home)
    try:
        yield home
    finally:
        try:
            if any(home.rglob("postmaster.pid")):
                stopped = subprocess.run([sys.executable, "-m", "striatum", "db", "stop"],
                                         capture_output=True, text=True, timeout=120)
                assert stopped.returncode == 0, f"striatum db stop: {stopped.stderr}"
        finally:
            if before is None:
                del os.environ["STRIATUM_HOME"]
            else:
                os.environ["STRIATUM_HOME"] = before
            shutil.rmtree(home, ignore_errors=True)
