"""``corpus export`` and ``corpus verify`` through the installed command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from .conftest import REPO, Cli, executable, private_home

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


def test_a_bundle_verifies_after_the_embedded_home_that_held_the_record_is_removed(
        tmp_path: Path) -> None:
    """Exported from a home of its own (its own embedded server), then the home — the
    database with it — is stopped and deleted: `corpus verify` needs nothing of it."""
    repo, out = tmp_path / "repo", tmp_path / "bundle"
    repo.mkdir()
    workflow = str(REPO / "examples" / "minimal" / "workflow.json")
    with private_home() as env:
        home = Path(env["STRIATUM_HOME"])

        def striatum(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([executable(), *args], env=env, capture_output=True,
                                  text=True, timeout=120)

        prepared = striatum("--repo", str(repo), "run", "prepare", "--workflow", workflow,
                            "--start", "--json")
        assert prepared.returncode == 0, prepared.stderr
        exported = striatum("--repo", str(repo), "corpus", "export", "--run", "latest",
                            "-o", str(out), "--json")
        assert exported.returncode == 0, exported.stderr
        digest = json.loads(exported.stdout)["sha256"]
    assert not home.exists()
    elsewhere = {k: v for k, v in os.environ.items()
                 if not k.startswith("STRIATUM_") and k != "PYTHONPATH"}
    elsewhere["STRIATUM_HOME"] = str(tmp_path / "no-home")  # nothing there: no database
    verified = subprocess.run([executable(), "corpus", "verify", str(out), "--json"],
                              env=elsewhere, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] is True and report["sha256"] == digest
    assert report["rows_recomputed"] >= 3
    assert not (tmp_path / "no-home").exists()  # verifying started no server
