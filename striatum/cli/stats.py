"""``striatum stats``: how each reviewer did, across runs."""

from __future__ import annotations

from typing import Any

import click

from .output import json_option
from .verbs import show


@click.command()
@click.option("--here", is_flag=True, help="Only the runs of this repository (--repo).")
@json_option
def stats(here: bool, as_json: bool) -> int:
    """Per author lane → reviewer lane: verdicts, needs_revision rate, revision depth, and
    time per accepted review; each checkpoint's decisions. Cost is not recorded, so it is
    shown as unknown."""
    return show("stats", {"here": here}, as_json, render)


def _figure(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:g}{unit}"


def render(document: dict[str, Any]) -> None:
    if not document["pairs"] and not document["checkpoints"]:
        click.echo("no review has given a verdict and no checkpoint was reached yet", err=True)
        return
    for pair in document["pairs"]:
        counts = ", ".join(f"{name} {n}" for name, n in pair["verdicts"].items())
        click.echo(f"{pair['author_lane']} → {pair['reviewer_lane']}: {pair['reviews']} "
                   f"review(s) in {pair['runs']} run(s); {counts}")
        click.echo(f"  needs_revision rate {_figure(pair['needs_revision_rate'])}, revision "
                   f"depth mean {_figure(pair['revision_depth_mean'])} max "
                   f"{pair['revision_depth_max']}, {pair['accepted']} accepted, "
                   f"{_figure(pair['seconds_per_accepted'], ' s')} per accepted, cost "
                   f"{_figure(pair['cost_per_accepted'])}")
    for point in document["checkpoints"]:
        chosen = ", ".join(f"{name} {n}" for name, n in point["choices"].items()) or "none"
        click.echo(f"checkpoint {point['job']} ({point['lane']}): {point['runs']} run(s), "
                   f"{point['decided']} decided ({chosen}), {point['waiting']} waiting, "
                   f"{point['skipped']} skipped")
    if not document["cost_known"]:
        click.echo("cost: unknown (no usage is recorded)", err=True)
