"""The official MCP Inspector's CLI against the installed ``striatum mcp serve --stdio``:
the tools it lists (and the portability of their schemas, which --strict reports),
a call that checks a workflow, a call that fails, and the status of a run prepared
beforehand through the CLI, as a tool and as a resource.

The Inspector (and the Node 22 it needs) come from ``make agent-clis``. It starts the
server with a minimal environment of its own, so the database settings go with ``-e``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from striatum.server.mcp import tool_name
from striatum.server.registry import VERBS

from .conftest import REPO, Cli, executable

BIN = REPO / ".agent-clis" / "node_modules" / ".bin"
INSPECTOR = BIN / "mcp-inspector"
CODE_CHANGE = str(REPO / "examples" / "code-change" / "workflow.json")
pytestmark = [pytest.mark.e2e, pytest.mark.skipif(
    not INSPECTOR.exists(), reason=f"the MCP Inspector is not installed ({INSPECTOR}): "
                                   "`make agent-clis` installs it")]


def inspect(*args: str, expect: int = 0) -> tuple[Any, str]:
    """Run the Inspector's CLI on the server; its JSON answer and its stderr."""
    settings = [part for key in ("STRIATUM_HOME", "STRIATUM_DSN") if key in os.environ
                for part in ("-e", f"{key}={os.environ[key]}")]
    done = subprocess.run([str(INSPECTOR), "--cli", *settings, executable(), "mcp", "serve",
                           "--stdio", *args],
                          env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == expect, (args, done.returncode, done.stdout, done.stderr)
    return json.loads(done.stdout), done.stderr


def test_the_inspector_lists_one_tool_per_verb_with_portable_schemas() -> None:
    listed, stderr = inspect("--method", "tools/list", "--strict")
    assert [t["name"] for t in listed["tools"]] == [tool_name(v) for v in VERBS.values()]
    for tool in listed["tools"]:
        verb = VERBS[tool["title"]]
        assert (tool["inputSchema"], tool["outputSchema"]) == (verb.params, verb.result)
    assert "Warning" not in stderr and "Error" not in stderr, stderr


def test_the_inspector_calls_a_tool_and_sees_an_error_as_one() -> None:
    called, _ = inspect("--method", "tools/call", "--tool-name", "workflow_validate",
                        "--tool-arg", f"file={CODE_CHANGE}")
    assert called["isError"] is False
    assert called["structuredContent"]["valid"] is True
    assert json.loads(called["content"][0]["text"]) == called["structuredContent"]
    failed, _ = inspect("--method", "tools/call", "--tool-name", "workflow_plan",
                        "--tool-arg", f"file={CODE_CHANGE}", "--tool-arg", "verdicts=check=maybe",
                        expect=5)
    assert failed["isError"] is True
    assert failed["content"][0]["text"] == "striatum error usage: 'check' cannot take 'maybe'"
    assert json.loads(failed["content"][1]["text"]) == {
        "error": "usage", "message": "'check' cannot take 'maybe'",
        "hint": "it takes 'accept', 'needs_revision' or 'reject'"}


def test_the_inspector_reads_a_run_prepared_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    prepared = cli("--repo", str(repo), "run", "prepare", "--workflow", CODE_CHANGE, "--start",
                   "--json")
    assert prepared.returncode == 0, prepared.stderr
    run_id = json.loads(prepared.stdout)["run_id"]
    status, _ = inspect("--method", "tools/call", "--tool-name", "run_status",
                        "--tool-arg", f"run={run_id}")
    document = status["structuredContent"]
    assert (document["run"], document["status"], document["repo"]) == (
        run_id, "running", str(repo.resolve()))
    assert [job["status"] for job in document["jobs"]] == ["ready", "pending", "pending"]
    read, _ = inspect("--method", "resources/read", "--uri", f"striatum://runs/{run_id}")
    (content,) = read["contents"]
    assert content["mimeType"] == "application/json"
    assert json.loads(content["text"]) == document
