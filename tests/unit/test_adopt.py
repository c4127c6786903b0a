"""The striatum skill and `adopt`: what they write into a repository, merged into what the
user has, and nothing the second time."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from striatum import __version__
from striatum.agents import adopt, skills
from striatum.errors import UsageError


def applied(repo: Path, profile: str) -> list[str]:
    """Apply adopt's plan; the files it changed."""
    changed = [each for each in adopt.plan(repo, profile) if each.changes]
    for each in changed:
        each.apply()
    return sorted(str(each.path.relative_to(repo)) for each in changed)


def test_adopt_for_every_cli_writes_what_each_reads(tmp_path: Path) -> None:
    assert applied(tmp_path, "all") == sorted([
        ".claude/skills/striatum/SKILL.md", ".agents/skills/striatum/SKILL.md", "AGENTS.md",
        "CLAUDE.md", "GEMINI.md", ".mcp.json", ".gemini/settings.json", ".codex/config.toml",
        ".gitignore"])
    skill = (tmp_path / ".claude/skills/striatum/SKILL.md").read_text(encoding="utf-8")
    assert skill.startswith("---\nname: striatum\ndescription: ")
    assert f"<!-- striatum skill {__version__} sha256:" in skill
    assert (tmp_path / ".agents/skills/striatum/SKILL.md").read_text(encoding="utf-8") == skill
    assert "@AGENTS.md" in (tmp_path / "CLAUDE.md").read_text(encoding="utf-8").splitlines()
    assert "@./AGENTS.md" in (tmp_path / "GEMINI.md").read_text(encoding="utf-8").splitlines()
    claude = json.loads((tmp_path / ".mcp.json").read_text(encoding="utf-8"))
    assert claude["mcpServers"]["striatum"] == {"type": "stdio", "command": "striatum",
                                                "args": ["mcp", "serve", "--stdio"]}
    gemini = json.loads((tmp_path / ".gemini/settings.json").read_text(encoding="utf-8"))
    assert gemini["mcpServers"]["striatum"]["trust"] is True
    codex = tomllib.loads((tmp_path / ".codex/config.toml").read_text(encoding="utf-8"))
    # codex exec refuses a tool that changes anything unless approved, and starts the
    # server without STRIATUM_DSN unless told to pass it.
    assert codex["mcp_servers"]["striatum"] == {
        "command": "striatum", "args": ["mcp", "serve", "--stdio"],
        "env_vars": ["STRIATUM_DSN", "STRIATUM_HOME", "STRIATUM_ACTOR"],
        "default_tools_approval_mode": "approve"}
    assert ".striatum/" in (tmp_path / ".gitignore").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("profile", ["claude_code", "codex", "gemini", "all"])
def test_adopting_twice_changes_nothing_the_second_time(tmp_path: Path, profile: str) -> None:
    assert applied(tmp_path, profile)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert applied(tmp_path, profile) == []
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_users_own_files_are_merged_into_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "CLAUDE.md").write_text("# House rules\nUse tabs.\n", encoding="utf-8")
    (tmp_path / "AGENTS.md").write_text("Run make test before you push.", encoding="utf-8")
    (tmp_path / ".mcp.json").write_text(json.dumps(
        {"mcpServers": {"docs": {"command": "docs-server"}}, "other": 1}), encoding="utf-8")
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex/config.toml").write_text(
        '# my settings\nmodel = "o3"  # the one I like\n\n[mcp_servers.docs]\n'
        'command = "docs-server"\n', encoding="utf-8")
    (tmp_path / ".gitignore").write_text("node_modules/", encoding="utf-8")

    applied(tmp_path, "all")

    assert (tmp_path / "CLAUDE.md").read_text(encoding="utf-8") == \
        "# House rules\nUse tabs.\n@AGENTS.md\n"
    agents = (tmp_path / "AGENTS.md").read_text(encoding="utf-8")
    assert agents.startswith("Run make test before you push.\n\n" + adopt.BEGIN)
    claude = json.loads((tmp_path / ".mcp.json").read_text(encoding="utf-8"))
    assert claude["other"] == 1 and claude["mcpServers"]["docs"] == {"command": "docs-server"}
    toml = (tmp_path / ".codex/config.toml").read_text(encoding="utf-8")
    assert toml.startswith('# my settings\nmodel = "o3"  # the one I like\n')
    assert tomllib.loads(toml)["mcp_servers"]["docs"] == {"command": "docs-server"}
    assert (tmp_path / ".gitignore").read_text(encoding="utf-8") == "node_modules/\n.striatum/\n"


def test_the_section_striatum_wrote_is_replaced_and_the_rest_kept(tmp_path: Path) -> None:
    applied(tmp_path, "codex")
    path = tmp_path / "AGENTS.md"
    text = path.read_text(encoding="utf-8")
    path.write_text("Before.\n\n" + text.replace("## striatum", "## old striatum") +
                    "\nAfter.\n", encoding="utf-8")
    applied(tmp_path, "codex")
    again = path.read_text(encoding="utf-8")
    assert again.startswith("Before.\n\n" + adopt.BEGIN) and again.endswith("After.\n")
    assert "## old striatum" not in again and again.count(adopt.BEGIN) == 1


def test_a_config_striatum_cannot_read_is_refused_not_replaced(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid JSON"):
        adopt.plan(tmp_path, "claude_code")
    assert (tmp_path / ".mcp.json").read_text(encoding="utf-8") == "{not json"


def test_a_dry_run_is_a_diff_of_what_would_change(tmp_path: Path) -> None:
    planned = adopt.plan(tmp_path, "gemini")
    diff = "".join(each.diff(tmp_path) for each in planned if each.changes)
    assert "+++ b/GEMINI.md" in diff and "+@./AGENTS.md" in diff
    assert not any(tmp_path.iterdir()), "a plan wrote a file"


def test_the_skill_check_tells_current_outdated_and_edited(tmp_path: Path) -> None:
    for each in skills.install(tmp_path, "all"):
        each.apply()
    assert {i.state for i in skills.check(tmp_path)} == {"current"}
    claude = tmp_path / ".claude/skills/striatum/SKILL.md"
    claude.write_text(claude.read_text(encoding="utf-8").replace("Then stop.", "Then go on."),
                      encoding="utf-8")
    agents = tmp_path / ".agents/skills/striatum/SKILL.md"
    body = "---\nname: striatum\ndescription: an older playbook\n---\nOld.\n"
    import hashlib

    agents.write_text(body + f"\n<!-- striatum skill 0.0.1 sha256:"
                             f"{hashlib.sha256(body.encode()).hexdigest()} -->\n",
                      encoding="utf-8")
    states = {i.path.relative_to(tmp_path).as_posix(): (i.state, i.fix(tmp_path))
              for i in skills.check(tmp_path)}
    assert states[".claude/skills/striatum/SKILL.md"] == (
        "edited", f"striatum --repo {tmp_path} skills install --profile claude_code")
    assert states[".agents/skills/striatum/SKILL.md"][0] == "outdated"
