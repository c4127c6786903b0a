"""The two demos README's `make demo` runs, as a new user runs them: each works its run
to the end, removes the temporary repository it made, and says that the embedded server
it started keeps running and how to stop it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .conftest import executable

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("script", ["demo.py", "operator_demo.py"])
def test_a_demo_cleans_up_its_repository_and_says_the_server_keeps_running(
        script: str) -> None:
    home = Path(tempfile.mkdtemp(prefix="striatum-demo-home-"))
    os.chmod(home, 0o755)  # the embedded server may run as its own system user
    scratch = Path(tempfile.mkdtemp(prefix="striatum-demo-tmp-"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("STRIATUM_") and k != "PYTHONPATH"}
    env.update(STRIATUM_HOME=str(home), TMPDIR=str(scratch),
               PATH=f"{Path(executable()).parent}{os.pathsep}{env.get('PATH', '')}")
    try:
        done = subprocess.run([sys.executable, str(EXAMPLES / script)], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        made = [line for line in done.stdout.splitlines()
                if line.startswith("removed the temporary repository ")]
        assert len(made) == 1, done.stdout
        assert not list(scratch.glob("striatum-demo-*"))  # nothing left behind
        assert done.stdout.splitlines()[-1] == (
            "the embedded PostgreSQL keeps running for the next command (`striatum db "
            "status` says where); `striatum db stop` stops it")
    finally:
        subprocess.run([executable(), "db", "stop"], env=env, capture_output=True,
                       timeout=120)
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)
