"""The workflow IR: frozen dataclasses that JSON and the DSL both load into.

``normalize`` turns a schema-valid raw document into the IR, filling in
defaults; ``to_document`` is its inverse in authoring form (defaults left
out, fixed key order), so ``to_document(normalize(d))`` is a fixed point.

A lane's or a job's fields cross to and from documents by their dataclass
fields (``_read``, ``document``): the authoring form leaves defaults out, the
compiled form (``compiled.py``) writes every field. A new field is declared
once here, with its default; only a field whose document form is not its
value needs a line in ``_READ`` / ``_WRITE``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields, is_dataclass
from typing import Any, Literal

LaneKind = Literal["command", "operator", "human"]
JobKind = Literal["task", "review", "checkpoint"]
OnExhausted = Literal["escalate", "fail", "accept"]
# What a revision round that returns the previous round's finding ids does.
OnRepeat = Literal["continue", "escalate"]
Isolation = Literal["none", "worktree"]
Scalar = str | int | bool

DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_LANE_TIMEOUT = 3600  # seconds: what a worker gives a command lane without `timeout`
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
    sandbox: bool = False  # run under bubblewrap (runtime/sandbox.py)


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
    on_repeat: OnRepeat = "continue"


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
class Budget:
    """What a run may spend before it stops for a human; None: no limit of that kind."""

    max_job_runs: int | None = None
    max_wall_seconds: int | None = None
    max_cost: int | None = None  # in the unit the lanes report in usage.json


BUDGET_KEYS = ("max_job_runs", "max_wall_seconds", "max_cost")


@dataclass(frozen=True, slots=True)
class Workflow:
    name: str
    lanes: tuple[Lane, ...]
    jobs: tuple[Job, ...]
    title: str | None = None
    vars: tuple[tuple[str, Scalar], ...] = ()
    final: tuple[str, ...] = ()
    budget: Budget | None = None

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
    """A prompt as written (a file path, or {"text": ...}) or as compiled (with "file")."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return Prompt("file", raw)
    if raw.get("file") is not None:
        return Prompt("file", raw["file"])
    return Prompt("text", raw["text"])


def _prompt_document(prompt: Prompt) -> Any:
    return prompt.value if prompt.source == "file" else {"text": prompt.value}


def read_budget(raw: dict[str, Any] | None) -> Budget | None:
    if raw is None:
        return None
    return Budget(**{key: _int(raw[key]) for key in BUDGET_KEYS if raw.get(key) is not None})


def budget_document(budget: Budget) -> dict[str, int]:
    """The limits that are set, in a fixed order (the authoring and the compiled form)."""
    return {key: value for key in BUDGET_KEYS if (value := getattr(budget, key)) is not None}


def _revision(raw: dict[str, Any]) -> Revision:
    return Revision(raw["target"], _int(raw["max"]), raw.get("on_exhausted", "escalate"),
                    raw.get("on_repeat", "continue"))


# How a field crosses from a document to the IR and back, where that is not the value
# itself (a list read as a tuple, and written back as a list).
_READ: dict[str, Callable[[Any], Any]] = {
    "prompt": _prompt,
    "revise": lambda raw: None if raw is None else _revision(raw),
    "choices": lambda raw: tuple((name, tuple(succ)) for name, succ in raw.items()),
    "max_attempts": _int,
    "timeout": lambda raw: None if raw is None else _int(raw),
    "env": lambda raw: tuple(raw.items()),
}
_WRITE: dict[str, Callable[[Any], Any]] = {
    "prompt": lambda prompt: None if prompt is None else _prompt_document(prompt),
    "choices": lambda choices: {name: list(succ) for name, succ in choices},
    "env": dict,
}


def _read(cls: Any, raw: dict[str, Any], **extra: Any) -> Any:
    """A record of the IR from its document, field by field (absent: the default)."""
    readers = _readers(cls)
    values = {}
    # The document's keys, not the record's fields: a job writes 5 of its 15.
    for name, value in raw.items():
        if name in readers:
            read = readers[name]
            values[name] = (read(value) if read is not None
                            else tuple(value) if type(value) is list else value)
    return cls(**values, **extra)


_READERS: dict[type, dict[str, Callable[[Any], Any] | None]] = {}


def _readers(cls: type) -> dict[str, Callable[[Any], Any] | None]:
    """field name -> how its document value is read (None: as it is, a list as a tuple)."""
    if cls not in _READERS:
        _READERS[cls] = {f.name: _READ.get(f.name) for f in _fields(cls)}
    return _READERS[cls]


_FIELDS: dict[type, tuple[Field[Any], ...]] = {}
_RECORDS: dict[type, bool] = {}


def _fields(cls: type) -> tuple[Field[Any], ...]:
    # ``dataclasses.fields`` rebuilds its tuple on every call: a workflow of
    # 100,000 jobs asks it hundreds of thousands of times.
    if cls not in _FIELDS:
        _FIELDS[cls] = fields(cls)
    return _FIELDS[cls]


def _is_record(cls: type) -> bool:
    if cls not in _RECORDS:
        _RECORDS[cls] = is_dataclass(cls)
    return _RECORDS[cls]


def document(record: Any, *, defaults: bool) -> dict[str, Any]:
    """A record of the IR as a document, in field order; with ``defaults`` every field,
    else only those that differ from their default (the authoring form)."""
    out: dict[str, Any] = {}
    written, values = _written(type(record))
    for (name, default, write), value in zip(written, values(record), strict=True):
        if not defaults and value == default:
            continue
        if write is not None:
            out[name] = write(value)
        elif type(value) is tuple:
            out[name] = list(value)
        elif value is None or type(value) in _SCALARS:
            out[name] = value
        elif _is_record(type(value)):
            out[name] = document(value, defaults=defaults)
        else:
            out[name] = value
    return out


_SCALARS = frozenset({str, int, bool})
_Written = tuple[tuple[tuple[str, Any, Callable[[Any], Any] | None], ...],
                 Callable[[Any], tuple[Any, ...]]]
_WRITTEN: dict[type, _Written] = {}


def _written(cls: type) -> _Written:
    """The fields ``document`` writes, in order (name, default and writer), and one
    getter of all their values, found once."""
    if cls not in _WRITTEN:
        written = tuple((f.name, f.default, _WRITE.get(f.name)) for f in _fields(cls)
                        if f.name not in _NOT_WRITTEN)
        names = [name for name, _, _ in written]
        # attrgetter of one name returns the value, not a 1-tuple.
        getter = (operator.attrgetter(*names) if len(names) > 1
                  else lambda record: tuple(getattr(record, n) for n in names))
        _WRITTEN[cls] = (written, getter)
    return _WRITTEN[cls]


_NOT_WRITTEN = frozenset({"index", "name"})  # a job's place in the list; a lane's map key


def normalize(document: dict[str, Any]) -> Workflow:
    """Build the IR from a document that passed the schema."""
    lanes = tuple(read_lane(name, raw) for name, raw in document["lanes"].items())
    jobs = tuple(read_job(raw, i) for i, raw in enumerate(document["jobs"]))
    return Workflow(name=document["name"], lanes=lanes, jobs=jobs, title=document.get("title"),
                    vars=tuple((k, _scalar(v)) for k, v in document.get("vars", {}).items()),
                    final=tuple(document.get("final", ())),
                    budget=read_budget(document.get("budget")))


def read_lane(name: str, raw: dict[str, Any]) -> Lane:
    lane: Lane = _read(Lane, raw, name=name)
    return lane


def read_job(raw: dict[str, Any], index: int) -> Job:
    job: Job = _read(Job, raw, index=index)
    return job


def to_document(workflow: Workflow) -> dict[str, Any]:
    """The workflow in authoring form: what ``fmt --to json`` writes."""
    doc: dict[str, Any] = {"name": workflow.name}
    if workflow.title is not None:
        doc["title"] = workflow.title
    if workflow.vars:
        doc["vars"] = dict(workflow.vars)
    if workflow.final:
        doc["final"] = list(workflow.final)
    if workflow.budget is not None:
        doc["budget"] = budget_document(workflow.budget)
    doc["lanes"] = {lane.name: document(lane, defaults=False) for lane in workflow.lanes}
    doc["jobs"] = [document(job, defaults=False) for job in workflow.jobs]
    return doc
