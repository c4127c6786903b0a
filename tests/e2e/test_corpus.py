"""``corpus export`` and ``corpus verify`` through the installed command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import REPO, Cli

pytestmark = pytest.mark.e2e


def test_a_run_exported_by_the_cli_verifies_and_a_cut_bundle_exits_2(
        cli: Cli, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    workflow = str(REPO / "examples" / "minimal" / "workflow.json")
    prepared = cli("--repo", str(repo), "run", "prepare", "--workflow", workflow, "--start",
                   "--json")
    assert prepared.returncode == 0, prepared.stderr
    out = tmp_path / "bundle"
    exported = cli("--repo", str(repo), "corpus", "export", "--run", "latest", "-o", str(out),
                   "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["files"]["events.jsonl"] >= 3
    verified = cli("corpus", "verify", str(out))
    assert verified.returncode == 0, verified.stderr
    assert "bundle verifies" in verified.stdout
    events = out / "events.jsonl"
    events.write_bytes(b"".join(events.read_bytes().splitlines(keepends=True)[:-1]))
    cut = cli("corpus", "verify", str(out), "--json")
    assert cut.returncode == 2
    assert json.loads(cut.stderr)["details"]["file"] == "events.jsonl"
    assert cli("corpus", "verify", str(tmp_path / "repo")).returncode == 3
