"""The lanes the conformance tests run: the package's presets (``striatum lane preset``),
as a user gets them, so every preset is what the tests prove; and, as controls, the
same CLIs without the flags that let them work headless.

The presets pass each CLI's key and endpoint through from the worker by name
(``"${NAME}"``): the sandbox gives the worker the fakes' addresses, so the same lane
that reaches the real API reaches a fake here.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from striatum import compiler
from striatum.compiler.diagnostics import Diagnostic
from striatum.compiler.presets import CLIS, ROLES, preset
from striatum.runtime.runs import _with_lanes

VENDORS = tuple(CLIS)
# The lint rules about a lane that runs a known agent CLI (docs/lint-rules.md).
AGENT_RULES = ("STR315", "STR316", "STR317", "STR318")
__all__ = ["AGENT_RULES", "OPERATOR", "PROFILE", "ROLES", "UNPERMITTED", "VENDORS",
           "agent_findings", "lane", "relane", "which"]

# ``striatum adopt --profile`` for each vendor's CLI.
PROFILE = {"claude": "claude_code", "codex": "codex", "gemini": "gemini"}


def lane(vendor: str, role: str) -> dict[str, Any]:
    """The preset of ``vendor`` for ``role`` (author or reviewer)."""
    return preset(vendor, role)


def which(replaced: Mapping[str, Any]) -> tuple[str, str]:
    """The (vendor, role) whose preset ``replaced`` is."""
    return next((vendor, role) for vendor in VENDORS for role in ROLES
                if preset(vendor, role) == replaced)


def agent_findings(workflow: Path, lanes: Mapping[str, Any]) -> list[Diagnostic]:
    """What lint's agent rules say of ``workflow`` with ``lanes`` in place of its own."""
    comp = compiler.check(str(workflow))
    assert comp.ok, [d.message for d in comp.diagnostics]
    comp = compiler.check(_with_lanes(comp.source, dict(lanes)))
    return [d for d in compiler.lint(comp) if d.code in AGENT_RULES]


def relane(workflow: Path, vendor_by_role: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """``workflow``'s command lanes, each replaced by a preset: the reviewer preset of
    ``vendor_by_role["reviewer"]`` for a lane that runs only reviews, the author preset of
    ``vendor_by_role["author"]`` for any other. A review lane whose reviewer preset may
    not write what one of its reviews produces (lint's STR317: gemini's reviewer can
    write no file) gets its vendor's author preset instead, as docs/workers.md advises.
    Human and operator lanes stay as they are."""
    comp = compiler.check(str(workflow))
    assert comp.ok, [d.message for d in comp.diagnostics]
    flow = comp.workflow
    roles = {}
    for each in flow.lanes:
        if each.kind == "command":
            jobs = [job for job in flow.jobs if job.lane == each.name]
            roles[each.name] = "reviewer" if jobs and all(
                job.kind == "review" for job in jobs) else "author"
    lanes = {name: preset(vendor_by_role[role], role) for name, role in roles.items()}
    for found in agent_findings(workflow, lanes):
        if found.code == "STR317":
            name = flow.jobs[int(found.path[1])].lane
            lanes[name] = preset(vendor_by_role[roles[name]], "author")
    return lanes


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
