"""``striatum lane preset``: a lane that runs a real agent CLI headless (no database)."""

from __future__ import annotations

import click

from ..compiler.presets import CLIS, ROLES
from ..errors import EXIT_OK
from .output import emit_json, json_option


@click.group()
def lane() -> None:
    """Lanes: preset."""


@lane.command()
@click.argument("cli", type=click.Choice(list(CLIS)))
@click.option("--role", type=click.Choice(ROLES), default="author", show_default=True,
              help="author: may change the repository; reviewer: may not, where the CLI "
                   "can be told so, and still records its verdict.")
@click.option("--model", default=None, help="The model, with the CLI's own flag.")
@json_option
def preset(cli: str, role: str, model: str | None, as_json: bool) -> int:
    """Print the lane (a workflow's lane object, JSON) that runs CLI headless."""
    from ..compiler.fmt import format_value
    from ..compiler.presets import preset as make

    document = make(cli, role, model)
    if as_json:
        emit_json(document)
    else:
        click.echo(format_value(document))
    return EXIT_OK
