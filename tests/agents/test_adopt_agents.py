"""`striatum adopt` then real work, for each vendor: in a fresh git repository adopted for
one CLI, examples/code-change runs to its end on that CLI's presets (the lanes now start
in a repository holding the skill, the instructions and the MCP server's registration),
and then the CLI, started there as the operator, shows what it found: the skill, listed
to its model with its description, which the model then uses (its body comes back), and
the server's tools, one of which it calls to see the run just worked (so the server adopt
registered reaches the session's database)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from striatum.agents.adopt import AGENT_TOOLS

from .harness import SYSTEM_PATH, Bench, adopt, mcp_document, mcp_failed
from .lanes import OPERATOR, PROFILE, VENDORS
from .script import Mcp, Script, Skill, calls, say, strings
from .test_code_change import assert_worked, code_change, git_repo

pytestmark = pytest.mark.timeout(600)

SKILL_FILE = {"claude": ".claude/skills/striatum/SKILL.md",
              "codex": ".agents/skills/striatum/SKILL.md",
              "gemini": ".agents/skills/striatum/SKILL.md"}
SKILL_TOOL = {"claude": "Skill", "codex": "exec", "gemini": "activate_skill"}
# The tools offered: the agent's; adopt's config withholds the human's (test_adopt_boundary).
TOOLS = sorted(AGENT_TOOLS)


def commit_all(repo: Path, message: str) -> None:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "PATH": SYSTEM_PATH}
    for argv in (["git", "add", "-A"], ["git", "commit", "-qm", message]):
        subprocess.run(argv, cwd=repo, env=env, check=True)


def description(skill: Path) -> str:
    found = re.search(r"^description: (.+)$", skill.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, skill
    return found.group(1)


def skill_listed(vendor: str, text: str, said: str) -> bool:
    """Whether the request's text lists the striatum skill to the model, as the CLI does."""
    if vendor == "gemini":  # <skill><name>, <description>, <location> in its system prompt
        return f"<name>striatum</name>\n    <description>{said}</description>" in text
    # Claude Code: "The following skills are available for use with the Skill tool:";
    # codex: its skills instructions, each "- name: description (file: ...)".
    return f"- striatum: {said}" in text


def tools_offered(vendor: str, body: dict[str, object]) -> list[str]:
    """The striatum tools the request tells the model of (codex: the namespace alone)."""
    text = "\n".join(strings(body))
    if vendor == "claude":  # deferred: named in the system message, loaded on demand
        return [t for t in TOOLS if f"\nmcp__striatum__{t}\n" in text]
    if vendor == "gemini":
        declared = {d["name"] for t in body["tools"]  # type: ignore[attr-defined]
                    for d in t.get("functionDeclarations", [])}
        return [t for t in TOOLS if f"mcp_striatum_{t}" in declared]
    return ["mcp__striatum"] if "Deferred tool namespaces:\n- mcp__striatum: " in text else []


@pytest.mark.parametrize("vendor", VENDORS)
def test_adopt_then_code_change_then_the_cli_finds_skill_and_server(
        bench: Bench, repo: Path, tmp_path: Path, vendor: str) -> None:
    git_repo(repo)
    adopt(bench.dsn, repo, PROFILE[vendor])
    commit_all(repo, "adopt striatum")

    outcome = code_change(bench, tmp_path / "flow", vendor, vendor)
    assert_worked(bench, outcome, vendor, vendor)

    session = f"adopted-{vendor}"
    argv, env = OPERATOR[vendor]
    ran = bench.sandboxed(argv, Script().job(session, calls(Skill("striatum")),
                                             calls(Mcp("run_list", {})),
                                             say("One run, completed.")), 240,
                          {**env, "STRIATUM_ACTOR": "conformance-operator"},
                          f"Operator session {session}.\nWhich striatum runs does this "
                          "repository have?\n")
    record = ran.record
    assert ran.exit_code == 0 and record.errors() == [] and record.names == [], ran.output
    # The request that called the tool (codex may start before the server is up: its
    # first requests can lack the tools, and the fake then waits).
    last = record.conversation(session)[-1]["body"]
    said = description(repo / SKILL_FILE[vendor])
    assert skill_listed(vendor, "\n".join(strings(last)), said), said
    offered = tools_offered(vendor, last)
    assert offered == (["mcp__striatum"] if vendor == "codex" else TOOLS), offered
    # The skill used: its body (not in the listing) is what the model got back.
    used, listed = record.results(session)
    assert (used.tool, used.error) == (SKILL_TOOL[vendor], False), used
    first = record.conversation(session)[0]["body"]
    assert "# Working a striatum run" not in "\n".join(strings(first))
    assert "# Working a striatum run" in "\n".join(strings(last)), used

    assert not mcp_failed(vendor, listed), listed
    runs = mcp_document(listed.output)
    assert [(r["run"], r["status"]) for r in runs["runs"]] == [
        (outcome.run_id, "completed")], runs
