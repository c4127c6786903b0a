"""The ``striatum`` process's entry point (the console script and ``python -m striatum``).

A verb's process lives for tens of milliseconds, most of them spent importing
click and striatum, and the cyclic garbage collector's passes over the new
module objects are a few of those milliseconds, freeing nothing. It is held off
until the command line is parsed (``main.cli`` turns it back on), so commands that
run for long (a worker, the daemon, ``--wait``) collect as usual.
"""

from __future__ import annotations

import gc
import sys


def main() -> None:
    gc.disable()
    from .fastpath import routed

    # The agent loop's verbs, when the home's daemon serves them: without click.
    code = routed(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from .main import main as run

    run()
