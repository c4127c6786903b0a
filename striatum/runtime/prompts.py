"""Render a job's prompt for one attempt, from the template pinned in the compiled workflow.

Jinja2 with StrictUndefined: a template that names something the run does not
have fails loudly at claim time instead of sending an agent a blank.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import Conflict
from .records import JobRow, RunRow

MAX_ARTIFACT_CHARS = 1_000_000


def scratch_dir(run: RunRow, job: JobRow) -> Path:
    """Scratch space next to the work, never the record: .striatum/ in the repository."""
    return (Path(run.repo_path) / ".striatum" / "runs" / run.id / job.job_id
            / f"i{job.iteration}a{job.attempt}")


def render(run: RunRow, job: JobRow, compiled_job: dict[str, Any], *, artifacts: dict[str, str],
           feedback: str | None) -> str:
    import jinja2

    prompt = compiled_job.get("prompt")
    if prompt is None:
        template_text = (f"Job {{{{ job }}}} of workflow {{{{ workflow }}}} (run {{{{ run }}}}).\n"
                         f"{compiled_job.get('title') or ''}\n")
    else:
        template_text = prompt.get("text")
        if template_text is None:
            raise Conflict(f"the prompt file {prompt.get('file')!r} of {job.job_id!r} was "
                           "missing or unreadable when the run was prepared")
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    try:
        return env.from_string(template_text).render(
            run=run.id, job=job.job_id, workflow=run.workflow_name, vars=run.vars,
            artifacts=artifacts, iteration=job.iteration, attempt=job.attempt,
            feedback=feedback or "")
    except jinja2.TemplateError as exc:
        raise Conflict(f"cannot render the prompt of {job.job_id!r}: {exc}",
                       hint="`striatum workflow lint` checks templates before a run") from exc


def read_artifacts(repo: str, stored: list[tuple[str, str]]) -> dict[str, str]:
    """path -> text for the artifacts a job consumes (binary ones as a note)."""
    out: dict[str, str] = {}
    for path, stored_at in stored:
        try:
            data = (Path(repo) / stored_at).read_bytes()[:MAX_ARTIFACT_CHARS * 4]
            out[path] = data.decode("utf-8")[:MAX_ARTIFACT_CHARS]
        except (OSError, UnicodeDecodeError) as exc:
            out[path] = f"[artifact {path} could not be read as text: {exc}]"
    return out


def write_prompt(directory: Path, text: str, context: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "out").mkdir(exist_ok=True)
    path = directory / "prompt.md"
    path.write_text(text, encoding="utf-8")
    (directory / "context.json").write_text(json.dumps(context, indent=2, sort_keys=True),
                                            encoding="utf-8")
    return path
