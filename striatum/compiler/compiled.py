"""The compiled workflow: what a run is pinned to, as one typed value.

``CompiledWorkflow`` holds the IR, the text of every prompt as it was when the
workflow was compiled (a run renders exactly what it was prepared with,
wherever its worker runs) and the plan's bound. ``to_document`` is the
document whose canonical JSON (``data``) is hashed (``digest``) and stored;
``from_document`` reads it back. The compiler, ``run prepare``, the engine,
the claim path, the worker and prompt rendering all use this one type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json, sha256_hex
from .ir import (
    Job,
    Lane,
    Prompt,
    Workflow,
    budget_document,
    document,
    read_budget,
    read_job,
    read_lane,
)

if TYPE_CHECKING:
    from .graph import WorkflowGraph

COMPILED_FORMAT = "striatum.compiled/1"


@dataclass(frozen=True)
class PinnedPrompt:
    """A job's prompt template as compiled: inline text, or a file and its text (None
    when the file was missing or not UTF-8 then)."""

    text: str | None
    file: str | None = None
    sha256: str | None = None

    @staticmethod
    def of(prompt: Prompt, directory: Path) -> PinnedPrompt:
        if prompt.source == "text":
            return PinnedPrompt(prompt.value)
        try:
            data = (directory / prompt.value).read_bytes()
            return PinnedPrompt(data.decode("utf-8"), prompt.value, sha256_hex(data))
        except (OSError, UnicodeDecodeError):
            return PinnedPrompt(None, prompt.value)

    def document(self) -> dict[str, Any]:
        if self.file is None:
            return {"text": self.text}
        return {"file": self.file, "sha256": self.sha256, "text": self.text}


@dataclass(frozen=True)
class CompiledWorkflow:
    workflow: Workflow
    prompts: Mapping[str, PinnedPrompt]  # job id -> its prompt; jobs without one absent
    final: tuple[str, ...]  # ``final`` as written, else the jobs nothing needs
    order: tuple[str, ...]
    waves: tuple[tuple[str, ...], ...]
    worst_case: int
    worst_case_exact: bool

    @cached_property
    def jobs(self) -> dict[str, Job]:
        return {job.id: job for job in self.workflow.jobs}

    @cached_property
    def lanes(self) -> dict[str, Lane]:
        return {lane.name: lane for lane in self.workflow.lanes}

    @cached_property
    def graph(self) -> WorkflowGraph:
        """The graph the engine walks, built without networkx."""
        from .graph import build_graph

        return build_graph(self.workflow, with_networkx=False)

    @cached_property
    def data(self) -> bytes:
        """The canonical JSON of ``to_document``: what is hashed and stored."""
        return canonical_json(self.to_document(), verify=False)

    @cached_property
    def digest(self) -> str:
        return sha256_hex(self.data)

    @property
    def document(self) -> dict[str, Any]:
        return self.to_document()

    @property
    def unreadable_prompts(self) -> list[str]:
        return [p.file for p in self.prompts.values() if p.file is not None and p.text is None]

    def to_document(self) -> dict[str, Any]:
        """The canonical document (defaults explicit) that is hashed and stored."""
        w = self.workflow
        return {
            "format": COMPILED_FORMAT,
            "workflow": {
                "name": w.name, "title": w.title, "vars": dict(w.vars),
                "final": list(self.final),
                "lanes": {lane.name: document(lane, defaults=True) for lane in w.lanes},
                "jobs": [_job_document(job, self.prompts.get(job.id)) for job in w.jobs],
                # Written only when declared: a workflow without one keeps its digest.
                **({} if w.budget is None else {"budget": budget_document(w.budget)}),
            },
            "plan": {"order": list(self.order), "waves": [list(wave) for wave in self.waves],
                     "worst_case_job_executions": self.worst_case,
                     "worst_case_exact": self.worst_case_exact},
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> CompiledWorkflow:
        w, plan = document["workflow"], document["plan"]
        lanes = tuple(read_lane(name, raw) for name, raw in w["lanes"].items())
        jobs = tuple(read_job(raw, index) for index, raw in enumerate(w["jobs"]))
        prompts = {raw["id"]: PinnedPrompt(raw["prompt"]["text"], raw["prompt"].get("file"),
                                           raw["prompt"].get("sha256"))
                   for raw in w["jobs"] if raw["prompt"] is not None}
        workflow = Workflow(name=w["name"], lanes=lanes, jobs=jobs, title=w["title"],
                            vars=tuple(w["vars"].items()), final=tuple(w["final"]),
                            budget=read_budget(w.get("budget")))
        return cls(workflow, prompts, tuple(w["final"]), tuple(plan["order"]),
                   tuple(tuple(wave) for wave in plan["waves"]),
                   plan["worst_case_job_executions"], plan["worst_case_exact"])


def _job_document(job: Job, prompt: PinnedPrompt | None) -> dict[str, Any]:
    """Every field of the job, defaults written; the prompt as pinned."""
    return {**document(job, defaults=True),
            "prompt": None if prompt is None else prompt.document()}
