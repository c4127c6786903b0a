"""The compiler pipeline: file -> source -> schema -> IR -> graph -> proofs -> compiled JSON.

Each stage is a function of the one before; ``check`` chains them and stops
at the first stage that found errors (a later stage would only repeat them).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..canonical import canonical_json, sha256_hex
from .diagnostics import Diagnostic, has_errors, locate
from .graph import WorkflowGraph, build_graph, check_cycles, check_references, check_structure
from .ir import Workflow, normalize
from .load import Source, read_source
from .schema import validate_document

COMPILED_FORMAT = "striatum.compiled/1"


@dataclass
class Compilation:
    source: Source
    workflow: Workflow | None = None
    graph: WorkflowGraph | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.graph is not None and not has_errors(self.diagnostics)

    def add(self, found: list[Diagnostic]) -> bool:
        """Record diagnostics (located); True when none of them is an error."""
        self.diagnostics.extend(locate(found, self.source.file, self.source.locator))
        return not has_errors(found)


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Pause the cyclic garbage collector while a document is compiled.

    A parsed 10,000-job workflow is about a million live objects; every
    generation-2 collection walks all of them, so collections triggered by
    allocation made the pipeline grow faster than linearly. The pipeline
    builds no reference cycles, so nothing is lost by collecting afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def check(path: str, *, fmt: str | None = None) -> Compilation:
    with _no_gc_pauses():
        return check_source(read_source(path, fmt=fmt))


def load_workflow(path: str, *, fmt: str | None = None) -> Compilation:
    """Read and check against the contract only: enough for ``fmt``, which must also
    work on a workflow whose graph is still wrong."""
    return validate_source(read_source(path, fmt=fmt))


def validate_source(source: Source) -> Compilation:
    """The contract (JSON Schema) and the IR, for a source that was read and parsed."""
    comp = Compilation(source, diagnostics=list(source.diagnostics))
    if has_errors(source.diagnostics):
        return comp
    if comp.add(validate_document(source.document)):
        comp.workflow = normalize(source.document)
    return comp


def check_source(source: Source) -> Compilation:
    comp = validate_source(source)
    if comp.workflow is None:
        return comp
    if not comp.add(check_references(comp.workflow)):
        return comp
    wg = build_graph(comp.workflow)
    if not comp.add(check_cycles(wg)):
        return comp
    if comp.add(check_structure(wg)):
        comp.graph = wg
    return comp


def _prompt_record(directory: Path, value: str) -> dict[str, Any]:
    """The template's text travels inside the compiled workflow, so a run renders exactly
    the prompt it was prepared with, wherever its worker runs."""
    try:
        data = (directory / value).read_bytes()
        text: str | None = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return {"file": value, "sha256": None, "text": None}
    return {"file": value, "sha256": sha256_hex(data), "text": text}


def compiled_document(comp: Compilation) -> dict[str, Any]:
    """Everything a run is pinned to: the full workflow (defaults explicit), the
    digests of its prompt files, and the plan's bound on job executions."""
    from .plan import waves, worst_case

    assert comp.graph is not None and comp.workflow is not None
    w = comp.workflow
    jobs = []
    for job in w.jobs:
        prompt: dict[str, Any] | None = None
        if job.prompt is not None:
            prompt = (_prompt_record(comp.source.directory, job.prompt.value)
                      if job.prompt.source == "file" else {"text": job.prompt.value})
        jobs.append({
            "id": job.id, "lane": job.lane, "kind": job.kind, "title": job.title,
            "needs": list(job.needs), "prompt": prompt, "produces": list(job.produces),
            "consumes": list(job.consumes), "writes": list(job.writes),
            "isolation": job.isolation, "max_attempts": job.max_attempts,
            "revise": None if job.revise is None else {
                "target": job.revise.target, "max": job.revise.max,
                "on_exhausted": job.revise.on_exhausted},
            "choices": {name: list(succ) for name, succ in job.choices},
        })
    worst = worst_case(comp.graph)
    return {
        "format": COMPILED_FORMAT,
        "workflow": {
            "name": w.name, "title": w.title, "vars": dict(w.vars),
            "final": list(w.final) or list(comp.graph.sinks),
            "lanes": {lane.name: {"kind": lane.kind, "command": list(lane.command),
                                  "stdin": lane.stdin, "timeout": lane.timeout,
                                  "env": dict(lane.env)}
                      for lane in w.lanes},
            "jobs": jobs,
        },
        "plan": {"order": comp.graph.order, "waves": waves(comp.graph),
                 "worst_case_job_executions": worst.executions,
                 "worst_case_exact": worst.exact},
    }


@dataclass(frozen=True)
class CompiledWorkflow:
    """The canonical compiled JSON of a workflow and its sha256: what a run is pinned to."""

    data: bytes
    digest: str

    @property
    def document(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.data)
        return loaded


def compile_bytes(comp: Compilation) -> tuple[bytes, str]:
    """The canonical compiled JSON and its sha256: the same input gives the same bytes."""
    with _no_gc_pauses():
        data = canonical_json(compiled_document(comp), verify=False)
    return data, sha256_hex(data)


def workflow_from_compiled(compiled: dict[str, Any]) -> Workflow:
    """The IR back from compiled JSON (the runtime's view of a pinned workflow)."""
    from .ir import Job, Lane, Prompt, Revision

    w = compiled["workflow"]
    lanes = tuple(Lane(name, d["kind"], tuple(d["command"]), d["stdin"], d["timeout"],
                       tuple(d["env"].items())) for name, d in w["lanes"].items())
    jobs = []
    for i, j in enumerate(w["jobs"]):
        prompt = j["prompt"]
        jobs.append(Job(
            id=j["id"], lane=j["lane"], kind=j["kind"], title=j["title"], needs=tuple(j["needs"]),
            prompt=None if prompt is None else (
                Prompt("file", prompt["file"]) if "file" in prompt
                else Prompt("text", prompt["text"])),
            produces=tuple(j["produces"]), consumes=tuple(j["consumes"]), writes=tuple(j["writes"]),
            isolation=j["isolation"], max_attempts=j["max_attempts"],
            revise=None if j["revise"] is None else Revision(**j["revise"]),
            choices=tuple((k, tuple(v)) for k, v in j["choices"].items()), index=i))
    return Workflow(name=w["name"], lanes=lanes, jobs=tuple(jobs), title=w["title"],
                    vars=tuple(w["vars"].items()), final=tuple(w["final"]))
