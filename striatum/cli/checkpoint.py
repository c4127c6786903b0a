"""``striatum checkpoint decide``: a human answers a checkpoint."""

from __future__ import annotations

import click

from ..errors import EXIT_OK
from .calls import calls
from .output import emit_json, json_option
from .refs import RUN, ResolvingGroup


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
    with calls() as call:
        decided = call("checkpoint.decide", {"run": run_id, "job": job_id, "choice": choice})
    if as_json:
        emit_json(decided)
    else:
        skipped = decided["skipped"]
        click.echo(f"{job_id}: chose {choice}; run {run_id} is {decided['run_status']}"
                   + (f"; skipped {', '.join(skipped)}" if skipped else ""))
    return EXIT_OK
