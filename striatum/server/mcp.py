"""The MCP server: the registry's verbs as tools, its resources as resource templates.

Generated from ``registry``, with nothing about any one verb here: a tool per
verb the server's capability permits, named ``noun_verb`` (``run_status``:
the model APIs behind the agent CLIs take only ``[A-Za-z0-9_-]`` in a tool's
name), its input schema the verb's parameter schema, its output schema the
verb's result schema. A call returns the verb's document as structured content
and as JSON text; a striatum error returns ``isError`` with a line naming the
error, then the error's JSON document (``{"error": code, "message", "hint",
"details"}``), the one the CLI prints on stderr with ``--json``.

Each call runs in a worker thread on a connection lent by the server's pool
(``gate.Pool``, the daemon's), opened at the first call that needs the database
and kept for the server's life: a call costs its queries, not a login. The
pool checks a connection as it lends it (one killed or dropped since is
replaced), rolls back what a call left open as it takes it back, and lends at
most ``CONNECTIONS`` at once (further concurrent calls wait their turn). On the
embedded server, one found stopped is started again, as for any CLI command.
Calls run on behalf of ``STRIATUM_ACTOR`` (else user@host) followed by " mcp":
the name the core's audit rows give the caller. On stdio alone, the server runs in its
client's session, whose environment states what a call leaves out (``stated``:
``STRIATUM_MODEL``); over HTTP it serves other processes, and fills in nothing.

Started inside a lane (``lane_socket``: the lane's ``STRIATUM_SOCKET``), the server
opens no database: it holds the lease capability, lists the lease verbs alone, and
sends each call to the worker's lane socket, where the lease in its parameters is
checked, the call audited and the verb run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server import MCPServer
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp_types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    InputRequiredResult,
    TextContent,
    Tool,
    ToolAnnotations,
)
from mcp_types import ResourceTemplate as MCPResourceTemplate

from .. import __version__
from ..errors import NotFound, StriatumError, UsageError
from . import registry
from .registry import Capability, Resource, Session, Verb, tool_name

if TYPE_CHECKING:
    from mcp.server.mcpserver.context import Context
    from pydantic.networks import AnyUrl

    from ..runtime.store import Store
    from .gate import Pool

logger = logging.getLogger(__name__)
CONNECTIONS = 4  # the most calls served at once; an agent session rarely makes two
WAIT = 5.0  # seconds a call waits for a connection when all are in use (then: busy)
RESOURCE_NOT_FOUND = -32002  # the code MCP gives a resource that does not exist
INSTRUCTIONS = (
    "striatum coordinates workflows of AI coding agents on PostgreSQL. Check a workflow with "
    "workflow_validate / workflow_lint / workflow_plan; run one with run_prepare (start=true); "
    "take work with job_claim, which returns a lease token; publish artifacts, then end the "
    "job with job_complete (a task) or job_verdict (a review), passing run, job and lease. "
    "run_status shows where a run stands, run_waiting what waits for a human. An error "
    "result is JSON with a stable code (lease_lost: stop work on that job).")


def actor() -> str:
    """Who the audit rows name for this server's calls."""
    from ..runtime.audit import default_actor

    return f"{default_actor()} mcp"


def tool(verb: Verb) -> Tool:
    return Tool(name=tool_name(verb), title=verb.name, description=verb.summary,
                input_schema=verb.params, output_schema=verb.result,
                annotations=ToolAnnotations(read_only_hint=not verb.mutates,
                                            open_world_hint=False),
                _meta={"striatum/verb": verb.name, "striatum/capability": verb.capability})


def stated(verb: Verb, arguments: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` with what this session's environment states for the parameters the
    call leaves out (``Verb.environ``): for a server that runs in the agent's session
    (``StriatumMCP.in_session``)."""
    said = {key: os.environ[variable] for key, variable in verb.environ
            if arguments.get(key) is None and os.environ.get(variable)}
    return {**arguments, **said}


def failure(document: dict[str, Any]) -> CallToolResult:
    """An error result: a line saying it, then the error's JSON document. The line comes
    first because Gemini CLI takes a result's first text, when it parses as JSON, for the
    structured content it lacks, checks that against the tool's output schema, and tells
    its model of that mismatch instead of the error."""
    said = f"striatum error {document['error']}: {document.get('message', '')}"
    return CallToolResult(content=[TextContent(type="text", text=said),
                                   TextContent(type="text", text=_json(document))],
                          is_error=True)


def _json(document: Any) -> str:
    # On one line: json's C encoder, not its Python one that indenting takes (5 ms against
    # 1 ms for a 320-job run_status), and a third fewer bytes in the model's context.
    return json.dumps(document, ensure_ascii=False)


class StriatumMCP(MCPServer[Any]):
    """The server for one repository and one database, holding ``capability``."""

    def __init__(self, repo: str, dsn: str | None, *, capability: Capability = "principal",
                 caller: str | None = None, lane_socket: str | None = None) -> None:
        if lane_socket is not None:
            capability = "lease"
        only = "" if capability == "principal" else (
            f" This server holds the {capability} capability: it offers only the tools "
            "that capability permits.")
        super().__init__("striatum", version=__version__, instructions=INSTRUCTIONS + only,
                         log_level="WARNING")
        self.repo = os.path.abspath(repo)
        self.dsn = dsn
        self.lane_socket = lane_socket
        self.caller = caller or actor()
        # Whether this server runs in its one client's session (stdio, ``serve_stdio``),
        # so that its environment states what the session's calls leave out; a server of
        # other processes (HTTP) fills nothing from its own.
        self.in_session = False
        self.tools = {tool_name(verb): verb for verb in registry.permitted(capability)}
        self.readable = [(UriTemplate.parse(r.uri), r) for r in registry.RESOURCES
                         if r.capability in registry.COVERS[capability]]
        # Opening is serialized: the first calls may find the embedded server stopped, and
        # only one of them may start it, and open the one pool.
        self._opening = threading.Lock()
        self._pool: Pool | None = None
        self._started = (datetime.now(UTC), time.monotonic())

    def _describe(self) -> dict[str, Any]:
        from ..runtime.config import describe

        return {"face": "mcp", "pid": os.getpid(), "version": __version__,
                "started_at": self._started[0].isoformat(timespec="seconds"),
                "uptime_seconds": int(time.monotonic() - self._started[1]),
                "database": describe(self.dsn), "socket": None}

    def _connections(self) -> Pool:
        """The pool, opened by the first call: after a check of the schema (migrated if
        it is behind), as the daemon does at its start."""
        with self._opening:
            if self._pool is None:
                from ..runtime.config import checked
                from .gate import Pool

                database = checked(self.dsn)
                self._pool = Pool(database.dsn, CONNECTIONS, timeout=WAIT,
                                  name="striatum mcp", embedded=database.embedded)
            return self._pool

    def _run(self, call: Any, *args: Any) -> Any:
        # The pool is asked for a connection when the verb first needs the database: a
        # call refused on its arguments, or one that reads a file alone, needs none.
        lent: list[Callable[[], Store]] = []
        with contextlib.ExitStack() as returned:
            def store() -> Store:
                if not lent:
                    lent.append(returned.enter_context(
                        self._connections().lend(self.caller)))
                return lent[0]()

            return call(Session(self.repo, store, self._describe), *args)

    def close(self) -> None:
        """Close the pool's connections (the server's transports do, as they end)."""
        with self._opening:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _through_lane(self, verb: Verb, arguments: dict[str, Any]) -> Any:
        from pathlib import Path

        from .client import Client

        assert self.lane_socket is not None
        with Client(holding="none", socket_path=Path(self.lane_socket), actor=self.caller,
                    repo=self.repo) as client:
            return client.call(verb.name, arguments)

    # -- tools ---------------------------------------------------------------------------------

    async def list_tools(self) -> list[Tool]:
        return [tool(verb) for verb in self.tools.values()]

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context[Any, Any] | None = None
                        ) -> CallToolResult | InputRequiredResult:
        verb = self.tools.get(name)
        if verb is None:
            return failure(UsageError(f"no tool {name!r}",
                                      hint="tools/list names the tools").to_json())
        try:
            if self.lane_socket is not None:
                document = await anyio.to_thread.run_sync(self._through_lane, verb, arguments)
            else:
                document = await anyio.to_thread.run_sync(
                    self._run, lambda session, args: registry.invoke(verb, args, session),
                    stated(verb, arguments) if self.in_session else arguments)
        except StriatumError as exc:
            return failure(exc.to_json())
        except Exception as exc:  # a bug: logged, and the caller gets an error result
            logger.exception("tool %s failed", name)
            return failure({"error": "internal", "message": f"internal error: "
                            f"{type(exc).__name__}: {exc}"})
        return CallToolResult(content=[TextContent(type="text", text=_json(document))],
                              structured_content=document)

    # -- resources -----------------------------------------------------------------------------

    async def list_resource_templates(self) -> list[MCPResourceTemplate]:
        return [MCPResourceTemplate(uri_template=r.uri, name=r.name, description=r.summary,
                                    mime_type=r.mime_type) for _, r in self.readable]

    async def read_resource(self, uri: AnyUrl | str, context: Context[Any, Any] | None = None
                            ) -> Iterable[ReadResourceContents] | InputRequiredResult:
        address = str(uri)
        for template, resource in self.readable:
            found = template.match(address)
            if found is not None:
                params = {key: str(value) for key, value in found.items()}
                return [await self._read(resource, params, address)]
        raise MCPError(RESOURCE_NOT_FOUND, f"no resource {address}",
                       {"uri": address, "templates": [r.uri for _, r in self.readable]})

    async def _read(self, resource: Resource, params: dict[str, str], address: str
                    ) -> ReadResourceContents:
        try:
            content = await anyio.to_thread.run_sync(self._run, resource.read, params)
        except StriatumError as exc:
            code = RESOURCE_NOT_FOUND if isinstance(exc, NotFound) else (
                INVALID_PARAMS if isinstance(exc, UsageError) else INTERNAL_ERROR)
            raise MCPError(code, exc.message, {"uri": address, **exc.to_json()}) from exc
        return ReadResourceContents(content=content.data, mime_type=content.mime_type)


def serve_stdio(server: StriatumMCP) -> None:
    server.in_session = True  # its client started it, in its own environment
    try:
        anyio.run(server.run_stdio_async)
    finally:
        server.close()


def serve_http(server: StriatumMCP, host: str, port: int) -> None:
    """Streamable HTTP on a loopback address: the SDK then checks the Host and Origin
    headers of every request (its DNS-rebinding protection). Ctrl-C stops it, once the
    requests in progress are answered."""
    # uvicorn shuts down on SIGINT, then raises it again: the stop asked for, not an error.
    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(lambda: server.run_streamable_http_async(host=host, port=port))
    finally:
        server.close()
