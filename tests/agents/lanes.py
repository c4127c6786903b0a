"""The lanes the conformance tests run: the package's presets (``striatum lane preset``),
as a user gets them, so every preset is what the tests prove; and, as controls, the
same CLIs without the flags that let them work headless.

The presets pass each CLI's key and endpoint through from the worker by name
(``"${NAME}"``): the sandbox gives the worker the fakes' addresses, so the same lane
that reaches the real API reaches a fake here.
"""

from __future__ import annotations

from typing import Any

from striatum.compiler.presets import CLIS, ROLES, preset

VENDORS = tuple(CLIS)
__all__ = ["OPERATOR", "PROFILE", "ROLES", "UNPERMITTED", "VENDORS", "lane"]

# ``striatum adopt --profile`` for each vendor's CLI.
PROFILE = {"claude": "claude_code", "codex": "codex", "gemini": "gemini"}


def lane(vendor: str, role: str) -> dict[str, Any]:
    """The preset of ``vendor`` for ``role`` (author or reviewer)."""
    return preset(vendor, role)


def _bare(vendor: str, command: list[str]) -> dict[str, Any]:
    return {**preset(vendor, "author"), "command": command, "timeout": 180}


# The same CLIs with none of the flags that allow writing files and running commands
# headless: the controls that show a refusal is seen for what it is.
UNPERMITTED: dict[str, dict[str, Any]] = {
    "claude": _bare("claude", ["claude", "-p"]),
    "codex": _bare("codex", ["codex", "exec", "--skip-git-repo-check", "-"]),
    "gemini": _bare("gemini", ["gemini"]),
}


# Each CLI started headless in an adopted repository as the AI operator, its prompt on
# standard input, with the flags that let it call the striatum MCP server's tools (and
# write files) without asking: docs/agents.md, "An agent as the operator".
OPERATOR: dict[str, tuple[list[str], dict[str, str]]] = {
    # --settings: the permissions adopt wrote, which Claude Code otherwise applies only in
    # a folder someone trusted (its allow rules name the agent's tools, no more).
    "claude": (["claude", "-p", "--permission-mode", "acceptEdits",
                "--settings", ".claude/settings.json", "--allowedTools=Read Edit Write"],
               {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}),
    # --trust: codex reads a project's .codex/config.toml (where adopt registers the
    # server) only in a trusted project.
    "codex": (["codex", "exec", "--trust", "--sandbox", "workspace-write",
               "-c", "allow_login_shell=false", "-c", "analytics.enabled=false",
               "-c", "features.plugins=false", "-"], {}),
    # activate_skill: headless auto_edit withholds it (the skill is listed, but cannot be
    # activated) unless allowed.
    "gemini": (["gemini", "--approval-mode", "auto_edit", "--allowed-tools", "activate_skill"],
               {"GEMINI_CLI_TRUST_WORKSPACE": "true"}),
}
