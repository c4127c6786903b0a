"""The ``striatum`` command: global options, the noun groups, and exit codes.

Commands return an exit code; every expected failure is a StriatumError that
carries its own code (docs/cli.md), and nothing reaches the user as a
traceback (set STRIATUM_DEBUG=1 to see one for an internal error).
"""

from __future__ import annotations

import gc
import os
import sys

import click

from .. import __version__
from ..errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_USAGE, StriatumError, UsageError
from .invocation import Invocation, current
from .output import diagnostic_line, json_in_argv, write_error

# name -> (module, attribute, one-line help). Subcommands are imported only
# when used, so `striatum --help` and every verb pay for one noun's imports.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "workflow": ("workflow", "workflow", "Author, check and dry-run workflows (no database)."),
    "run": ("run", "run", "Runs: prepare, check, start, work, status, list, events, waiting, "
                          "cancel, resume, retry."),
    "job": ("job", "job", "Jobs: claim, heartbeat, publish, verdict, complete, release, fail, "
                          "escalate."),
    "checkpoint": ("checkpoint", "checkpoint", "Checkpoints: decide."),
    "inbox": ("inbox", "inbox", "Everything that waits for a human, across runs."),
    "why": ("why", "why", "What holds a run, exactly, and the command that moves it."),
    "stats": ("stats", "stats", "How each reviewer did, across runs: verdicts, revision "
              "depth, time per accepted review."),
    "dashboard": ("dashboard", "dashboard", "A live terminal view of the runs, their jobs by "
                  "wave, what holds them, and the inbox."),
    "lane": ("lane", "lane", "Lanes: preset (a lane that runs claude, codex or gemini)."),
    "worker": ("work", "worker", "Claim ready command-lane jobs, run them, finish them."),
    "db": ("db", "db", "The database: migrate, url, status, stop."),
    "doctor": ("doctor", "doctor", "Verify the record: chains, replay, guards, manifests."),
    "corpus": ("corpus", "corpus", "Provenance to hand over: export runs as a bundle, verify "
               "one offline."),
    "skills": ("agents", "skills", "The striatum skill for agent CLIs: install."),
    "adopt": ("agents", "adopt", "Wire a repository up for Claude Code, Codex or Gemini CLI."),
    "mcp": ("mcp", "mcp", "The MCP server: every verb a tool (mcp serve)."),
    "daemon": ("daemon", "daemon", "The daemon: the verbs on a UNIX socket (start, stop, "
               "status)."),
    "serve": ("serve", "serve", "The web UI on a loopback address (serve --web)."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        import importlib

        module, attribute, _ = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(f"striatum.cli.{module}"),
                                         attribute)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, _, text) in COMMANDS.items()])


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="striatum")
@click.option("--repo", default=".", envvar="STRIATUM_REPO", show_default=True,
              type=click.Path(file_okay=False), help="The target repository.")
@click.option("--dsn", envvar="STRIATUM_DSN", default=None,
              help="PostgreSQL DSN (default: a private embedded server).")
@click.option("--direct", is_flag=True, envvar="STRIATUM_DIRECT",
              help="Open the database here even when the daemon serves it (default: the "
                   "verbs go through a running daemon of the same database).")
@click.pass_context
def cli(ctx: click.Context, repo: str, dsn: str | None, direct: bool) -> None:
    """Coordinate terminal AI coding agents: compiled workflows with bounded review loops.

    \b
    Author a workflow:  striatum workflow init --style code-change DIR
    Check it:           striatum workflow validate|lint|plan|graph DIR/workflow.json
    Run it:             striatum run prepare --workflow DIR/workflow.json --start
    Drive it:           striatum job claim --run RUN; job publish|verdict|complete
    Verify the record:  striatum doctor
    Every verb takes --json; exit codes are listed in docs/cli.md.
    """
    gc.enable()  # held off while the process imported (``entry``)
    invocation = current(ctx)
    invocation.repo, invocation.dsn, invocation.direct = repo, dsn, direct


def main(argv: list[str] | None = None) -> None:
    """The process's entry point (``run`` is the same CLI, for use in-process)."""
    code = run(argv)
    # Exiting, the interpreter takes apart every module it imported, and the
    # cycles among their objects (classes, functions and their globals) need a
    # full collection: 50-80 ms of a 300 ms verb, to free memory the OS takes
    # back anyway. Frozen objects are left alone; atexit handlers and the
    # flushing of stdout and stderr still run.
    gc.freeze()
    sys.exit(code)


def _undecodable(argv: list[str]) -> int | None:
    """Index of the first argument that was not valid UTF-8 (Python keeps such bytes
    as lone surrogates, which no database, hash or file name here can take)."""
    for index, arg in enumerate(argv):
        if any("\udc80" <= ch <= "\udcff" for ch in arg):
            return index
    return None


def _usage_error(exc: click.ClickException) -> UsageError:
    """click's refusal of a command line, as striatum's own usage error."""
    ctx = getattr(exc, "ctx", None)
    return UsageError(exc.format_message(),
                      hint=f"see `{ctx.command_path} --help`" if ctx is not None else None)


def _interrupted(word: str, as_json: bool) -> int:
    if as_json:
        write_error(word, None, {"error": "interrupted", "message": word}, as_json=True)
    else:
        click.echo(f"striatum: {word}", err=True)
    return EXIT_INTERRUPTED


def run(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    invocation = Invocation()
    # When click cannot parse a command line, --json may not have been parsed either.
    unparsed_json = json_in_argv(args)
    bad = _undecodable(args)
    if bad is not None:
        write_error(f"argument {bad + 1} is not valid UTF-8: {args[bad]!r}",
                    "pass names, ids and paths as UTF-8 text",
                    {"error": "usage", "message": f"argument {bad + 1} is not valid UTF-8"},
                    as_json=unparsed_json)
        return EXIT_USAGE
    try:
        result = cli.main(args=args, prog_name="striatum", standalone_mode=False,
                          obj=invocation)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        if invocation.json or unparsed_json:
            usage = _usage_error(exc)
            write_error(usage.message, usage.hint, usage.to_json(), as_json=True)
        else:
            exc.show()
        return EXIT_USAGE
    except click.exceptions.Abort:
        return _interrupted("aborted", invocation.json or unparsed_json)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the last line of defence
        return failed(exc, invocation.json, invocation.json or unparsed_json)
    return int(result) if isinstance(result, int) else 0


def failed(exc: BaseException, as_json: bool, json_in_args: bool) -> int:
    """What a command that raised ``exc`` says, and its exit code: ``as_json``, the
    command's --json was parsed; ``json_in_args``, --json is among its arguments."""
    if isinstance(exc, StriatumError):
        if not as_json:
            # An invalid workflow met by a verb other than validate (run prepare): its
            # diagnostics, as validate prints them, rather than a pointer to validate.
            for found in exc.details.get("diagnostics") or []:
                click.echo(diagnostic_line(found), err=True)
            for found in exc.details.get("preflight") or []:
                click.echo(f"{found['severity']}: {found['message']}", err=True)
        write_error(exc.message, exc.hint, exc.to_json(), as_json=as_json)
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return _interrupted("interrupted", json_in_args)
    if isinstance(exc, BrokenPipeError):
        # The reader went away (e.g. `| head`); nothing left to tell it.
        sys.stderr.close()
        return 0
    if os.environ.get("STRIATUM_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    write_error(f"internal error: {type(exc).__name__}: {exc}",
                "this is a bug in striatum; rerun with STRIATUM_DEBUG=1 and report the "
                "traceback", {"error": "internal", "message": str(exc)}, as_json=as_json)
    return EXIT_INTERNAL
