"""``striatum skills install`` and ``striatum adopt``: what a repository needs for the agent
CLIs that work it (files only, but for adopt's registration of the repository)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_OK
from .output import emit_json, json_option
from .session import settings, store

PROFILE_CHOICES = ("claude_code", "codex", "gemini", "all")
profile_option = click.option(
    "--profile", type=click.Choice(PROFILE_CHOICES), required=True,
    help="Which agent CLI the repository is for (all: Claude Code, Codex and Gemini CLI).")


@click.group()
def skills() -> None:
    """The striatum skill: install."""


@skills.command()
@profile_option
@json_option
def install(profile: str, as_json: bool) -> int:
    """Write the striatum skill where the profile's CLI reads it, in --repo."""
    from ..agents.skills import install as plan

    root = Path(settings()[0])
    return _carry_out(root, plan(root, profile), profile, dry_run=False, as_json=as_json)


@click.command()
@profile_option
@click.option("--dry-run", is_flag=True, help="Show what would change (a diff); change nothing.")
@click.option("--mcp-command", default="striatum", show_default=True,
              help="How the CLI starts the MCP server (a name on PATH, or a full path).")
@json_option
def adopt(profile: str, dry_run: bool, mcp_command: str, as_json: bool) -> int:
    """Wire --repo up for an agent CLI: skill, instructions, MCP server, .gitignore, and
    the repository registered with the database. Running it again changes nothing."""
    from ..agents.adopt import plan
    from ..runtime.runs import register_repo

    root = Path(settings()[0])
    planned = plan(root, profile, mcp_command)
    if not dry_run:
        with store() as opened:
            register_repo(opened, str(root))
    return _carry_out(root, planned, profile, dry_run=dry_run, as_json=as_json)


def _carry_out(root: Path, planned: list[Any], profile: str, *, dry_run: bool,
               as_json: bool) -> int:
    changing = [each for each in planned if each.changes]
    if not dry_run:
        for each in changing:
            each.apply()
    if as_json:
        emit_json({"profile": profile, "repo": str(root), "dry_run": dry_run,
                   "files": [{"path": str(each.path.relative_to(root)),
                              "changed": each.changes,
                              "diff": each.diff(root) if dry_run and each.changes else None}
                             for each in planned]})
    elif dry_run:
        for each in changing:
            click.echo(each.diff(root), nl=False)
        if not changing:
            click.echo("nothing to change", err=True)
    else:
        for each in planned:
            state = ("created" if each.before is None else "updated") if each.changes \
                else "up to date"
            click.echo(f"{state:<10} {each.path.relative_to(root)}")
    return EXIT_OK
