"""The MCP server through the SDK's own client, in process, in both protocol modes: the
direct dispatch of today's protocol ("auto") and the initialize handshake the agent CLIs
use ("legacy"). Its tools are the registry's verbs; a whole code-change run is driven by
tool calls alone; a stale lease is a tool error carrying the stable code; the audit names
the MCP caller; runs, prompts and artifacts read as resources.

The client lists the tools before any call, so it checks every result against the tool's
output schema (the registry's result schema) as it arrives.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, MCPError
from mcp_types import TextResourceContents

from striatum.runtime import leases
from striatum.runtime.attempt import _job_env
from striatum.runtime.store import Store
from striatum.server import mcp as mcp_server
from striatum.server.lanegate import LaneGate
from striatum.server.mcp import CONNECTIONS, RESOURCE_NOT_FOUND, StriatumMCP
from striatum.server.registry import RESOURCES, VERBS, permitted, tool_name

from .helpers import example, expire_lease, owner_connection, start_run
from .worker_helpers import events_of, write_workflow
from .worker_helpers import start_run as start_with_lanes

pytestmark = pytest.mark.anyio
NOWHERE = "host=127.0.0.1 port=1 connect_timeout=1"  # for calls that need no database
ACTOR = "mcp-tester"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["auto", "legacy"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(autouse=True)
def actor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIATUM_ACTOR", ACTOR)


@dataclass
class Operator:
    """An agent session with nothing but the server's tools and resources."""

    client: Client
    workdir: Path

    async def call(self, tool: str, **arguments: Any) -> Any:
        result = await self.client.call_tool(tool, arguments)
        assert not result.is_error, result.content
        assert result.structured_content == json.loads(result.content[0].text)
        return result.structured_content

    async def refused(self, tool: str, **arguments: Any) -> Any:
        result = await self.client.call_tool(tool, arguments)
        assert result.is_error and result.structured_content is None, result
        said, document = (item.text for item in result.content)
        # A line first, never JSON: Gemini CLI would take JSON there for structured content
        # and check it against the tool's output schema, hiding the error from its model.
        with pytest.raises(ValueError):
            json.loads(said)
        error = json.loads(document)
        assert said.startswith(f"striatum error {error['error']}: ")
        return error

    async def start(self, shape: str) -> str:
        """A started run of the example ``shape``: its id."""
        return str((await self.call("run_prepare", workflow=example(shape),
                                    start=True))["run_id"])

    async def read(self, uri: str) -> tuple[str, str | None]:
        (content,) = (await self.client.read_resource(uri)).contents
        assert isinstance(content, TextResourceContents), content
        return content.text, content.mime_type

    async def end(self, claim: dict[str, Any], outcome: str = "accept",
                  reason: str = "fine") -> Any:
        """Write and publish what the job produces, then complete it or give the verdict."""
        held = {key: claim[key] for key in ("run", "job", "lease")}
        for name in claim["produces"]:
            written = self.workdir / f"{claim['job']}-{claim['iteration']}-{name}"
            written.write_text(f"{name} of pass {claim['iteration']}\n", encoding="utf-8")
            record = await self.call("job_publish", **held, artifact=str(written), name=name)
            assert (record["path"], record["iteration"]) == (name, claim["iteration"])
        if claim["kind"] != "review":
            return await self.call("job_complete", **held)
        return await self.call("job_verdict", **held, outcome=outcome, reason=reason)


@asynccontextmanager
async def connected(server: StriatumMCP, mode: str, workdir: Path) -> AsyncIterator[Operator]:
    try:
        async with Client(server, mode=mode) as client:
            await client.list_tools()
            yield Operator(client, workdir)
    finally:
        server.close()


def audit_rows(dsn: str) -> list[tuple[str, str, str]]:
    with owner_connection(dsn) as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(
            "SELECT actor, verb, outcome FROM striatum.audit_log ORDER BY seq")]


async def test_one_tool_per_verb_its_schemas_the_registrys(mode: str, tmp_path: Path) -> None:
    async with Client(StriatumMCP(str(tmp_path), NOWHERE), mode=mode) as client:
        tools = (await client.list_tools()).tools
        templates = (await client.list_resource_templates()).resource_templates
    assert [t.name for t in tools] == [tool_name(verb) for verb in VERBS.values()]
    for listed in tools:
        verb = VERBS[listed.title or ""]
        assert listed.name == verb.name.replace(".", "_")
        assert (listed.input_schema, listed.output_schema) == (verb.params, verb.result)
        assert listed.description == verb.summary
        assert listed.annotations is not None
        assert listed.annotations.read_only_hint is not verb.mutates
        assert listed.meta == {"striatum/verb": verb.name, "striatum/capability": verb.capability}
    assert [t.uri_template for t in templates] == [r.uri for r in RESOURCES]


async def test_bad_arguments_and_unknown_tools_are_usage_errors(mode: str,
                                                                tmp_path: Path) -> None:
    async with connected(StriatumMCP(str(tmp_path), NOWHERE), mode, tmp_path) as operator:
        short = await operator.refused("job_heartbeat", run="r", job="j", lease="1-0",
                                       lease_seconds=1)
        assert (short["error"], short["details"]["parameter"]) == ("usage", "lease_seconds")
        assert (await operator.refused("run_stats", run="r"))["error"] == "usage"
        # Checked before the core runs: no database was needed to refuse them.
        unreachable = await operator.refused("run_status", run="r")
        assert unreachable["error"] == "store_unavailable" and unreachable["hint"]
        plan = await operator.call("workflow_plan", file=example("code-change"),
                                   verdicts="check=needs_revision")
        assert plan["walk"]["executions"] == plan["worst_case_job_executions"] == 5


async def test_a_read_only_server_offers_the_viewer_verbs_alone(mode: str,
                                                                tmp_path: Path) -> None:
    server = StriatumMCP(str(tmp_path), NOWHERE, capability="viewer")
    async with connected(server, mode, tmp_path) as operator:
        tools = (await operator.client.list_tools()).tools
        assert [t.name for t in tools] == [tool_name(v) for v in permitted("viewer")]
        assert "holds the viewer capability" in (operator.client.instructions or "")
        refused = await operator.refused("run_prepare", workflow=example("minimal"))
        assert refused["error"] == "usage" and "run_prepare" in refused["message"]


async def test_a_code_change_run_through_mcp_tool_calls_alone(mode: str, dsn: str, repo: Path,
                                                              tmp_path: Path) -> None:
    async with connected(StriatumMCP(str(repo), dsn), mode, tmp_path) as operator:
        prepared = await operator.call("run_prepare", workflow=example("code-change"),
                                       start=True)
        run_id = prepared["run_id"]
        assert (prepared["status"], prepared["worst_case"]) == ("running", 5)

        draft = await operator.call("job_claim", run=run_id, owner="mcp-agent")
        assert (draft["claimed"], draft["job"], draft["iteration"]) == (True, "draft", 0)
        prompt, kind = await operator.read(f"striatum://runs/{run_id}/jobs/draft/prompt")
        assert prompt == Path(draft["prompt_file"]).read_text(encoding="utf-8")
        assert kind == "text/markdown"
        assert (await operator.end(draft))["status"] == "succeeded"

        check = await operator.call("job_claim", run=run_id)
        reason = "name every file the change touches"
        sent_back = await operator.end(check, "needs_revision", reason)
        assert (check["job"], sent_back["status"], sent_back["run_status"]) == (
            "check", "pending", "running")

        redraft = await operator.call("job_claim", run=run_id)
        assert (redraft["job"], redraft["iteration"]) == ("draft", 1)
        prompt, _ = await operator.read(f"striatum://runs/{run_id}/jobs/draft/prompt")
        assert reason in prompt
        await operator.end(redraft)
        recheck = await operator.call("job_claim", run=run_id)
        assert (recheck["job"], recheck["iteration"]) == ("check", 1)
        assert (await operator.end(recheck, "accept", "every file named"))["status"] == \
            "succeeded"
        apply = await operator.call("job_claim", run=run_id)
        done = await operator.end(apply)
        assert (apply["job"], done["status"], done["run_status"]) == (
            "apply", "succeeded", "completed")

        status = await operator.call("run_status", run=run_id)
        assert (status["status"], status["executions"]) == ("completed", 5)
        assert {job["status"] for job in status["jobs"]} == {"succeeded"}
        text, kind = await operator.read(f"striatum://runs/{run_id}")
        assert (json.loads(text), kind) == (status, "application/json")
        text, kind = await operator.read(f"striatum://runs/{run_id}/artifacts/draft.md")
        assert (text, kind) == ("draft.md of pass 1\n", "text/markdown")
        idle = await operator.call("job_claim", run=run_id)
        assert (idle["claimed"], idle["reason"], idle["run_status"]) == (
            False, "run_ended", "completed")
        assert (await operator.call("doctor"))["ok"] is True

    rows = audit_rows(dsn)
    assert {actor for actor, _, _ in rows} == {f"{ACTOR} mcp"}
    assert {outcome for _, _, outcome in rows} == {"ok"}
    verbs = [verb for _, verb, _ in rows]
    assert verbs.count("job claim") == 5 and verbs.count("job publish") == 3
    assert {"run prepare", "run start", "job complete", "job verdict"} <= set(verbs)


def backends(dsn: str) -> list[tuple[int, str]]:
    """The MCP server's sessions on the database: (backend pid, state)."""
    with owner_connection(dsn) as conn:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE application_name = %s "
            "AND datname = current_database() ORDER BY pid", ("striatum mcp",))]


async def test_calls_share_one_kept_connection_that_a_killed_backend_does_not_break(
        mode: str, dsn: str, repo: Path, tmp_path: Path) -> None:
    async with connected(StriatumMCP(str(repo), dsn), mode, tmp_path) as operator:
        run_id = await operator.start("minimal")
        ((kept, state),) = backends(dsn)
        assert state == "idle"  # no transaction left open between calls
        assert (await operator.call("run_status", run=run_id))["status"] == "running"
        assert backends(dsn) == [(kept, "idle")]

        with owner_connection(dsn) as conn:
            assert conn.execute("SELECT pg_terminate_backend(%s)", (kept,)).fetchone() == (
                True,)
        claim = await operator.call("job_claim", run=run_id)
        assert claim["claimed"] is True
        # The pool found it dead as it lent it, and lent another (and refills in the
        # background, hence maybe one more).
        after = backends(dsn)
        assert kept not in {pid for pid, _ in after} and 1 <= len(after) <= 2
        assert {state for _, state in after} == {"idle"}
        assert (await operator.end(claim))["run_status"] == "completed"


async def test_concurrent_calls_each_get_a_connection_of_the_pool(
        mode: str, dsn: str, repo: Path, tmp_path: Path) -> None:
    async with connected(StriatumMCP(str(repo), dsn), mode, tmp_path) as operator:
        run_id = await operator.start("multi-review")
        answers: list[Any] = []

        async def status() -> None:
            answers.append(await operator.call("run_status", run=run_id))

        async with anyio.create_task_group() as calls:
            for _ in range(3 * CONNECTIONS):
                calls.start_soon(status)
        assert [answer["status"] for answer in answers] == ["running"] * 3 * CONNECTIONS
        kept = backends(dsn)
        assert 1 <= len(kept) <= CONNECTIONS
        assert {state for _, state in kept} == {"idle"}


async def test_a_database_that_cannot_be_reached_is_a_tool_error_then_served_once_back(
        mode: str, dsn: str, repo: Path, tmp_path: Path) -> None:
    server = StriatumMCP(str(repo), NOWHERE)
    async with connected(server, mode, tmp_path) as operator:
        refused = await operator.refused("run_list")
        assert refused["error"] == "store_unavailable", refused
        assert refused["message"] and refused["hint"]
        server.dsn = dsn  # the same server, its database back
        assert (await operator.call("run_list"))["runs"] == []


async def test_calls_beyond_the_pool_are_told_the_server_is_busy_not_that_it_cannot_reach(
        mode: str, dsn: str, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_server, "CONNECTIONS", 1)
    monkeypatch.setattr(mcp_server, "WAIT", 0.5)
    server = StriatumMCP(str(repo), dsn)
    async with connected(server, mode, tmp_path) as operator:
        assert (await operator.call("run_list"))["runs"] == []
        with server._connections().lend("a call in progress") as held:
            held()  # the pool's one connection, lent
            refused = await operator.refused("run_list")
        assert refused["error"] == "store_unavailable", refused
        assert refused["message"].startswith("striatum mcp is busy: all 1 of its database "
                                              "connections serve calls in progress")
        assert "cannot reach" not in refused["message"]
        assert "fewer calls at once" in refused["hint"]
        assert refused["details"] == {"busy": True, "connections": 1}
        assert (await operator.call("run_list"))["runs"] == []  # served once one is back


async def test_the_sessions_model_fills_a_claim_only_on_a_server_in_that_session(
        mode: str, dsn: str, store: Store, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """STRIATUM_MODEL states the model of the session that started the server (stdio); a
    server of other processes (HTTP) has its own environment, which states nothing of
    theirs."""
    run_id = start_with_lanes(store, write_workflow(tmp_path / "flow", {
        "name": "two", "lanes": {"op": {"kind": "operator"}},
        "jobs": [{"id": name, "lane": "op", "prompt": {"text": name}}
                 for name in ("one", "two")]}), repo)
    monkeypatch.setenv("STRIATUM_MODEL", "gemini-2.5-pro")
    # Which server is in its client's session is said by how it is served.
    served: list[bool] = []
    for serve, where in ((mcp_server.serve_http, ("127.0.0.1", 0)),
                         (mcp_server.serve_stdio, ())):
        shown = StriatumMCP(str(repo), dsn)
        with monkeypatch.context() as patched:
            patched.setattr(mcp_server.anyio, "run",
                            lambda *_, shown=shown: served.append(shown.in_session))
            serve(shown, *where)
    assert served == [False, True]
    claimed = []
    for in_session in (False, True):
        server = StriatumMCP(str(repo), dsn)
        server.in_session = in_session
        async with connected(server, mode, tmp_path) as operator:
            claimed.append((await operator.call("job_claim", run=run_id, owner="op"))["job"])
    models = {e["job"]: e["payload"]["data"]["model"]
              for e in events_of(store, run_id, kind="attempt.start")}
    assert [models[job] for job in claimed] == [None, "gemini-2.5-pro"]


async def test_a_stale_lease_is_a_tool_error_with_code_lease_lost(mode: str, dsn: str,
                                                                 repo: Path,
                                                                 tmp_path: Path) -> None:
    async with connected(StriatumMCP(str(repo), dsn), mode, tmp_path) as operator:
        run_id = await operator.start("minimal")
        first = await operator.call("job_claim", run=run_id)
        expire_lease(dsn, run_id, first["job"])
        second = await operator.call("job_claim", run=run_id)
        assert (second["job"], second["fence"]) == (first["job"], first["fence"] + 1)

        stale = {key: first[key] for key in ("run", "job", "lease")}
        refused = await operator.refused("job_complete", **stale)
        assert refused["error"] == "lease_lost", refused
        assert refused["message"] and refused["hint"]
        assert refused["details"] == {"state": "leased", "fence": second["fence"]}
        assert (await operator.refused("job_heartbeat", **stale))["error"] == "lease_lost"

        assert (await operator.end(second))["run_status"] == "completed"
    refusals = [row for row in audit_rows(dsn) if row[2] != "ok"]
    assert refusals == [(f"{ACTOR} mcp", "job complete", "lease_lost"),
                        (f"{ACTOR} mcp", "job heartbeat", "lease_lost")]


async def test_a_resource_that_is_not_there_is_an_error_with_its_stable_code(
        mode: str, dsn: str, repo: Path, tmp_path: Path) -> None:
    async with connected(StriatumMCP(str(repo), dsn), mode, tmp_path) as operator:
        run_id = await operator.start("minimal")
        for uri, said in [
                ("striatum://runs/no-such-run", "no run 'no-such-run'"),
                (f"striatum://runs/{run_id}/jobs/answer/prompt", "no prompt for its current"),
                (f"striatum://runs/{run_id}/jobs/nope/prompt", "has no job 'nope'"),
                (f"striatum://runs/{run_id}/artifacts/answer.md", "has no artifact"),
                ("striatum://elsewhere", "no resource striatum://elsewhere")]:
            with pytest.raises(MCPError) as missing:
                await operator.read(uri)
            assert missing.value.code == RESOURCE_NOT_FOUND, uri
            assert said in missing.value.message, (uri, missing.value.message)

        claim = await operator.call("job_claim", run=run_id)
        await operator.end(claim)
        uri = f"striatum://runs/{run_id}/artifacts/answer.md"
        assert (await operator.read(uri))[0] == "answer.md of pass 0\n"
        published = await operator.call("run_status", run=run_id)
        stored = Path(published["repo"]) / published["artifact_root"] / run_id / "answer" / "i0"
        (stored / "answer.md").write_text("rewritten after the fact\n", encoding="utf-8")
        with pytest.raises(MCPError) as changed:
            await operator.read(uri)
        assert changed.value.data["error"] == "conflict", changed.value.data
        assert "no longer holds what was published" in changed.value.message


async def test_in_a_lane_the_server_offers_the_lease_verbs_through_the_lane_socket(
        mode: str, dsn: str, store: Store, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIATUM_HOME", str(tmp_path / "home"))
    gate = LaneGate(dsn).open()
    try:
        run_id = start_run(store, example("minimal"), repo)
        claim = leases.claim(store, run_id, owner="test-worker")
        assert claim is not None
        gate.leases.hold(claim.token, _job_env(claim, str(gate.socket)))
        # No database it could reach of its own: every call goes to the lane socket.
        server = StriatumMCP(str(repo), NOWHERE, lane_socket=str(gate.socket))
        async with connected(server, mode, tmp_path) as lane:
            tools = (await lane.client.list_tools()).tools
            assert [t.name for t in tools] == [tool_name(v) for v in permitted("lease")]
            templates = (await lane.client.list_resource_templates()).resource_templates
            assert templates == []
            assert (await lane.refused("run_list"))["error"] == "usage"  # not offered
            held = {"run": run_id, "job": claim.job, "lease": claim.token}
            assert (await lane.call("job_heartbeat", **held))["job"] == claim.job
            forged = await lane.refused("job_heartbeat", **held | {"lease": "1-" + "0" * 32})
            assert forged["error"] == "lease_lost"
            done = await lane.end({**held, "produces": claim.produces, "kind": claim.kind,
                                   "iteration": claim.iteration})
            assert done["status"] == "succeeded", done
    finally:
        gate.close()
    assert [(verb, outcome) for actor, verb, outcome in audit_rows(dsn)
            if actor.endswith(" mcp lane:lease")] == [
        ("job heartbeat", "ok"), *[("job publish", "ok")] * len(claim.produces),
        ("job complete", "ok")]
