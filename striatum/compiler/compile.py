"""The compiler pipeline: file -> source -> schema -> IR -> graph -> proofs -> compiled JSON.

Each stage is a function of the one before; ``check`` chains them and stops
at the first stage that found errors (a later stage would only repeat them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..collector import paused
from .diagnostics import Diagnostic, has_errors, locate
from .graph import WorkflowGraph, build_graph, check_cycles, check_references, check_structure
from .ir import Workflow, normalize
from .load import Source, read_source
from .schema import validate_document

if TYPE_CHECKING:
    from .compiled import CompiledWorkflow


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


def check(path: str, *, fmt: str | None = None) -> Compilation:
    with paused():
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


def compile_workflow(comp: Compilation) -> CompiledWorkflow:
    """Everything a run is pinned to: the full workflow (defaults explicit), the text and
    digest of its prompt files, and the plan's bound on job executions."""
    from .compiled import CompiledWorkflow, PinnedPrompt
    from .plan import waves, worst_case

    assert comp.graph is not None and comp.workflow is not None
    w = comp.workflow
    prompts = {job.id: PinnedPrompt.of(job.prompt, comp.source.directory)
               for job in w.jobs if job.prompt is not None}
    worst = worst_case(comp.graph)
    return CompiledWorkflow(w, prompts, tuple(w.final) or comp.graph.sinks,
                            tuple(comp.graph.order),
                            tuple(tuple(wave) for wave in waves(comp.graph)),
                            worst.executions, worst.exact)


def compiled_document(comp: Compilation) -> dict[str, Any]:
    return compile_workflow(comp).to_document()


def compile_bytes(comp: Compilation) -> tuple[bytes, str]:
    """The canonical compiled JSON and its sha256: the same input gives the same bytes."""
    with paused():
        compiled = compile_workflow(comp)
        return compiled.data, compiled.digest
