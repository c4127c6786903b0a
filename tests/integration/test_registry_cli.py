"""The CLI's --json and the registry give the same document for the same call on a real
database: a run's status, the run list, its events, what waits for a human, and doctor.
(The verbs that change the record build their documents with the same ``results``
function the registry uses; the compiler's verbs are compared in tests/unit.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from striatum.errors import Conflict
from striatum.runtime import leases, runs
from striatum.runtime.config import open_store
from striatum.runtime.store import Store
from striatum.server.registry import VERBS, Session, invoke

from ..unit.test_cli import invoke as cli
from .helpers import Agent, example, start_run


def cli_json(dsn: str, repo: Path, *argv: str) -> Any:
    result = cli("--dsn", dsn, "--repo", str(repo), *argv, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_read_verbs_print_the_registrys_documents(store: Store, dsn: str, repo: Path,
                                                  tmp_path: Path) -> None:
    run_id = start_run(store, example("human-checkpoint"), repo)
    agent = Agent(store, run_id, tmp_path)
    while not runs.waiting(store, run_id):  # analysis, then its review, reach the checkpoint
        claim = leases.claim(store, run_id, owner="agent")
        assert claim is not None
        agent.act(claim)
    prepared = runs.prepare(store, example("minimal"), str(repo), overrides={})

    session = Session(str(repo), lambda: open_store(dsn))
    try:
        for verb, arguments, argv in [
                ("run.status", {"run": run_id}, ["run", "status", run_id]),
                ("run.status", {"run": prepared}, ["run", "status", prepared]),
                ("run.list", {}, ["run", "list"]),
                ("run.list", {"all": True, "limit": 1}, ["run", "list", "--all", "--limit", "1"]),
                ("run.events", {"run": run_id}, ["run", "events", run_id]),
                ("run.events", {"run": run_id, "after": 4}, ["run", "events", run_id, "--after",
                                                             "4"]),
                ("run.waiting", {"run": run_id}, ["run", "waiting", run_id]),
                ("run.waiting", {"run": prepared}, ["run", "waiting", prepared]),
                ("run.why", {"run": run_id}, ["why", run_id]),
                ("run.why", {"run": prepared}, ["why", prepared]),
                ("doctor", {}, ["doctor"]),
                ("doctor", {"anchors": False}, ["doctor", "--no-anchors"])]:
            expected = invoke(VERBS[verb], arguments, session)
            printed = cli_json(dsn, repo, *argv)
            if verb == "run.why":  # as of the database clock's now: the two calls differ
                assert printed.pop("at") >= expected.pop("at")
            assert printed == expected, (verb, arguments)
    finally:
        session.close()
    waiting = cli_json(dsn, repo, "run", "waiting", run_id)["waiting"]
    assert [(w["job"], w["kind"]) for w in waiting] == [("decide", "checkpoint")]
    assert waiting[0]["command"] == f"striatum checkpoint decide {run_id} decide cancel|continue"


def test_a_verdict_given_from_inside_the_lane_publishes_what_its_agent_wrote(
        store: Store, dsn: str, repo: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the registry (an agent's MCP server inherits its lane's environment), as
    through the CLI: the files the job produces, written to the lane's artifact directory,
    are published with the verdict; from anywhere but that job's lane, nothing is."""
    workflow = tmp_path / "flow" / "workflow.json"
    workflow.parent.mkdir()
    workflow.write_text(json.dumps({
        "name": "self-verdict", "lanes": {"agent": {"kind": "operator"}},
        "jobs": [{"id": "check", "lane": "agent", "kind": "review",
                  "produces": ["critique.md"], "prompt": {"text": "c"}}]}))
    run_id = start_run(store, str(workflow), repo)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    out = Path(claim.artifact_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "critique.md").write_text("# Critique\n")
    arguments = {"run": run_id, "job": "check", "lease": claim.token, "outcome": "accept",
                 "reason": "sound"}
    lane = {"STRIATUM_RUN": run_id, "STRIATUM_JOB": "check",
            "STRIATUM_ARTIFACT_DIR": str(out), "STRIATUM_PRODUCES": "critique.md"}
    session = Session(str(repo), lambda: open_store(dsn))
    try:
        for name, value in {**lane, "STRIATUM_JOB": "another"}.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(Conflict, match="must publish critique.md"):
            invoke(VERBS["job.verdict"], arguments, session)
        monkeypatch.setenv("STRIATUM_JOB", "check")
        done = invoke(VERBS["job.verdict"], arguments, session)
    finally:
        session.close()
    assert (done["status"], done["run_status"]) == ("succeeded", "completed")
    stored = {row[0]: row[1] for row in store.execute(
        "job_artifacts", {"run": run_id, "job": "check", "iteration": 0})}
    assert (repo / stored["critique.md"]).read_text() == "# Critique\n"
