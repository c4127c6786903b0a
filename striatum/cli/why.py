"""``striatum why RUN``: what holds a run, and the command that moves it."""

from __future__ import annotations

from typing import Any

import click

from .output import json_option
from .refs import RUN, ResolvingCommand
from .verbs import show


@click.command(cls=ResolvingCommand)
@click.argument("run_id", type=RUN)
@json_option
def why(run_id: str, as_json: bool) -> int:
    """Say exactly what holds RUN and the command that moves it.

    A checkpoint or an escalated review waiting for a human (with the line to paste), a
    lease held by a worker and when it expires by the database clock, a lease whose
    heartbeat went quiet, a ready job no worker claimed, a job waiting on its needs; or
    that the run is prepared, done, failed or cancelled."""
    return show("run.why", {"run": run_id}, as_json, render)


def render(document: dict[str, Any]) -> None:
    click.echo(f"{document['summary']}")
    holds = document["holds"]
    if len(holds) > 1 or (holds and holds[0]["job"] is not None
                          and holds[0]["text"] != document["summary"]):
        for hold in holds:
            click.echo(f"  {hold['kind']:<13} {hold['text']}")
            if hold["command"]:
                click.echo(f"  {'':<13} → {hold['command']}")
    if document["next"]:
        click.echo(f"next: {document['next']}")
