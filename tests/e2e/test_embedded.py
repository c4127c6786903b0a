"""The zero-set-up default through the installed command: no DSN, so the embedded server
starts on first use, is reused, and stops with `striatum db stop`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import executable

pytestmark = pytest.mark.e2e

Embedded = Callable[..., Any]


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Embedded]:
    """`striatum ARGS --json` with no DSN and a striatum home of this test's own; the
    server it starts there is stopped when the test ends, pass or fail."""
    home = Path(tempfile.mkdtemp(prefix="striatum-e2e-home-"))
    os.chmod(home, 0o755)  # the embedded server may run as its own system user
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STRIATUM_") and k != "PYTHONPATH"}
    env["STRIATUM_HOME"] = str(home)

    def run(*args: str) -> Any:
        done = subprocess.run([executable(), *args, "--json"], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr)
        return json.loads(done.stdout)

    try:
        yield run
    finally:
        subprocess.run([executable(), "db", "stop"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(home, ignore_errors=True)


def test_the_embedded_server_starts_on_first_use_and_stops(embedded: Embedded) -> None:
    assert embedded("db", "status")["running"] is False
    assert embedded("run", "list") == {"runs": []}
    started = embedded("db", "status")
    assert started["running"] is True and isinstance(started["pid"], int)
    assert started["schema_version"] == started["latest"]
    assert embedded("run", "list") == {"runs": []}  # reused, not started again
    assert embedded("db", "status")["pid"] == started["pid"]
    assert embedded("db", "stop") == {"stopped": True}
    assert embedded("db", "status")["running"] is False
    assert embedded("db", "stop") == {"stopped": False}


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0
                    or shutil.which("setpriv") is None,
                    reason="as root only (the server then runs as its own user), with setpriv")
def test_a_process_without_capabilities_reaches_the_server_after_every_start(
        embedded: Embedded, tmp_path: Path) -> None:
    """An agent's sandbox (codex's workspace-write) keeps root's uid but drops every
    capability, CAP_DAC_OVERRIDE with them: the socket's folder must let it in."""
    for _ in range(2):  # the first start, then a start after a stop
        embedded("run", "list")
        env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
        env["STRIATUM_DSN"] = embedded("db", "url")["dsn"]
        done = subprocess.run(["setpriv", "--bounding-set=-all", "--inh-caps=-all",
                               executable(), "run", "list", "--json"],
                              env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"runs": []}
        assert embedded("db", "stop") == {"stopped": True}
