"""Render a job's prompt for one attempt, from the template pinned in the compiled workflow.

Jinja2 with StrictUndefined: a template that names something the run does not
have fails loudly at claim time instead of sending an agent a blank.

A prompt with no template syntax at all is used as it is, without Jinja2:
importing and compiling it cost ~30 ms of every ``job claim``, for a result
Jinja2 would have left unchanged but for one thing its lexer always does,
turning CRLF and CR line ends into LF, which ``_as_rendered`` repeats.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import Conflict
from .records import JobRow, RunRow

MAX_ARTIFACT_CHARS = 1_000_000
# What starts a Jinja2 expression, statement or comment with the default delimiters.
TEMPLATE_MARKS = ("{{", "{%", "{#")
_NEWLINE = re.compile(r"\r\n?")


def scratch_dir(run: RunRow, job: JobRow) -> Path:
    """Scratch space next to the work, never the record: .striatum/ in the repository."""
    return (Path(run.repo_path) / ".striatum" / "runs" / run.id / job.job_id
            / f"i{job.iteration}a{job.attempt}")


def is_template(text: str) -> bool:
    """Whether Jinja2 would find anything but plain text in ``text``."""
    return any(mark in text for mark in TEMPLATE_MARKS)


def _as_rendered(text: str) -> str:
    """Plain text as Jinja2 renders it (newline_sequence "\\n", keep_trailing_newline)."""
    return _NEWLINE.sub("\n", text) if "\r" in text else text


def render(run: RunRow, job: JobRow, compiled_job: dict[str, Any], *, artifacts: dict[str, str],
           feedback: str | None) -> str:
    prompt = compiled_job.get("prompt")
    if prompt is None:
        title = compiled_job.get("title") or ""
        if not is_template(title):
            # The values are substituted, not lexed: Jinja2 leaves their newlines alone.
            return (f"Job {job.job_id} of workflow {run.workflow_name} (run {run.id}).\n"
                    f"{_as_rendered(title)}\n")
        template_text = (f"Job {{{{ job }}}} of workflow {{{{ workflow }}}} (run {{{{ run }}}}).\n"
                         f"{title}\n")
    else:
        template_text = prompt.get("text")
        if template_text is None:
            raise Conflict(f"the prompt file {prompt.get('file')!r} of {job.job_id!r} was "
                           "missing or unreadable when the run was prepared")
        if not is_template(template_text):
            return _as_rendered(template_text)
    return _render_template(template_text, run, job, artifacts=artifacts, feedback=feedback)


def _render_template(template_text: str, run: RunRow, job: JobRow, *,
                     artifacts: dict[str, str], feedback: str | None) -> str:
    import jinja2

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


def write_prompt(directory: Path, text: str) -> Path:
    """The attempt's prompt.md, next to its empty out/. The claim's other facts reach the
    lane as STRIATUM_* variables: every file made here is on the path from a job's
    claim to its lane's start."""
    (directory / "out").mkdir(parents=True, exist_ok=True)
    path = directory / "prompt.md"
    path.write_bytes(text.encode("utf-8"))
    return path
