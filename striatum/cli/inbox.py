"""``striatum inbox``: one queue of everything that waits for a human."""

from __future__ import annotations

from typing import Any

import click

from ..durations import spoken
from .output import json_option
from .verbs import show


@click.command()
@click.option("--here", is_flag=True, help="Only the runs of this repository (--repo).")
@json_option
def inbox(here: bool, as_json: bool) -> int:
    """List everything that waits for a human, across runs, oldest first.

    Checkpoints waiting for a decision, reviews that spent their revision budget (the run
    is blocked), runs their budget stopped (over_budget), and leases whose worker went
    quiet (no heartbeat for a third of the lease) or expired; each with the command that
    answers it."""
    return show("inbox", {"here": here}, as_json, render)


def render(document: dict[str, Any]) -> None:
    items = document["items"]
    if not items:
        click.echo("nothing waits for a human", err=True)
        return
    for item in items:
        click.echo(f"{item['kind']:<13} {item['run']} {item['job'] or '(the run)'} "
                   f"({spoken(item['age_seconds'])}, {item['workflow']} in {item['repo']})")
        click.echo(f"{'':<13} {item['text']}")
        if item["command"]:
            click.echo(f"{'':<13} → {item['command']}")
