"""``striatum mcp serve``: the MCP server, every registry verb a tool (docs/surfaces.md).

The MCP SDK is imported here, when the server starts, never by another command.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import EXIT_OK, UsageError
from .output import emit_json, json_option
from .session import settings

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@click.group()
def mcp() -> None:
    """The MCP server: serve."""


@mcp.command()
@click.option("--stdio", "transport", flag_value="stdio", default=True,
              help="Speak MCP on stdin/stdout (the default; how agent CLIs start a server).")
@click.option("--http", "transport", flag_value="http",
              help="Serve streamable HTTP at http://HOST:PORT/mcp instead.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="With --http: the address to listen on, loopback only "
                   "(127.0.0.1, ::1 or localhost).")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(1, 65535),
              help="With --http: the port.")
@click.option("--read-only", is_flag=True,
              help="Offer only the verbs that change nothing (the viewer capability).")
@json_option
def serve(transport: str, host: str, port: int, read_only: bool, as_json: bool) -> int:
    """Serve every verb as an MCP tool, and runs, prompts and artifacts as resources.

    With --stdio, stdout carries the protocol alone (with --json, errors are JSON on
    stderr); with --http, --json prints where it listens as one JSON document.
    Calls are audited as $STRIATUM_ACTOR (else user@host) followed by " mcp".
    Inside a lane ($STRIATUM_SOCKET set) it opens no database: it offers the lease verbs
    alone, each called on the worker's lane socket.
    """
    if transport == "http" and host not in LOOPBACK:
        raise UsageError(f"--host {host}: the MCP server listens on a loopback address only",
                         hint="it asks no credentials: whoever reaches it acts as you. Use "
                              "--host 127.0.0.1 (or ::1, localhost)")
    from ..server.mcp import StriatumMCP, serve_http, serve_stdio

    repo, dsn = settings()
    server = StriatumMCP(repo, dsn, capability="viewer" if read_only else "principal",
                         lane_socket=os.environ.get("STRIATUM_SOCKET") or None)
    if transport == "stdio":
        serve_stdio(server)
        return EXIT_OK
    where = f"[{host}]" if ":" in host else host
    url = f"http://{where}:{port}/mcp"
    if as_json:
        emit_json({"transport": "http", "url": url, "tools": len(server.tools),
                   "read_only": read_only})
        sys.stdout.flush()
    else:
        click.echo(f"striatum MCP server at {url} ({len(server.tools)} tools); "
                   "Ctrl-C stops it", err=True)
    serve_http(server, host, port)
    return EXIT_OK
