"""The CLI's --json and the registry give the same document for the same call on a real
database: a run's status, the run list, its events, what waits for a human, and doctor.
(The verbs that change the record build their documents with the same ``results``
function the registry uses; the compiler's verbs are compared in tests/unit.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
                ("doctor", {}, ["doctor"]),
                ("doctor", {"anchors": False}, ["doctor", "--no-anchors"])]:
            expected = invoke(VERBS[verb], arguments, session)
            assert cli_json(dsn, repo, *argv) == expected, (verb, arguments)
    finally:
        session.close()
    waiting = cli_json(dsn, repo, "run", "waiting", run_id)["waiting"]
    assert [(w["job"], w["kind"]) for w in waiting] == [("decide", "checkpoint")]
    assert waiting[0]["command"] == f"striatum checkpoint decide {run_id} decide cancel|continue"
