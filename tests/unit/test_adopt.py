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
from striatum.server.registry import VERBS

# The verbs a human decides, named here on purpose: the registry's marker must keep
# meaning these, whatever else it marks.
HUMAN = {"checkpoint_decide", "run_resume", "run_retry", "run_cancel", "job_unlease"}


def applied(repo: Path, profile: str) -> list[str]:
    """Apply adopt's plan; the files it changed."""
    changed = [each for each in adopt.plan(repo, profile) if each.changes]
    for each in changed:
        each.apply()
    return sorted(str(each.path.relative_to(repo)) for each in changed)


def test_adopt_for_every_cli_writes_what_each_reads(tmp_path: Path) -> None:
    assert applied(tmp_path, "all") == sorted([
        ".claude/skills/striatum/SKILL.md", ".agents/skills/striatum/SKILL.md", "AGENTS.md",
        "CLAUDE.md", "GEMINI.md", ".mcp.json", ".claude/settings.json",
        ".gemini/settings.json", ".codex/config.toml", ".gitignore"])
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
        "env_vars": ["STRIATUM_DSN", "STRIATUM_HOME", "STRIATUM_ACTOR", "STRIATUM_SOCKET",
                     "STRIATUM_MODEL"],
        "default_tools_approval_mode": "approve", "enabled_tools": adopt.AGENT_TOOLS,
        "disabled_tools": adopt.HUMAN_TOOLS}
    assert ".striatum/" in (tmp_path / ".gitignore").read_text(encoding="utf-8").splitlines()


def test_the_agent_gets_every_verb_but_the_humans_and_the_human_keeps_those(
        tmp_path: Path) -> None:
    every = {verb.name.replace(".", "_") for verb in VERBS.values()}
    assert set(adopt.HUMAN_TOOLS) == HUMAN
    assert set(adopt.AGENT_TOOLS) == every - HUMAN
    assert {"run_status", "job_claim", "job_verdict", "workflow_lint", "doctor"} <= set(
        adopt.AGENT_TOOLS)

    applied(tmp_path, "all")

    claude = json.loads((tmp_path / ".claude/settings.json").read_text(encoding="utf-8"))
    # claude -p refuses a tool that no rule allows; a deny outweighs every allow, so a
    # user's broad "mcp__striatum" cannot hand the agent the human's verbs.
    assert claude == {"permissions": {
        "allow": [f"mcp__striatum__{t}" for t in adopt.AGENT_TOOLS],
        "deny": [f"mcp__striatum__{t}" for t in adopt.HUMAN_TOOLS]}}
    gemini = json.loads((tmp_path / ".gemini/settings.json").read_text(encoding="utf-8"))
    server = gemini["mcpServers"]["striatum"]
    assert (server["includeTools"], server["excludeTools"]) == (adopt.AGENT_TOOLS,
                                                                adopt.HUMAN_TOOLS)
    codex = tomllib.loads((tmp_path / ".codex/config.toml").read_text(encoding="utf-8"))
    server = codex["mcp_servers"]["striatum"]
    assert (server["enabled_tools"], server["disabled_tools"]) == (adopt.AGENT_TOOLS,
                                                                   adopt.HUMAN_TOOLS)


def test_claude_permissions_merge_into_the_users_settings(tmp_path: Path) -> None:
    mine = {"model": "opus", "permissions": {
        "allow": ["Bash(make test)", "mcp__striatum__run_status"],
        "deny": ["Read(./.env)"], "defaultMode": "acceptEdits"},
        "env": {"FOO": "1"}}
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude/settings.json").write_text(json.dumps(mine), encoding="utf-8")

    applied(tmp_path, "claude_code")

    merged = json.loads((tmp_path / ".claude/settings.json").read_text(encoding="utf-8"))
    assert (merged["model"], merged["env"]) == ("opus", {"FOO": "1"})
    assert merged["permissions"]["defaultMode"] == "acceptEdits"
    allow = merged["permissions"]["allow"]
    # The user's own rules first, as they were; each striatum rule once.
    assert allow[:2] == ["Bash(make test)", "mcp__striatum__run_status"]
    assert sorted(allow[2:] + ["mcp__striatum__run_status"]) == sorted(
        f"mcp__striatum__{t}" for t in adopt.AGENT_TOOLS)
    assert merged["permissions"]["deny"] == ["Read(./.env)", *(
        f"mcp__striatum__{t}" for t in adopt.HUMAN_TOOLS)]


def test_claude_permissions_that_are_not_a_list_are_refused_not_replaced(
        tmp_path: Path) -> None:
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude/settings.json").write_text(
        '{"permissions": {"allow": "mcp__striatum"}}', encoding="utf-8")
    with pytest.raises(UsageError, match=r"permissions\.allow is not a list"):
        adopt.plan(tmp_path, "claude_code")
    (tmp_path / ".claude/settings.json").write_text('{"permissions": []}', encoding="utf-8")
    with pytest.raises(UsageError, match="'permissions' is not an object"):
        adopt.plan(tmp_path, "claude_code")
    assert (tmp_path / ".claude/settings.json").read_text(encoding="utf-8") == \
        '{"permissions": []}'


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


def test_a_dry_run_shows_the_claude_permissions_it_would_add(tmp_path: Path) -> None:
    (tmp_path / ".claude").mkdir()
    settings = tmp_path / ".claude/settings.json"
    settings.write_text('{\n  "permissions": {\n    "allow": [\n      "Bash(make test)"\n'
                        '    ]\n  }\n}\n', encoding="utf-8")
    planned = {each.path: each for each in adopt.plan(tmp_path, "claude_code")}
    diff = planned[settings].diff(tmp_path)
    assert diff.startswith("--- a/.claude/settings.json\n+++ b/.claude/settings.json\n")
    added = [line[1:].strip().rstrip(",") for line in diff.splitlines()
             if line.startswith("+") and not line.startswith("+++")]
    assert '"mcp__striatum__job_claim"' in added and '"mcp__striatum__run_status"' in added
    assert '"mcp__striatum__checkpoint_decide"' in added  # in the deny list
    assert '"deny": [' in added
    removed = [line[1:].strip().rstrip(",") for line in diff.splitlines()
               if line.startswith("-") and not line.startswith("---")]
    assert removed == ['"Bash(make test)"'] and removed[0] in added, diff  # a comma added
    assert settings.read_text(encoding="utf-8").count("mcp__") == 0, "a plan wrote a file"


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
