"""Lanes that run a known agent CLI (claude, codex, gemini), checked against what that CLI
does headless (``compiler/presets.py`` holds what it accepts):

- STR315 a flag the CLI does not have, or `--allowedTools` swallowing the arguments
  after it;
- STR316 a review on a lane whose agent can neither run `striatum job verdict` nor
  write `verdict.json`: its verdict is never recorded;
- STR317 a job that produces files on a lane whose agent may not write them (with
  `isolation: worktree`, the artifact directory lies outside the worktree);
- STR318 a lane that will not start headless (gemini in a folder not trusted).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..diagnostics import Diagnostic, diag
from ..ir import Job, Lane
from ..presets import CLIS, PLACEHOLDER_DIR, AgentCli
from ..text import echo
from .vendors import program_and_args

if TYPE_CHECKING:
    from .context import LintContext


@dataclass
class _Argv:
    """A lane's command as its CLI reads it."""

    cli: AgentCli
    options: dict[str, list[str]] = field(default_factory=dict)  # option -> its values
    unknown: list[str] = field(default_factory=list)
    swallowed: list[str] = field(default_factory=list)  # after a variadic --allowedTools

    def value(self, *names: str) -> str | None:
        for name in names:
            if self.options.get(name):
                return self.options[name][-1]
        return None

    def has(self, *names: str) -> bool:
        return any(name in self.options for name in names)

    def joined(self, *names: str) -> str:
        return " ".join(v for name in names for v in self.options.get(name, []))


def _parse(lane: Lane) -> _Argv | None:
    found = program_and_args(lane.command)
    if found is None or found[0] not in CLIS:
        return None
    cli = CLIS[found[0]]
    argv = _Argv(cli)
    args = found[1]
    i = 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("-") or token == "-":
            continue
        name, equals, value = token.partition("=")
        if name not in cli.flags:
            argv.unknown.append(name)
            continue
        values = argv.options.setdefault(name, [])
        if equals:
            values.append(value)
        elif name in cli.valued and i < len(args):
            values.append(args[i])
            i += 1
            if cli.name == "claude" and name in ("--allowedTools", "--allowed-tools",
                                                 "--disallowedTools", "--disallowed-tools"):
                # Variadic: every later argument is taken as one more rule.
                while i < len(args):
                    argv.swallowed.append(args[i])
                    values.append(args[i])
                    i += 1
    return argv


def _worktree(job: Job) -> bool:
    return job.isolation == "worktree"


def _reaches_artifacts(argv: _Argv, job: Job, *names: str) -> bool:
    """With a worktree the artifact directory lies outside the agent's workspace: it must
    be named to the CLI as one more directory (or be the workspace)."""
    return not _worktree(job) or any(PLACEHOLDER_DIR in v for n in names
                                     for v in argv.options.get(n, []))


def can_write(argv: _Argv, job: Job) -> bool:
    """Whether the agent may write the files of its artifact directory."""
    name = argv.cli.name
    if name == "claude":
        rules = argv.joined("--allowedTools", "--allowed-tools")
        allowed = (argv.value("--permission-mode") in ("acceptEdits", "bypassPermissions")
                   or argv.has("--dangerously-skip-permissions")
                   or any(word.split("(")[0] in ("Edit", "Write")
                          for word in rules.replace(",", " ").split()))
        return allowed and _reaches_artifacts(argv, job, "--add-dir")
    if name == "codex":
        if argv.has("--dangerously-bypass-approvals-and-sandbox"):
            return True
        sandbox = argv.value("--sandbox", "-s") or "read-only"
        if sandbox == "danger-full-access":
            return True
        return sandbox == "workspace-write" and _reaches_artifacts(argv, job, "--add-dir",
                                                                   "--cd", "-C")
    approval = "yolo" if argv.has("--yolo", "-y") else argv.value("--approval-mode")
    return (approval in ("auto_edit", "yolo")
            and _reaches_artifacts(argv, job, "--include-directories"))


def can_record_verdict(argv: _Argv, job: Job) -> bool:
    """Whether a review's agent can run `striatum job verdict` or write verdict.json."""
    if can_write(argv, job):
        return True
    name = argv.cli.name
    if name == "claude":
        rules = argv.joined("--allowedTools", "--allowed-tools")
        return "Bash(striatum" in rules or "Bash" in rules.replace(",", " ").split()
    if name == "gemini":
        return "run_shell_command" in argv.joined("--allowed-tools")
    return False  # codex: its sandbox decides both, and it cannot write


def _jobs_on(ctx: LintContext, lane: Lane) -> list[Job]:
    return ctx.jobs_by_lane.get(lane.name, [])


def _per_isolation(check: Callable[[_Argv, Job], bool], argv: _Argv) -> Callable[[Job], bool]:
    """``check`` asked once per isolation: of a job it reads nothing else, and a lane
    may run 100,000 jobs."""
    answers: dict[str, bool] = {}

    def ask(job: Job) -> bool:
        if job.isolation not in answers:
            answers[job.isolation] = check(argv, job)
        return answers[job.isolation]
    return ask


def _agent_lanes(ctx: LintContext) -> list[tuple[Lane, _Argv]]:
    out = []
    for lane in ctx.workflow.lanes:
        if lane.kind == "command":
            argv = _parse(lane)
            if argv is not None:
                out.append((lane, argv))
    return out


def _hint(cli: AgentCli, role: str) -> str:
    return f"`striatum lane preset {cli.name} --role {role}` prints a lane that works"


def agent_flag_unknown(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for lane, argv in _agent_lanes(ctx):
        path = ("lanes", lane.name, "command")
        for flag in argv.unknown:
            out.append(diag("STR315", f"lane {lane.name!r}: {argv.cli.name} has no option "
                                      f"{echo(flag)}", path, hint=_hint(argv.cli, "author")))
        if argv.swallowed:
            out.append(diag(
                "STR315", f"lane {lane.name!r}: claude's --allowedTools takes every argument "
                          f"after it as a rule, so {echo(argv.swallowed[0])} is not read as "
                          "meant", path, hint="write it last, as --allowedTools=\"RULES\""))
    return out


def reviewer_cannot_record_verdict(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for lane, argv in _agent_lanes(ctx):
        can = _per_isolation(can_record_verdict, argv)
        for job in _jobs_on(ctx, lane):
            if job.kind == "review" and not can(job):
                out.append(diag(
                    "STR316", f"review {job.id!r} runs {argv.cli.name} on lane {lane.name!r}, "
                              "which may neither run `striatum job verdict` nor write "
                              "verdict.json: its verdict would never be recorded",
                    ("jobs", job.index, "lane"), hint=_hint(argv.cli, "reviewer")))
    return out


def lane_cannot_write_produces(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for lane, argv in _agent_lanes(ctx):
        can = _per_isolation(can_write, argv)
        for job in _jobs_on(ctx, lane):
            if job.produces and not can(job):
                where = " outside its worktree" if _worktree(job) else ""
                out.append(diag(
                    "STR317", f"job {job.id!r} produces {echo(job.produces[0])}"
                              f"{' and more' if len(job.produces) > 1 else ''}, but lane "
                              f"{lane.name!r} does not let {argv.cli.name} write its artifact "
                              f"directory{where}", ("jobs", job.index, "produces"),
                    hint=_hint(argv.cli, "author")))
    return out


def agent_lane_will_not_start(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for lane, argv in _agent_lanes(ctx):
        trusted = dict(lane.env).get("GEMINI_CLI_TRUST_WORKSPACE", "").lower()
        if argv.cli.name == "gemini" and trusted not in ("true", "1"):
            out.append(diag(
                "STR318", f"lane {lane.name!r}: gemini exits 55 headless in a folder nobody "
                          "trusted interactively, which a run's repository usually is",
                ("lanes", lane.name), key=True,
                hint='add "env": {"GEMINI_CLI_TRUST_WORKSPACE": "true"} to the lane'))
    return out
