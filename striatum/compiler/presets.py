"""Lanes for the real agent CLIs: one table, the source of `striatum lane preset`, of the
examples' lanes, of lint's checks of a lane that runs one of them, and of the presets
section of docs/workers.md (``python -m striatum.compiler.presets``).

Each preset is a lane that works headless with the CLI version pinned in
tests/agents/package.json, as the conformance tests (tests/agents) prove by running
the real CLI against a fake of its model API: the prompt comes on standard input, the
agent may write the files its job produces (their absolute paths end every prompt) and
run `striatum job ...`, and its API key is passed through by name.

Two roles: an **author** may change the repository; a **reviewer** may not, where the
CLI can be told so, and may still write its artifact directory and record a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("author", "reviewer")
PLACEHOLDER_DIR = "{artifact_dir}"


@dataclass(frozen=True)
class AgentCli:
    name: str
    package: str  # the npm package, at the version tests/agents/package.json pins
    flags: frozenset[str]  # every option it accepts (long and short)
    valued: frozenset[str]  # the options that take the next argument as their value
    model_flag: str
    author: tuple[str, ...]
    reviewer: tuple[str, ...]
    env: tuple[tuple[str, str], ...]  # passed through by name (or set) for every lane
    timeout: int
    note: str  # what a reader of docs/workers.md must know


CLAUDE = AgentCli(
    name="claude", package="@anthropic-ai/claude-code",
    flags=frozenset({
        "--add-dir", "--agent", "--agents", "--allow-dangerously-skip-permissions",
        "--allowedTools", "--allowed-tools", "--append-system-prompt", "--betas",
        "--continue", "-c", "--dangerously-skip-permissions", "--debug", "-d",
        "--disable-slash-commands", "--disallowedTools", "--disallowed-tools", "--effort",
        "--fallback-model", "--fork-session", "--include-partial-messages",
        "--input-format", "--json-schema", "--max-budget-usd", "--mcp-config", "--model",
        "--no-session-persistence", "--output-format", "--permission-mode",
        "--permission-prompt-tool", "--plugin-dir", "--print", "-p", "--resume", "-r",
        "--session-id", "--setting-sources", "--settings", "--strict-mcp-config",
        "--system-prompt", "--tools", "--verbose", "--help", "-h", "--version", "-v"}),
    valued=frozenset({
        "--add-dir", "--agent", "--agents", "--allowedTools", "--allowed-tools",
        "--append-system-prompt", "--betas", "--debug", "--disallowedTools",
        "--disallowed-tools", "--effort", "--fallback-model", "--input-format",
        "--json-schema", "--max-budget-usd", "--mcp-config", "--model", "--output-format",
        "--permission-mode", "--permission-prompt-tool", "--plugin-dir", "--resume", "-r",
        "--session-id", "--setting-sources", "--settings", "--system-prompt", "--tools"}),
    model_flag="--model",
    # --allowedTools takes every argument after it: given last, and with "=".
    author=("claude", "-p", "--permission-mode", "acceptEdits", "--add-dir", PLACEHOLDER_DIR,
            "--allowedTools=Bash(striatum *) Read Edit Write"),
    reviewer=("claude", "-p", "--add-dir", PLACEHOLDER_DIR,
              f"--allowedTools=Bash(striatum *) Read Edit(/{PLACEHOLDER_DIR}/**)"),
    env=(("ANTHROPIC_API_KEY", "${ANTHROPIC_API_KEY}"),
         ("ANTHROPIC_BASE_URL", "${ANTHROPIC_BASE_URL}"),
         # No update checks, telemetry or error reports from a headless lane (without it
         # it looks up api.anthropic.com even when given a base URL).
         ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")),
    timeout=3600,
    note="`-p` refuses every file write and command it was not allowed: the permission "
         "mode and `--allowedTools` are what let it work headless.",
)

CODEX = AgentCli(
    name="codex", package="@openai/codex",
    flags=frozenset({
        "exec", "--config", "-c", "--enable", "--disable", "--image", "-i", "--model", "-m",
        "--oss", "--local-provider", "--profile", "-p", "--sandbox", "-s",
        "--dangerously-bypass-approvals-and-sandbox", "--cd", "-C", "--add-dir",
        "--skip-git-repo-check", "--ephemeral", "--ignore-user-config", "--ignore-rules",
        "--output-schema", "--color", "--json", "--output-last-message", "-o", "--help",
        "-h", "--version", "-V"}),
    valued=frozenset({
        "--config", "-c", "--enable", "--disable", "--image", "-i", "--model", "-m",
        "--local-provider", "--profile", "-p", "--sandbox", "-s", "--cd", "-C", "--add-dir",
        "--output-schema", "--color", "--output-last-message", "-o"}),
    model_flag="-m",
    # workspace-write blocks sockets unless told: the agent's `striatum job ...` must reach
    # the database. Outside a git repository exec exits 1 without --skip-git-repo-check.
    # Its shell runs `bash -lc` unless told, and a login shell's /etc/profile resets PATH,
    # losing the folder striatum is installed in. Analytics and plugins are traffic
    # besides the model's (ab.chatgpt.com; github.com, chatgpt.com).
    author=("codex", "exec", "--sandbox", "workspace-write", "--skip-git-repo-check",
            "-c", "sandbox_workspace_write.network_access=true",
            "-c", "allow_login_shell=false", "-c", "analytics.enabled=false",
            "-c", "features.plugins=false", "--add-dir", PLACEHOLDER_DIR, "-"),
    # The workspace is the artifact directory: it may read the repository, write only there.
    reviewer=("codex", "exec", "--cd", PLACEHOLDER_DIR, "--sandbox", "workspace-write",
              "--skip-git-repo-check", "-c", "sandbox_workspace_write.network_access=true",
              "-c", "allow_login_shell=false", "-c", "analytics.enabled=false",
              "-c", "features.plugins=false", "-"),
    env=(("CODEX_API_KEY", "${CODEX_API_KEY}"), ("CODEX_HOME", "${CODEX_HOME}")),
    timeout=3600,
    note="It reads `CODEX_API_KEY` (not `OPENAI_API_KEY`), its endpoint from "
         "`openai_base_url` in its config.toml (not `OPENAI_BASE_URL`), and the prompt from "
         "standard input (`-`); `read-only` can write nothing, not even a verdict.",
)

GEMINI = AgentCli(
    name="gemini", package="@google/gemini-cli",
    flags=frozenset({
        "--debug", "-d", "--model", "-m", "--prompt", "-p", "--prompt-interactive", "-i",
        "--skip-trust", "--worktree", "-w", "--sandbox", "-s", "--yolo", "-y",
        "--approval-mode", "--policy", "--admin-policy", "--allowed-mcp-server-names",
        "--allowed-tools", "--extensions", "-e", "--include-directories",
        "--output-format", "-o", "--raw-output", "--accept-raw-output-risk", "--resume",
        "-r", "--session-id", "--help", "-h", "--version", "-v"}),
    valued=frozenset({
        "--model", "-m", "--prompt", "-p", "--prompt-interactive", "-i", "--approval-mode",
        "--policy", "--admin-policy", "--allowed-mcp-server-names", "--allowed-tools",
        "--extensions", "-e", "--include-directories", "--output-format", "-o", "--resume",
        "-r", "--session-id"}),
    model_flag="-m",
    # auto_edit lets it write but takes the shell away headless: the shell is allowed
    # back for striatum alone.
    # Its prompt comes on standard input alone: a -p text would be appended to it, after
    # the contract that should end it.
    author=("gemini", "--approval-mode", "auto_edit", "--include-directories",
            PLACEHOLDER_DIR, "--allowed-tools", "run_shell_command(striatum)"),
    reviewer=("gemini", "--allowed-tools", "run_shell_command(striatum)"),
    env=(("GEMINI_API_KEY", "${GEMINI_API_KEY}"),
         ("GOOGLE_GEMINI_BASE_URL", "${GOOGLE_GEMINI_BASE_URL}"),
         # A folder nobody trusted interactively makes it exit 55.
         ("GEMINI_CLI_TRUST_WORKSPACE", "true")),
    timeout=3600,
    note="Headless, it exits 55 in a folder not trusted (the lane sets "
         "`GEMINI_CLI_TRUST_WORKSPACE`); a reviewer lane cannot write files, so a review "
         "that produces some needs the author lane. Its usage statistics stop only by a "
         "setting: `\"privacy\": {\"usageStatisticsEnabled\": false}` in "
         "`~/.gemini/settings.json`, beside `auth.selectedType` when you log in by key.",
)

CLIS: dict[str, AgentCli] = {cli.name: cli for cli in (CLAUDE, CODEX, GEMINI)}


def preset(cli: str, role: str = "author", model: str | None = None) -> dict[str, Any]:
    """The lane (a workflow's lane object) that runs ``cli`` in ``role``."""
    agent = CLIS[cli]
    command = list(agent.author if role == "author" else agent.reviewer)
    if model:
        # Right after the program (and codex's `exec`): before the prompt argument and
        # the last, variadic options.
        at = 2 if command[1:2] == ["exec"] else 1
        command[at:at] = [agent.model_flag, model]
    return {"command": command, "stdin": "{prompt_file}", "timeout": agent.timeout,
            "env": dict(agent.env)}


def docs_section() -> str:
    """The presets as docs/workers.md shows them (generated; a test keeps them equal)."""
    from .fmt import format_value

    parts = ["<!-- generated by `python -m striatum.compiler.presets`: do not edit -->", ""]
    for agent in CLIS.values():
        parts += [f"**{agent.name}** (npm `{agent.package}`). {agent.note}", ""]
        for role in ROLES:
            lane = format_value(preset(agent.name, role))
            parts += [f"`striatum lane preset {agent.name} --role {role}`:", "",
                      "```json", lane, "```", ""]
    parts.append("<!-- end of generated presets -->")
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    print(docs_section(), end="")
