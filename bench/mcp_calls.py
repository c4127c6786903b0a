"""An agent's tool calls through ``striatum mcp serve --stdio``, from the MCP SDK's client.

The server is the installed command in a subprocess, spoken to over stdin/stdout by the
SDK's own ``Client`` with the initialize handshake the agent CLIs use. The same verbs are
then called in process through ``server.registry.invoke`` (what the MCP server calls
for each tool) on one open store: the difference is what the MCP face costs a call.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from .common import (
    Context,
    fanout_jobs,
    fresh_database,
    new_repo,
    striatum_argv,
    striatum_env,
    write_workflow,
)

OWNER = "bench-mcp"
VERBS = ("run.status", "job.claim", "job.complete")
OPERATOR_CLAIM = "operator claim"  # leases.claim_next: the claim and its attempt.start
BARE_CLAIM = "claim alone"  # leases.claim: the same claim without the attempt.start


async def _over_stdio(argv: list[str], env: dict[str, str], cwd: str, run: str,
                      calls: int, warmups: int) -> tuple[float, dict[str, list[float]]]:
    """(seconds from spawning the server to its tools listed, per verb the seconds of
    each timed tool call)."""
    from mcp import Client, StdioServerParameters

    times: dict[str, list[float]] = {verb: [] for verb in VERBS}
    server = StdioServerParameters(command=argv[0], args=[*argv[1:], "mcp", "serve", "--stdio"],
                                   env=env, cwd=cwd)
    start = time.perf_counter()
    failed = ""
    async with Client(server, mode="legacy") as client:
        await client.list_tools()
        ready = time.perf_counter() - start

        async def call(i: int, verb: str, **arguments: Any) -> dict[str, Any] | None:
            began = time.perf_counter()
            result = await client.call_tool(verb.replace(".", "_"), arguments)
            spent = time.perf_counter() - began
            if result.is_error:
                nonlocal failed
                failed = f"tool {verb.replace('.', '_')} failed: {result.content}"
                return None
            answer = json.loads(result.content[0].text)  # type: ignore[union-attr]
            if i >= warmups:
                times[verb].append(spent)
            return dict(answer)

        for i in range(warmups + calls):
            if await call(i, "run.status", run=run) is None:
                break
            claim = await call(i, "job.claim", run=run, owner=OWNER)
            if claim is not None and not claim.get("claimed"):
                failed = f"job_claim found nothing: {claim}"
            if failed or claim is None or await call(
                    i, "job.complete", run=run, job=claim["job"], lease=claim["lease"]) is None:
                break
    # Raised out here, not in the client's task group, which would wrap it in a group.
    if failed:
        raise RuntimeError(failed)
    return ready, times


def _in_process(store: Any, repo: str, run: str, other: str, calls: int, warmups: int
                ) -> dict[str, list[float]]:
    from striatum.runtime import leases
    from striatum.server.registry import VERBS as REGISTRY
    from striatum.server.registry import Session, invoke

    session = Session(repo, lambda: store, lambda: {"face": "bench"})
    times: dict[str, list[float]] = {verb: [] for verb in (*VERBS, OPERATOR_CLAIM,
                                                           BARE_CLAIM)}

    def call(i: int, verb: str, **arguments: Any) -> dict[str, Any]:
        began = time.perf_counter()
        answer = invoke(REGISTRY[verb], arguments, session)
        if i >= warmups:
            times[verb].append(time.perf_counter() - began)
        return answer

    for i in range(warmups + calls):
        call(i, "run.status", run=run)
        claim = call(i, "job.claim", run=run, owner=OWNER)
        if not claim.get("claimed"):
            raise RuntimeError(f"job.claim found nothing: {claim}")
        call(i, "job.complete", run=run, job=claim["job"], lease=claim["lease"])
        # The operator's claim as job.claim's core makes it (claim_next: the claim and
        # its attempt.start, one statement), and the claim alone, without that record.
        for kind in (OPERATOR_CLAIM, BARE_CLAIM):
            began = time.perf_counter()
            taken = leases.claim_next(store, other, owner=OWNER, lane=None) \
                if kind == OPERATOR_CLAIM else leases.claim(store, other, owner=OWNER)
            if i >= warmups:
                times[kind].append(time.perf_counter() - began)
            if not isinstance(taken, leases.Claim):
                raise RuntimeError(f"{kind} found nothing")
            leases.complete(store, other, taken.job, taken.token)
    return times


def figure_mcp(ctx: Context) -> dict[str, Any]:
    import anyio

    from striatum.runtime.store import Store

    from .figures import ready_fanout, row

    calls = 15 if ctx.quick else 50
    warmups = 3
    ready: list[float] = []
    stdio: dict[str, list[float]] = {verb: [] for verb in VERBS}
    local: dict[str, list[float]] = {verb: [] for verb in (*VERBS, OPERATOR_CLAIM,
                                                           BARE_CLAIM)}
    jobs = 2 * ctx.repeat * (calls + warmups) + 2
    with fresh_database(ctx) as dsn:
        store = Store.connect(dsn)
        try:
            repo = new_repo(ctx, "mcp")
            workflow = write_workflow(ctx.tmp, "mcp-fanout", fanout_jobs(jobs), ["true"])
            run = ready_fanout(store, str(workflow), str(repo))
            # A run of their own for the two claims compared below: the first run keeps
            # its size, which run_status reads whole.
            other = ready_fanout(store, str(workflow), str(repo))
            env = striatum_env(dsn, ctx)
            for _ in range(ctx.repeat):
                # Interleaved, so that drifting load hits both ways alike.
                seconds, times = anyio.run(_over_stdio, striatum_argv(), env, str(repo), run,
                                           calls, warmups)
                ready.append(seconds * 1000)
                for verb, spent in times.items():
                    stdio[verb].append(statistics.median(spent) * 1000)
                for verb, spent in _in_process(store, str(repo), run, other, calls,
                                               warmups).items():
                    local[verb].append(statistics.median(spent) * 1000)
        finally:
            store.close()
    rows = []
    for verb in VERBS:
        tool = verb.replace(".", "_")
        rows.append(row(f"MCP tool call {tool} (stdio, SDK client, median of {calls})", "ms",
                        stdio[verb], higher_is_better=False, key=f"mcp {verb}"))
        rows.append(row(f"  {verb} in process (registry.invoke, open store)", "ms",
                        local[verb], who="reference", higher_is_better=False,
                        key=f"local {verb}"))
    rows.append(row("an operator's claim in process, with its attempt.start "
                    "(leases.claim_next)", "ms", local[OPERATOR_CLAIM], higher_is_better=False,
                    key="local operator claim", detail=True))
    rows.append(row("  the same claim without the attempt.start (leases.claim)", "ms",
                    local[BARE_CLAIM], who="reference", higher_is_better=False,
                    key="local claim alone"))
    overhead = [statistics.mean(stdio[verb][i] - local[verb][i] for verb in VERBS)
                for i in range(ctx.repeat)]
    rows.append(row("the MCP face's cost per call (stdio - in process, mean of the three)",
                    "ms", overhead, higher_is_better=False, key="mcp overhead",
                    detail=True))
    rows.append(row("server start: spawn -> initialize -> tools listed", "ms", ready,
                    higher_is_better=False, key="mcp start"))
    return {"rows": rows, "raw": {"stdio_ms": stdio, "in_process_ms": local,
                                  "start_ms": ready},
            "notes": [
        f"`{' '.join(striatum_argv())} mcp serve --stdio` (STRIATUM_DSN set, this checkout "
        "on PYTHONPATH) driven by the MCP Python SDK's `Client` over stdio with the "
        "initialize handshake the agent CLIs use (mode legacy); per repetition a new "
        f"server, {warmups} untimed rounds, then {calls} timed rounds of run_status -> "
        "job_claim -> job_complete on a fan-out whose tasks are all ready; each row is the "
        "median of the per-repetition medians. The same rounds then in process "
        "(`registry.invoke` on one open store, the call each tool makes): the difference "
        "is the MCP face (JSON-RPC framing, the SDK's schema checks of the arguments and "
        "of the result, the pipe) plus the server's own connection."]}
