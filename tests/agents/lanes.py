"""Every lane the conformance tests run, in one table: ``LANES[vendor][role]``.

Each is a lane as a workflow declares it (``command``, ``stdin``, ``env``,
``timeout``): the real CLI, given the prompt on stdin, with the flags that let
it write the job's files and run ``striatum job ...`` headless. The variables
a CLI needs pass through from the worker by name (``"${NAME}"``), so the same
lane runs against the real API or, here, against a fake; the switches that stop
its other traffic are set outright (the tests check that, with them, no CLI
looks up any host name).

A reviewer gets the same flags as an author today: it records its verdict with
the shell tool and may write files it produces.
"""

from __future__ import annotations

import copy
from typing import Any

VENDORS = ("claude", "codex", "gemini")
ROLES = ("author", "reviewer")
TIMEOUT = 180  # seconds; a scripted conversation takes a few


def _claude() -> dict[str, Any]:
    return {
        "command": ["claude", "-p", "--permission-mode", "acceptEdits",
                    "--allowedTools=Bash(striatum *) Read Edit Write"],
        "stdin": "{prompt_file}",
        # Without the switch it looks up api.anthropic.com even with a base URL set.
        "env": {"ANTHROPIC_API_KEY": "${ANTHROPIC_API_KEY}",
                "ANTHROPIC_BASE_URL": "${ANTHROPIC_BASE_URL}",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
        "timeout": TIMEOUT,
    }


def _codex() -> dict[str, Any]:
    return {
        # allow_login_shell=false: its shell tool runs `bash -lc` otherwise, and a login
        # shell's /etc/profile resets PATH, losing the folder `striatum` is installed in.
        # analytics (ab.chatgpt.com) and plugins (github.com, api.github.com, chatgpt.com)
        # are the traffic it makes besides the model's.
        "command": ["codex", "exec", "--sandbox", "workspace-write", "--skip-git-repo-check",
                    "-c", "sandbox_workspace_write.network_access=true",
                    "-c", "allow_login_shell=false",
                    "-c", "analytics.enabled=false", "-c", "features.plugins=false",
                    "--add-dir", "{artifact_dir}", "-"],
        "stdin": "{prompt_file}",
        "env": {"CODEX_API_KEY": "${CODEX_API_KEY}", "CODEX_HOME": "${CODEX_HOME}"},
        "timeout": TIMEOUT,
    }


def _gemini() -> dict[str, Any]:
    return {
        "command": ["gemini", "--approval-mode", "auto_edit",
                    "--allowed-tools", "run_shell_command(striatum)"],
        "stdin": "{prompt_file}",
        # Its usage statistics (play.googleapis.com) stop only by a setting,
        # privacy.usageStatisticsEnabled, in a settings file: sandbox.prepare_home.
        "env": {"GEMINI_API_KEY": "${GEMINI_API_KEY}",
                "GOOGLE_GEMINI_BASE_URL": "${GOOGLE_GEMINI_BASE_URL}",
                "GEMINI_CLI_TRUST_WORKSPACE": "true"},
        "timeout": TIMEOUT,
    }


LANES: dict[str, dict[str, dict[str, Any]]] = {
    "claude": {"author": _claude(), "reviewer": _claude()},
    "codex": {"author": _codex(), "reviewer": _codex()},
    "gemini": {"author": _gemini(), "reviewer": _gemini()},
}


def lane(vendor: str, role: str) -> dict[str, Any]:
    """A copy of the lane of ``vendor`` for ``role`` (author or reviewer)."""
    return copy.deepcopy(LANES[vendor][role])


# The same CLIs with none of the flags that allow writing files and running commands
# headless: the controls that show a refusal is seen for what it is.
UNPERMITTED: dict[str, dict[str, Any]] = {
    "claude": {**_claude(), "command": ["claude", "-p"]},
    "codex": {**_codex(), "command": ["codex", "exec", "--skip-git-repo-check", "-"]},
    "gemini": {**_gemini(), "command": ["gemini"]},
}
