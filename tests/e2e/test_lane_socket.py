"""examples/code-change worked by the installed CLI (`run start --wait`) on the embedded
server, its lanes the fake agents reporting through the CLI (`fake_agent.py ... --cli`):
each lane's `striatum job publish`, `job verdict` and `job complete` reach the record
through its worker's lane socket, with no DSN and no home in the lane."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from striatum.runtime.embedded import owner_dsn

from .conftest import REPO
from .test_hostile import Home

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

FAKE = str(REPO / "examples" / "agents" / "fake_agent.py")


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Home]:
    root = Path(tempfile.mkdtemp(prefix="striatum-lanes-e2e-"))
    os.chmod(root, 0o755)  # the embedded server may run as its own system user
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "examples" / "code-change", repo / "flow")
    git = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "flow"]):
        subprocess.run(argv, cwd=repo, env=git, check=True)
    # The lanes' environment names the temporary folder: the worker's socket folder is
    # made there, and must be gone after.
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    opened = Home(root, repo)
    opened.env["TMPDIR"] = str(scratch)
    try:
        yield opened
    finally:
        opened.close()
        shutil.rmtree(root, ignore_errors=True)


def test_code_change_with_lanes_that_report_through_the_lane_socket(home: Home) -> None:
    lanes = {"coder": [sys.executable, FAKE, "work", "--cli"],
             "reviewer": [sys.executable, FAKE, "review", "--revise-once", "--cli"]}
    workflow = str(home.repo / "flow" / "workflow.json")
    prepared = home.json("run", "prepare", "--workflow", workflow,
                         *[arg for name, argv in lanes.items()
                           for arg in ("--lane", f"{name}={json.dumps(argv)}")])
    run_id = prepared["run"]
    done = home.cli("run", "start", run_id, "--wait", "--json", check=False)
    assert done.returncode == 0, (done.stdout, done.stderr)
    status = home.json("run", "status", run_id)
    assert status["status"] == "completed", status
    check = next(j for j in status["jobs"] if j["job"] == "check")
    assert (check["verdict"], check["iteration"]) == ("accept", 1), status
    # Each lane ended its job itself, through the socket, as its lease.
    with psycopg.connect(owner_dsn(home.json("db", "url")["dsn"])) as conn:
        rows = conn.execute("SELECT verb, actor FROM striatum.audit_log "
                            "WHERE verb IN ('job publish', 'job verdict', 'job complete') "
                            "AND outcome = 'ok' ORDER BY seq").fetchall()
    ends = [verb for verb, _ in rows if verb != "job publish"]
    # draft, check (needs_revision), draft, check (accept), apply.
    assert ends == ["job complete", "job verdict", "job complete", "job verdict",
                    "job complete"], rows
    assert all(actor.endswith(" lane:lease") for _, actor in rows), rows
    assert sum(verb == "job publish" for verb, _ in rows) == 3, rows  # draft.md x2, summary.md
    # The worker's socket folder, removed when it stopped.
    assert list(Path(home.env["TMPDIR"]).glob("striatum-lanes-*")) == []
    assert home.cli("doctor", check=False).returncode == 0
