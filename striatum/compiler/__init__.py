"""The workflow compiler: each stage of the pipeline as one call.

    source = load("workflow.json")      # read and parse (STR0xx)
    comp = validate(source)             # the contract and the IR (STR1xx)
    comp = check(source)                # ... and the proofs (STR2xx): comp.ok
    findings = lint(comp)               # likely mistakes (STR3xx), located
    document = plan(comp)               # waves, loops, worst case, paths
    compiled = compile(comp)            # canonical JSON and its sha256
    text = fmt(comp, to="dsl")          # either syntax, from the IR
    drawing = draw(comp, "mermaid")     # the graph, revision edges apart

Each call imports what its stage needs when it runs: importing this package
loads no JSON Schema validator, parser, graph or template library, so a
command that only needs one stage starts fast. The stage modules (``load``,
``schema``, ``graph``, ``plan``, ...) stay importable for their own functions.
"""

from __future__ import annotations

import os
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import WorkflowInvalid
    from .compile import Compilation
    from .compiled import CompiledWorkflow
    from .diagnostics import Diagnostic
    from .load import Source

__all__ = ["check", "compile", "draw", "fmt", "lint", "load", "plan", "validate"]


def load(path: str | os.PathLike[str], syntax: str | None = None) -> Source:
    """Read and parse a workflow file; ``syntax`` is "json" or "dsl" (default: from the
    file name, then the content). A file that cannot be read or parsed gives a Source
    with ``document`` None and its located STR0xx diagnostics, never an exception."""
    from .load import read_source

    return read_source(os.fspath(path), fmt=syntax)


def validate(source: Source) -> Compilation:
    """Check a loaded source against the contract and build its IR (``.workflow``);
    enough for ``fmt``, which must work on a workflow whose graph is still wrong."""
    from .compile import validate_source

    return validate_source(source)


def check(source: Source | str | os.PathLike[str], syntax: str | None = None) -> Compilation:
    """``validate``, then the proofs: ids and references resolve, ``needs`` are acyclic,
    every revision goes back upstream with a bound. ``.ok`` when the workflow can run."""
    from .compile import check as check_file
    from .compile import check_source

    if isinstance(source, str | os.PathLike):
        return check_file(os.fspath(source), fmt=syntax)
    return check_source(source)


def lint(comp: Compilation) -> list[Diagnostic]:
    """The lint rules' findings (docs/lint-rules.md), located; none unless ``comp.ok``."""
    from .diagnostics import locate
    from .lint import lint as run_rules

    return locate(run_rules(comp), comp.source.file, comp.source.locator)


def plan(comp: Compilation, verdicts: str | None = None) -> dict[str, Any]:
    """The dry run: waves, revision loops, the worst-case number of job executions and
    the number of paths; with ``verdicts`` ('check=needs_revision,check=accept'), also
    the walk of that one path under ``"walk"``."""
    from .plan import parse_verdicts, plan_document, walk, walk_document

    graph = _proven(comp).graph
    assert graph is not None
    document = plan_document(graph)
    if verdicts is not None:
        outcome, unused = walk(graph, parse_verdicts(verdicts, graph))
        document["walk"] = walk_document(outcome, unused)
    return document


def compile(comp: Compilation) -> CompiledWorkflow:
    """What a run is pinned to: the IR, its prompts' text and the plan's bound, with its
    canonical JSON (``.data``) and sha256 (``.digest``): the same workflow (and prompt
    files) always gives the same bytes."""
    from .compile import compile_workflow

    return compile_workflow(_proven(comp))


def fmt(comp: Compilation, to: str | None = None) -> str:
    """The workflow as text in ``to`` ("json" or "dsl"; default: the syntax it was
    written in), in canonical form. Needs only ``validate``."""
    from .fmt import format_workflow

    if comp.workflow is None:
        raise _invalid(comp)
    return format_workflow(comp.workflow, to or comp.source.format)


def draw(comp: Compilation, format: str = "mermaid") -> str:
    """The graph as "mermaid", "dot" or "json"; revision edges dashed, with their bound."""
    from .render import render

    graph = _proven(comp).graph
    assert graph is not None
    return render(graph, format)


def _proven(comp: Compilation) -> Compilation:
    if not comp.ok:
        raise _invalid(comp)
    return comp


def _invalid(comp: Compilation) -> WorkflowInvalid:
    from ..errors import WorkflowInvalid
    from .diagnostics import Severity

    errors = [d for d in comp.diagnostics if d.severity is Severity.ERROR]
    return WorkflowInvalid(f"{comp.source.file} is not a valid workflow "
                           f"({len(errors)} error{'' if len(errors) == 1 else 's'})",
                           hint="the diagnostics say where",
                           diagnostics=[d.to_json() for d in errors])


class _Package(types.ModuleType):
    """Importing a submodule sets it as an attribute of its package: ``import
    striatum.compiler.lint`` would replace the function ``lint`` above with the module
    of that name. The stage modules keep their names (they are imported by them), so the
    package keeps its functions instead."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in __all__ and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
