"""The process entry point leaves its objects to the OS at exit, and loses no output doing so."""

from __future__ import annotations

import os
import subprocess
import sys

from striatum.errors import EXIT_USAGE

PROBE = """\
import atexit, gc, sys
atexit.register(lambda: print(f"frozen={gc.get_freeze_count() > 0}", file=sys.stderr))
from striatum.cli.main import main
main(sys.argv[1:])
"""


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_main_freezes_the_heap_before_exit_and_keeps_its_output_and_code() -> None:
    done = _main("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("striatum, version ")
    assert done.stderr == "frozen=True\n"


def test_an_error_exit_code_survives() -> None:
    done = _main("job", "claim")  # --run is missing: a usage error
    assert done.returncode == EXIT_USAGE
    assert "Missing option '--run'" in done.stderr
    assert done.stderr.endswith("frozen=True\n")
