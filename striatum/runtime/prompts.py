"""Prepare an attempt's prompt: render the template pinned in the compiled workflow and
write it where the lane reads it.

Jinja2 with StrictUndefined: a template that names something the run does not
have fails loudly (``PromptError``) instead of sending an agent a blank; the
claim then fails the job with that reason, since every attempt would fail alike.

A prompt with no template syntax at all is used as it is, without Jinja2:
importing and compiling it cost ~30 ms of every ``job claim``, for a result
Jinja2 would have left unchanged but for one thing its lexer always does,
turning CRLF and CR line ends into LF, which ``_as_rendered`` repeats.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound, PromptError
from .records import JobRow, RunRow

if TYPE_CHECKING:
    from ..compiler.compiled import CompiledWorkflow
    from .store import Store

MAX_ARTIFACT_CHARS = 1_000_000
# What starts a Jinja2 expression, statement or comment with the default delimiters.
TEMPLATE_MARKS = ("{{", "{%", "{#")
_NEWLINE = re.compile(r"\r\n?")


@dataclass(frozen=True)
class Scratch:
    """An attempt's files in scratch space next to the work, never the record: one folder
    per job in .striatum/ in the repository, holding each pass's baseline and, named for
    the attempt (``iNaM``), its prompt, its artifact folder, its lane's log, what a failure
    set aside and its worktree. Flat, so a claim makes one folder (a job's first attempt)
    and writes one file: the artifact folder is made by whoever hands the attempt to its
    agent (``make_out``), a worker as its lane starts, an operator's claim before it
    answers."""

    folder: Path  # the job's
    name: str  # the attempt's: i<iteration>a<attempt>

    @property
    def prompt(self) -> Path:
        return self.folder / f"{self.name}.md"

    @property
    def out(self) -> Path:
        """The artifact folder: what the job produces, and a review's verdict.json."""
        return self.folder / self.name

    @property
    def log(self) -> Path:
        return self.folder / f"{self.name}.log"

    @property
    def left(self) -> Path:
        return self.folder / f"{self.name}.left"

    @property
    def worktree(self) -> Path:
        return self.folder / f"{self.name}.worktree"

    @property
    def diff(self) -> Path:
        return self.folder / f"{self.name}.diff"

    @property
    def seen(self) -> Path:
        """What a review's prompt was rendered with (``judged``)."""
        return self.folder / f"{self.name}.seen.json"


def scratch(run: RunRow, job: JobRow) -> Scratch:
    """The scratch of the job's current attempt."""
    return Scratch(Path(run.repo_path) / ".striatum" / "runs" / run.id / job.job_id,
                   f"i{job.iteration}a{job.attempt}")


def scratch_of(prompt_file: Path) -> Scratch:
    """The scratch of the attempt whose prompt this is."""
    return Scratch(prompt_file.parent, prompt_file.stem)


def current_prompt(store: Store, run_id: str, job_id: str) -> Path:
    """The prompt file the claim of the job's current attempt wrote (NotFound before that
    claim: a prompt is rendered when its attempt is claimed, from what the run has then)."""
    run = store.read(RunRow, "run_record", {"run": run_id})
    if run is None:
        raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
    job = store.read(JobRow, "job_record", {"run": run_id, "job": job_id})
    if job is None:
        raise NotFound(f"run {run_id} has no job {job_id!r}",
                       hint=f"`striatum run status {run_id}` lists its jobs")
    path = scratch(run, job).prompt
    if not path.is_file():
        raise NotFound(f"job {job_id} of run {run_id} has no prompt for its current attempt "
                       f"(iteration {job.iteration}, attempt {job.attempt}): it is {job.status}",
                       hint="a prompt is rendered when its attempt is claimed")
    return path


def is_template(text: str) -> bool:
    """Whether Jinja2 would find anything but plain text in ``text``."""
    return any(mark in text for mark in TEMPLATE_MARKS)


def _as_rendered(text: str) -> str:
    """Plain text as Jinja2 renders it (newline_sequence "\\n", keep_trailing_newline)."""
    return _NEWLINE.sub("\n", text) if "\r" in text else text


def render(run: RunRow, job: JobRow, pinned: CompiledWorkflow, *, artifacts: dict[str, str],
           feedback: str | None) -> str:
    spec = pinned.jobs[job.job_id]
    prompt = pinned.prompts.get(job.job_id)
    if prompt is None:
        title = spec.title or ""
        if not is_template(title):
            # The values are substituted, not lexed: Jinja2 leaves their newlines alone.
            return (f"Job {job.job_id} of workflow {run.workflow_name} (run {run.id}).\n"
                    f"{_as_rendered(title)}\n")
        template_text = (f"Job {{{{ job }}}} of workflow {{{{ workflow }}}} (run {{{{ run }}}}).\n"
                         f"{title}\n")
    else:
        if prompt.text is None:
            raise PromptError(f"the prompt file {prompt.file!r} of {job.job_id!r} was "
                              "missing or unreadable when the run was prepared")
        template_text = prompt.text
        if not is_template(template_text):
            return _as_rendered(template_text)
    return render_template(template_text, run=run.id, job=job.job_id,
                           workflow=run.workflow_name, variables=run.vars,
                           artifacts=artifacts, iteration=job.iteration, attempt=job.attempt,
                           feedback=feedback)


def render_template(template_text: str, *, run: str, job: str, workflow: str,
                    variables: dict[str, Any], artifacts: dict[str, str], iteration: int,
                    attempt: int, feedback: str | None) -> str:
    """A prompt template with what a claim gives it; PromptError when it cannot be."""
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    try:
        return env.from_string(template_text).render(
            run=run, job=job, workflow=workflow, vars=variables,
            artifacts=artifacts, iteration=iteration, attempt=attempt,
            feedback=feedback or "")
    except Exception as exc:
        # A template can raise anything Python can (TypeError for {{ vars.goal + 1 }} on a
        # string, ZeroDivisionError, ...): all of it is the template's, and the same on
        # every attempt.
        said = str(exc) if isinstance(exc, jinja2.TemplateError) else \
            f"{type(exc).__name__}: {exc}"
        raise PromptError(f"cannot render the prompt of {job!r}: {said}",
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


def prepare_prompt(store: Store, run: RunRow, job: JobRow, pinned: CompiledWorkflow) -> Path:
    """Render the attempt's prompt and write it; its path. The artifacts and the last
    verdict are read only when the prompt can use them."""
    spec = pinned.jobs[job.job_id]
    latest = store.execute("latest_artifacts", {"run": run.id}) \
        if spec.consumes or spec.kind == "review" else []
    stored = [(a[2], a[3]) for a in latest if a[2] in spec.consumes]
    feedback = None
    if job.iteration > 0:
        reviewers = [j.id for j in pinned.workflow.jobs if j.revise]
        last = store.execute("last_verdict", {"run": run.id, "jobs": reviewers})
        feedback = str(last[0][0]) if last else None
    text = render(run, job, pinned, artifacts=read_artifacts(run.repo_path, stored),
                  feedback=feedback)
    attempt = scratch(run, job)
    if spec.kind == "review":
        from .judged import remember_seen  # judged needs this module: imported when used

        remember_seen(attempt.seen, pinned.graph, run, job.job_id, latest)
    return write_prompt(attempt, text + contract(run, job, pinned, attempt.out))


def contract(run: RunRow, job: JobRow, pinned: CompiledWorkflow, out: Path) -> str:
    """What the job must leave and how it reports, with every path written out: an agent
    (or its permission rules) cannot be expected to expand ``$STRIATUM_ARTIFACT_DIR``.
    Appended to the rendered prompt, after a rule."""
    spec = pinned.jobs[job.job_id]
    by_worker = job.lane_kind == "command"
    lines = ["", "---", f"striatum: this is job {job.job_id} of run {run.id} ({spec.kind}, "
             f"pass {job.iteration + 1}, attempt {job.attempt + 1})."]
    if spec.produces:
        lines.append("Write each file this job produces at exactly this path:")
        lines += [f"  {out / name}" for name in spec.produces]
        if not by_worker:
            lines.append("then publish each one: striatum job publish --artifact PATH "
                         "--as NAME")
    if spec.kind == "review":
        lines.append("Record your verdict with one of these commands:")
        lines += [f'  striatum job verdict {outcome} --reason "..."' for outcome in
                  spec.outcomes]
        if by_worker:
            lines.append(f'or write {out / "verdict.json"} holding '
                         '{"verdict": "accept", "reason": "..."}.')
    elif not by_worker:
        lines.append("When the work is done: striatum job complete")
    elif not spec.produces:
        lines.append("Exit when the work is done.")
    return "\n".join(lines) + "\n"


def write_prompt(attempt: Scratch, text: str) -> Path:
    """The attempt's prompt, in its job's folder. The claim's other facts reach the lane as
    STRIATUM_* variables: every file made here is on the path from a job's claim to its
    lane's start: one ``mkdir`` (none after a job's first attempt) and one write, each a
    system call of a few hundred microseconds on a journalled file system."""
    folder = attempt.folder
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass  # the job's folder after its first attempt
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)  # the run's first claim here
    path = attempt.prompt
    left = memoryview(text.encode("utf-8"))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        while left:  # one write, but for a prompt of megabytes
            left = left[os.write(descriptor, left):]
    finally:
        os.close(descriptor)
    return path


def make_out(artifact_dir: str) -> None:
    """The attempt's artifact folder, made (empty) before its agent is told of it; made
    again without harm."""
    os.makedirs(artifact_dir, exist_ok=True)
