"""``striatum serve --web``: the human's web UI on a loopback address (docs/HOW_TO_HUMAN.md).

Starlette and uvicorn are imported here, when the server starts, never by another
command.
"""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_OK, UsageError
from .output import emit_json, json_option
from .session import settings


@click.command()
@click.option("--web", is_flag=True,
              help="Serve the web UI (the one face `serve` offers today).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on: loopback only (127.0.0.1, ::1, localhost).")
@click.option("--port", default=8766, show_default=True, type=click.IntRange(1, 65535),
              help="The port.")
@click.option("--allow-mutations", is_flag=True,
              help="Let the pages act (decide a checkpoint, resume, cancel, release a "
                   "lease) as the principal; without it they only show.")
@click.option("--notify", "notify", default=None, metavar="CMD",
              help="Run CMD (through sh -c) with each new inbox item as JSON on stdin.")
@json_option
def serve(web: bool, host: str, port: int, allow_mutations: bool, notify: str | None,
          as_json: bool) -> int:
    """Serve the web UI: runs, a run's live graph, jobs, events, the inbox.

    Every page reads through the registry's verbs and every action is one, audited as
    web:USER@HOST, exactly as the daemon's calls are.
    """
    if not web:
        raise UsageError("say which face to serve", hint="striatum serve --web")
    from ..server.place import runtime_dir
    from ..web.guard import check_loopback, check_port
    from ..web.server import serve as run_server
    from ..web.server import url

    check_loopback(host)
    check_port(host, port)
    _, dsn = settings()
    address = url(host, port)

    def announce() -> None:
        if as_json:
            emit_json({"url": address, "mutations": allow_mutations})
            sys.stdout.flush()
        else:
            mode = "actions on" if allow_mutations else "read only"
            click.echo(f"striatum web UI at {address} ({mode}); Ctrl-C stops it", err=True)

    run_server(dsn, runtime_dir(), host, port, mutations=allow_mutations, announce=announce,
               notify=notify)
    return EXIT_OK
