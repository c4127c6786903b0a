"""A run named on the command line: its id, a unique prefix or suffix of it, or
``latest``. A whole id goes through untouched (no database read), so the agent loop's
verbs, which always pass whole ids, pay nothing for the shorthand. Any other name is
resolved once every argument has been checked (``ResolvingCommand``): a bad option
is a usage error before a database is looked for."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

WHOLE_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")


class RunRef(click.ParamType[str]):
    name = "run"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> str:
        text = str(value)
        return text if WHOLE_ID.fullmatch(text) else PendingRun(text)

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
        """The repository's newest runs that begin with what was typed, and ``latest``."""
        from click.shell_completion import CompletionItem

        from ..errors import StriatumError
        from ..runtime.config import open_store
        from ..runtime.runs import list_runs

        # Completion parses without running the root command, so its --repo and --dsn
        # are read from the parsed parameters rather than from what it would have set.
        root = ctx.find_root().params
        try:
            opened = open_store(root.get("dsn"))
            try:
                found = list_runs(opened, str(root.get("repo") or "."), 50)
            finally:
                opened.close()
        except StriatumError:  # no database to ask: nothing to offer, and no noise
            return []
        items = [CompletionItem(r["run"], help=f"{r['status']} {r['workflow']}")
                 for r in found if r["run"].startswith(incomplete)]
        if "latest".startswith(incomplete):
            items.insert(0, CompletionItem("latest", help="the repository's newest run"))
        return items


class PendingRun(str):
    """A run's name that is not its whole id, resolved before the command runs."""


class ResolvingCommand(click.Command):
    """A command whose run names are resolved after all its parameters were checked."""

    def invoke(self, ctx: click.Context) -> Any:
        pending = {key: value for key, value in ctx.params.items()
                   if isinstance(value, PendingRun)}
        if pending:
            from ..runtime.runs import resolve_run
            from .session import settings, store

            with store() as opened:
                for key, value in pending.items():
                    ctx.params[key] = resolve_run(opened, str(value), settings()[0])
        return super().invoke(ctx)


class ResolvingGroup(click.Group):
    """A noun whose verbs resolve their run names (``ResolvingCommand``)."""

    command_class = ResolvingCommand


RUN = RunRef()
