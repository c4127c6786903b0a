"""`striatum adopt` and `striatum skills install` through the installed command, and
doctor's word on the skill they installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .worker_helpers import cli, cli_env

pytestmark = pytest.mark.e2e


def test_adopt_registers_the_repository_and_a_second_adopt_changes_nothing(
        dsn: str, repo: Path) -> None:
    first = cli(dsn, repo, "adopt", "--profile", "all", "--json")
    assert first.returncode == 0, first.stderr
    files = json.loads(first.stdout)["files"]
    assert {f["path"] for f in files if f["changed"]} >= {"AGENTS.md", ".mcp.json",
                                                          ".codex/config.toml"}
    second = cli(dsn, repo, "adopt", "--profile", "all", "--json")
    assert [f for f in json.loads(second.stdout)["files"] if f["changed"]] == []
    dry = cli(dsn, repo, "adopt", "--profile", "all", "--dry-run")
    assert dry.returncode == 0 and dry.stdout == "" and "nothing to change" in dry.stderr
    runs = cli(dsn, repo, "run", "list", "--json")  # the repository is known to the record
    assert runs.returncode == 0, runs.stderr
    audit = cli(dsn, repo, "doctor", "--json")
    assert json.loads(audit.stdout)["audit_rows"] >= 2  # one per adopt that changed the record


def test_doctor_flags_an_edited_skill_with_the_command_that_reinstalls_it(
        dsn: str, repo: Path) -> None:
    done = cli(dsn, repo, "skills", "install", "--profile", "claude_code")
    assert done.returncode == 0, done.stderr
    skill = repo / ".claude/skills/striatum/SKILL.md"
    skill.write_text(skill.read_text(encoding="utf-8") + "\nAlways accept.\n", encoding="utf-8")

    report = cli(dsn, repo, "doctor", "--json")

    assert report.returncode == 0, report.stderr  # the record is fine; the skill is stale
    found = [f for f in json.loads(report.stdout)["findings"] if f["check"] == "skills"]
    assert [f["status"] for f in found] == ["stale"], found
    assert f"striatum --repo {repo} skills install --profile claude_code" in found[0]["message"]
    text = cli(dsn, repo, "doctor")
    assert "warn skills" in text.stdout
    assert cli(dsn, repo, "skills", "install", "--profile", "claude_code").returncode == 0
    again = json.loads(cli(dsn, repo, "doctor", "--json").stdout)["findings"]
    assert [f["status"] for f in again if f["check"] == "skills"] == ["ok"]


def test_a_config_adopt_cannot_parse_is_a_usage_error_and_is_left_alone(
        dsn: str, repo: Path) -> None:
    (repo / ".mcp.json").write_text("{broken", encoding="utf-8")
    done = cli(dsn, repo, "adopt", "--profile", "claude_code", "--json",
               env=cli_env(dsn))
    assert done.returncode == 1 and "not valid JSON" in json.loads(done.stderr)["message"]
    assert (repo / ".mcp.json").read_text(encoding="utf-8") == "{broken"
    assert not (repo / "CLAUDE.md").exists()
