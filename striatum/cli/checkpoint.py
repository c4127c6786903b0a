"""``striatum checkpoint decide``: a human answers a checkpoint."""

from __future__ import annotations

import click

from ..errors import EXIT_OK
from ..server import results
from .output import emit_json, json_option
from .refs import RUN, ResolvingGroup
from .session import store


@click.group(cls=ResolvingGroup)
def checkpoint() -> None:
    """Checkpoints: decide."""


@checkpoint.command()
@click.argument("run_id", type=RUN)
@click.argument("job_id")
@click.argument("choice")
@json_option
def decide(run_id: str, job_id: str, choice: str, as_json: bool) -> int:
    """Answer checkpoint JOB of RUN with CHOICE; the branches not chosen are skipped."""
    from ..runtime.runs import decide as decide_checkpoint

    with store() as opened:
        tx = decide_checkpoint(opened, run_id, job_id, choice)
    if as_json:
        emit_json(results.decided(tx, job_id, choice))
    else:
        skipped = results.skipped(tx)
        click.echo(f"{job_id}: chose {choice}; run {run_id} is {tx.run.status}"
                   + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    return EXIT_OK
