"""A run named on the command line: its id, a unique prefix or suffix of it, or
``latest``. A whole id goes through untouched (no database read), so the agent loop's
verbs, which always pass whole ids, pay nothing for the shorthand. Any other name is
resolved once every argument has been checked (``ResolvingCommand``): a bad option
is a usage error before a database is looked for. The ``run.resolve`` verb resolves
it, through the daemon when it serves the database (``calls``), as the command's own
verb goes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from .fastpath import WHOLE_ID

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem


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
            from .calls import calls

            # As the command's verb goes: through the daemon when it serves this database.
            with calls() as call:
                for key, value in pending.items():
                    ctx.params[key] = call("run.resolve", {"run": str(value)})["run"]
        return super().invoke(ctx)


class ResolvingGroup(click.Group):
    """A noun whose verbs resolve their run names (``ResolvingCommand``)."""

    command_class = ResolvingCommand


RUN = RunRef()
