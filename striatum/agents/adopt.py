"""``striatum adopt``: wire a repository up for an agent CLI, so that a session started in
it knows how to drive striatum and can reach its MCP server.

For each profile, what its CLI reads (see docs/agents.md for where each looks):

- the skill (``skills.install``);
- the instructions: a marked striatum section in AGENTS.md (Codex reads it), and a
  line importing it in CLAUDE.md (``@AGENTS.md``) and GEMINI.md (``@./AGENTS.md``);
- the MCP server in the project's config: ``.mcp.json`` (Claude Code),
  ``.gemini/settings.json`` with ``trust`` (Gemini drops untrusted servers' tools
  headless), ``.codex/config.toml`` (read for a trusted project) with the striatum
  variables passed through and its tools approved (``codex exec`` refuses a call that
  changes anything, since it cannot ask);
- the boundary between the agent's verbs and the human's (``Verb.human``): Claude
  Code's ``.claude/settings.json`` allows the agent's tools and denies the human's
  (``claude -p`` refuses every tool not allowed, and a deny outweighs any allow, the
  user's ``mcp__striatum`` too); Gemini's and Codex's server entries include the
  agent's tools and exclude the human's, which are then never offered;
- ``.striatum/`` in ``.gitignore``.

A user's own text is never rewritten: sections are marked, JSON and TOML are
merged key by key, and a file striatum cannot parse is refused, not replaced.
Adopting twice changes nothing the second time.
"""

from __future__ import annotations

from pathlib import Path

from ..server.registry import VERBS, tool_name
from . import skills
from .files import (
    FileChange,
    with_json_items,
    with_json_key,
    with_line,
    with_section,
    with_toml_table,
)

BEGIN = "<!-- striatum:begin (written by `striatum adopt`; edits between the markers are "\
        "replaced) -->"
END = "<!-- striatum:end -->"
SERVER = "striatum"
MCP_ARGS = ["mcp", "serve", "--stdio"]
# What the server needs of the session's environment, which Codex passes to an MCP server
# only by name (it starts one with a few variables of its own, HOME and PATH among them):
# without them the server would answer from another database than the session's; in a
# lane, without STRIATUM_SOCKET it would look for a database the lane holds no login to.
# STRIATUM_MODEL: the model the session states, recorded on the jobs it claims.
PASSED = ["STRIATUM_DSN", "STRIATUM_HOME", "STRIATUM_ACTOR", "STRIATUM_SOCKET",
          "STRIATUM_MODEL"]
# The server's tools an agent may call, and those a human decides, from the registry.
AGENT_TOOLS = [tool_name(verb) for verb in VERBS.values() if not verb.human]
HUMAN_TOOLS = [tool_name(verb) for verb in VERBS.values() if verb.human]

INSTRUCTIONS = """## striatum

This repository's multi-agent work runs through striatum. When a prompt ends with
`striatum: this is job ...`, or when asked to work or review a striatum run, use the
`striatum` skill (the playbook: claim a job, do it, publish what it produces, complete
it or record a verdict, hand a blocked run to a human). The `striatum` MCP server offers
the same verbs as tools; the `striatum` command does too (`striatum --help`).
Never edit `.striatum/` or `striatum/runs/` by hand: they belong to the record.
"""


def plan(repo: Path, profile: str, command: str = "striatum") -> list[FileChange]:
    """Every file ``profile`` needs in ``repo``, as planned changes (none applied)."""
    names = skills.profiles(profile)
    planned = [*skills.install(repo, profile),
               with_section(repo / "AGENTS.md", BEGIN, END, INSTRUCTIONS)]
    if "claude_code" in names:
        planned += [with_line(repo / "CLAUDE.md", "@AGENTS.md"),
                    with_json_key(repo / ".mcp.json", ("mcpServers", SERVER),
                                  {"type": "stdio", "command": command, "args": MCP_ARGS}),
                    with_json_items(repo / ".claude" / "settings.json", {
                        ("permissions", "allow"): [_claude(t) for t in AGENT_TOOLS],
                        ("permissions", "deny"): [_claude(t) for t in HUMAN_TOOLS]})]
    if "gemini" in names:
        planned += [with_line(repo / "GEMINI.md", "@./AGENTS.md"),
                    with_json_key(repo / ".gemini" / "settings.json", ("mcpServers", SERVER),
                                  {"command": command, "args": MCP_ARGS, "trust": True,
                                   "includeTools": AGENT_TOOLS,
                                   "excludeTools": HUMAN_TOOLS})]
    if "codex" in names:
        planned.append(with_toml_table(repo / ".codex" / "config.toml",
                                       ("mcp_servers", SERVER),
                                       {"command": command, "args": MCP_ARGS,
                                        "env_vars": PASSED, "default_tools_approval_mode":
                                        "approve", "enabled_tools": AGENT_TOOLS,
                                        "disabled_tools": HUMAN_TOOLS}))
    planned.append(with_line(repo / ".gitignore", ".striatum/"))
    return _merged(planned)


def _claude(tool: str) -> str:
    """A Claude Code permission rule naming one tool of the striatum server."""
    return f"mcp__{SERVER}__{tool}"


def _merged(planned: list[FileChange]) -> list[FileChange]:
    """One change per file (two profiles may plan the same skill file), in plan order."""
    by_path: dict[Path, FileChange] = {}
    for each in planned:
        by_path.setdefault(each.path, each)
    return list(by_path.values())
