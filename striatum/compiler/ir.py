"""The workflow IR: frozen dataclasses that JSON and the DSL both load into.

``normalize`` turns a schema-valid raw document into the IR, filling in
defaults; ``to_document`` is its inverse in authoring form (defaults left
out, fixed key order), so ``to_document(normalize(d))`` is a fixed point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LaneKind = Literal["command", "operator", "human"]
JobKind = Literal["task", "review", "checkpoint"]
OnExhausted = Literal["escalate", "fail", "accept"]
Isolation = Literal["none", "worktree"]
Scalar = str | int | bool

DEFAULT_MAX_ATTEMPTS = 3
# What a review ends with; ``needs_revision`` only when it has a ``revise``.
VERDICTS = ("accept", "needs_revision", "reject")
_WITHOUT_REVISE = tuple(v for v in VERDICTS if v != "needs_revision")
TEMPLATE_VARIABLES = ("run", "job", "workflow", "vars", "artifacts", "iteration", "attempt",
                      "feedback")


@dataclass(frozen=True, slots=True)
class Lane:
    name: str
    kind: LaneKind = "command"
    command: tuple[str, ...] = ()
    stdin: str | None = None  # a file piped to the command, e.g. "{prompt_file}"
    timeout: int | None = None
    env: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Prompt:
    """A Jinja2 template: a file relative to the workflow file, or inline text."""

    source: Literal["file", "text"]
    value: str


@dataclass(frozen=True, slots=True)
class Revision:
    target: str
    max: int
    on_exhausted: OnExhausted = "escalate"


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    lane: str
    kind: JobKind = "task"
    title: str | None = None
    needs: tuple[str, ...] = ()
    prompt: Prompt | None = None
    produces: tuple[str, ...] = ()
    consumes: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    isolation: Isolation = "none"
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    revise: Revision | None = None
    # choice name -> the direct successors that proceed when it is chosen
    choices: tuple[tuple[str, tuple[str, ...]], ...] = ()
    index: int = field(default=0, compare=False)  # position in the jobs list

    @property
    def outcomes(self) -> tuple[str, ...]:
        """What may end this job: a checkpoint's choices, a review's verdicts, nothing else."""
        if self.kind == "checkpoint":
            return tuple(name for name, _ in self.choices)
        if self.kind == "review":
            return VERDICTS if self.revise else _WITHOUT_REVISE
        return ()


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    lanes: tuple[Lane, ...]
    jobs: tuple[Job, ...]
    title: str | None = None
    vars: tuple[tuple[str, Scalar], ...] = ()
    final: tuple[str, ...] = ()

    def lane(self, name: str) -> Lane | None:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        return None

    @property
    def job_ids(self) -> tuple[str, ...]:
        return tuple(job.id for job in self.jobs)


def _int(value: Any) -> int:
    # JSON Schema counts 2.0 as an integer; the IR (and canonical JSON) holds ints only.
    return int(value)


def _scalar(value: Any) -> Scalar:
    if isinstance(value, float):
        return int(value)
    assert isinstance(value, str | int | bool)
    return value


def _prompt(raw: Any) -> Prompt | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return Prompt("file", raw)
    return Prompt("text", raw["text"])


def _job(raw: dict[str, Any], index: int) -> Job:
    revise = raw.get("revise")
    return Job(
        id=raw["id"],
        lane=raw["lane"],
        kind=raw.get("kind", "task"),
        title=raw.get("title"),
        needs=tuple(raw.get("needs", ())),
        prompt=_prompt(raw.get("prompt")),
        produces=tuple(raw.get("produces", ())),
        consumes=tuple(raw.get("consumes", ())),
        writes=tuple(raw.get("writes", ())),
        isolation=raw.get("isolation", "none"),
        max_attempts=_int(raw.get("max_attempts", DEFAULT_MAX_ATTEMPTS)),
        revise=None if revise is None else Revision(
            revise["target"], _int(revise["max"]), revise.get("on_exhausted", "escalate")),
        choices=tuple((name, tuple(succ)) for name, succ in raw.get("choices", {}).items()),
        index=index,
    )


def normalize(document: dict[str, Any]) -> Workflow:
    """Build the IR from a document that passed the schema."""
    lanes = tuple(
        Lane(name=name, kind=raw.get("kind", "command"), command=tuple(raw.get("command", ())),
             stdin=raw.get("stdin"),
             timeout=None if raw.get("timeout") is None else _int(raw["timeout"]),
             env=tuple(raw.get("env", {}).items()))
        for name, raw in document["lanes"].items()
    )
    jobs = tuple(_job(raw, i) for i, raw in enumerate(document["jobs"]))
    return Workflow(name=document["name"], lanes=lanes, jobs=jobs, title=document.get("title"),
                    vars=tuple((k, _scalar(v)) for k, v in document.get("vars", {}).items()),
                    final=tuple(document.get("final", ())))


def lane_document(lane: Lane) -> dict[str, Any]:
    if lane.kind != "command":
        return {"kind": lane.kind}
    doc: dict[str, Any] = {"command": list(lane.command)}
    if lane.stdin is not None:
        doc["stdin"] = lane.stdin
    if lane.timeout is not None:
        doc["timeout"] = lane.timeout
    if lane.env:
        doc["env"] = dict(lane.env)
    return doc


def job_document(job: Job) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": job.id, "lane": job.lane}
    if job.kind != "task":
        doc["kind"] = job.kind
    if job.title is not None:
        doc["title"] = job.title
    if job.needs:
        doc["needs"] = list(job.needs)
    if job.prompt is not None:
        doc["prompt"] = job.prompt.value if job.prompt.source == "file" else {
            "text": job.prompt.value}
    for key in ("produces", "consumes", "writes"):
        value = getattr(job, key)
        if value:
            doc[key] = list(value)
    if job.isolation != "none":
        doc["isolation"] = job.isolation
    if job.max_attempts != DEFAULT_MAX_ATTEMPTS:
        doc["max_attempts"] = job.max_attempts
    if job.revise is not None:
        revise: dict[str, Any] = {"target": job.revise.target, "max": job.revise.max}
        if job.revise.on_exhausted != "escalate":
            revise["on_exhausted"] = job.revise.on_exhausted
        doc["revise"] = revise
    if job.choices:
        doc["choices"] = {name: list(succ) for name, succ in job.choices}
    return doc


def to_document(workflow: Workflow) -> dict[str, Any]:
    """The workflow in authoring form: what ``fmt --to json`` writes."""
    doc: dict[str, Any] = {"name": workflow.name}
    if workflow.title is not None:
        doc["title"] = workflow.title
    if workflow.vars:
        doc["vars"] = dict(workflow.vars)
    if workflow.final:
        doc["final"] = list(workflow.final)
    doc["lanes"] = {lane.name: lane_document(lane) for lane in workflow.lanes}
    doc["jobs"] = [job_document(job) for job in workflow.jobs]
    return doc
