"""What one command line chose: the global options, and whether ``--json`` was given.

``run`` makes a fresh one for each call and click keeps it as the root context's
object, so nothing one command line chose outlives it, however many commands
run in one process.
"""

from __future__ import annotations

from dataclasses import dataclass

import click


@dataclass
class Invocation:
    repo: str = "."
    dsn: str | None = None
    direct: bool = False  # never through the daemon
    json: bool = False


def current(ctx: click.Context) -> Invocation:
    return ctx.find_root().ensure_object(Invocation)
