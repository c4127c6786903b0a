"""What can be known about a run before any agent is started: ``run prepare`` checks it
(``--dry-run`` checks it alone), so a run does not fail at its first claim, or after
minutes of other jobs, for a reason that was there all along.

Errors refuse the run: a prompt template that cannot render with the run's variables
(every attempt would fail alike), a worktree job where the repository cannot give one.
Warnings are said and the run goes on: a lane's executable that is not on this
machine's PATH (its workers may run elsewhere), ``writes`` that cannot be checked
outside a git repository. A lane that asks for the sandbox where bubblewrap cannot run is
an error, not a warning: such a lane is never run unsandboxed, so every attempt would
fail.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from ..compiler.compiled import CompiledWorkflow
from ..errors import PromptError
from . import sandbox
from .prompts import is_template, render_template


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    job: str | None
    message: str
    hint: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"severity": self.severity, "job": self.job, "message": self.message,
                "hint": self.hint}

    def line(self) -> str:
        return f"{self.severity}: {self.message}" + (f"\n  hint: {self.hint}"
                                                     if self.hint else "")


def preflight(compiled: CompiledWorkflow, repo: str, variables: dict[str, Any],
              base_commit: str | None, *, path: str | None = None) -> list[Finding]:
    """Every problem that can be known now, errors first."""
    found = [*_templates(compiled, variables), *_repository(compiled, repo, base_commit),
             *_executables(compiled, repo, path), *_sandbox(compiled)]
    return sorted(found, key=lambda f: f.severity != "error")


def _templates(compiled: CompiledWorkflow, variables: dict[str, Any]) -> list[Finding]:
    out = []
    name = compiled.workflow.name
    for spec in compiled.workflow.jobs:
        prompt = compiled.prompts.get(spec.id)
        text = prompt.text if prompt is not None else None
        if text is None or not is_template(text):
            continue  # plain text; a missing file is refused by prepare itself
        # What a claim would give it: the artifacts it consumes (their text is not known
        # yet), and on a revision's pass the reviewer's feedback.
        passes = (0, 1) if _revisable(compiled, spec.id) else (0,)
        for iteration in passes:
            try:
                render_template(text, run="preflight", job=spec.id, workflow=name,
                                variables=variables,
                                artifacts={a: f"(the text of {a})" for a in spec.consumes},
                                iteration=iteration, attempt=0,
                                feedback="(a reviewer's reason)" if iteration else None)
            except PromptError as exc:
                out.append(Finding("error", spec.id, f"{exc.message} (pass {iteration + 1})",
                                   "fix the template or the variable; every attempt would "
                                   "fail alike"))
                break
    return out


def _revisable(compiled: CompiledWorkflow, job_id: str) -> bool:
    graph = compiled.graph
    return any(job_id in graph.ids_of(graph.region_bits(j.id))
               for j in compiled.workflow.jobs if j.revise)


def _repository(compiled: CompiledWorkflow, repo: str, base_commit: str | None
                ) -> list[Finding]:
    out = []
    isolated = [j.id for j in compiled.workflow.jobs if j.isolation == "worktree"]
    if isolated and base_commit is None:
        out.append(Finding("error", isolated[0],
                           f"{', '.join(isolated)} run in a worktree, which needs {repo} to "
                           "be a git repository with at least one commit",
                           "`git init` and commit, or drop isolation: worktree"))
    writers = [j.id for j in compiled.workflow.jobs if j.writes and j.isolation != "worktree"]
    if writers and not os.path.isdir(os.path.join(repo, ".git")) and base_commit is None:
        out.append(Finding("warning", writers[0],
                           f"{', '.join(writers)} declare writes, which cannot be checked: "
                           f"{repo} is not a git repository",
                           "`git init` it to have each job held to its writes"))
    return out


def _executables(compiled: CompiledWorkflow, repo: str, path: str | None) -> list[Finding]:
    used = {j.lane for j in compiled.workflow.jobs}
    out = []
    for lane in compiled.workflow.lanes:
        if lane.name not in used or lane.kind != "command" or not lane.command:
            continue
        program = lane.command[0]
        if "{" in program:
            continue  # filled in at claim time
        if os.sep in program:
            where = program if os.path.isabs(program) else os.path.join(repo, program)
            ok = os.path.isfile(where) and os.access(where, os.X_OK)
        else:
            ok = shutil.which(program, path=path) is not None
        if not ok:
            out.append(Finding("warning", None,
                               f"lane {lane.name} runs {program!r}, which is not "
                               + ("an executable file" if os.sep in program
                                  else "on this machine's PATH")
                               + ": a worker here would fail its jobs at once (exit 127)",
                               "install it, or give the lane its full path; a worker "
                               "elsewhere needs it on its own PATH"))
    return out


def _sandbox(compiled: CompiledWorkflow) -> list[Finding]:
    used = {j.lane for j in compiled.workflow.jobs}
    sandboxed = [lane.name for lane in compiled.workflow.lanes
                 if lane.sandbox and lane.kind == "command" and lane.name in used]
    if not sandboxed:
        return []
    reason = sandbox.probe()
    if reason is None:
        return []
    lanes = ("lane " if len(sandboxed) == 1 else "lanes ") + ", ".join(sandboxed)
    return [Finding("error", None,
                    f"{lanes} must run sandboxed, and {reason}: a "
                    "worker here would fail their jobs rather than run them unsandboxed",
                    sandbox.INSTALL_HINT)]
