"""Run the installed ``striatum`` command in a subprocess, as a user would."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
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
