"""Run the installed ``striatum`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p.parent.name for p in (REPO / "examples").glob("*/workflow.json"))


def executable() -> str:
    beside = Path(sys.executable).parent / "striatum"
    found = str(beside) if beside.exists() else shutil.which("striatum")
    if not found:
        pytest.fail("the striatum command is not installed: run `make test`, which installs it")
    return found


Cli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    exe = executable()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "STRIATUM_DEBUG")}

    def run(*args: str, cwd: Path | None = None, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, *args], cwd=cwd or tmp_path, env=env, input=input,
                              capture_output=True, text=True, timeout=120)

    return run


@pytest.fixture
def run_dir(cli: Cli) -> Iterator[Path]:
    """The runtime folder of the test run's striatum home; no daemon is left behind."""
    place = Path(os.environ["STRIATUM_HOME"]) / "run"
    yield place
    stopped = cli("daemon", "stop", "--timeout", "60")
    assert stopped.returncode == 0, stopped.stderr


@contextmanager
def private_home() -> Iterator[dict[str, str]]:
    """The environment of a striatum home of its own (no DSN: its own embedded server),
    whose daemon and server are stopped, and folder removed, at the end, pass or fail."""
    home = Path(tempfile.mkdtemp(prefix="striatum-e2e-home-"))
    os.chmod(home, 0o755)  # the embedded server may run as its own system user
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STRIATUM_") and k != "PYTHONPATH"}
    env["STRIATUM_HOME"] = str(home)
    try:
        yield env
    finally:
        for argv in (["daemon", "stop"], ["db", "stop"]):
            subprocess.run([executable(), *argv], env=env, capture_output=True, timeout=120)
        shutil.rmtree(home, ignore_errors=True)
