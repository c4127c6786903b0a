"""The compiled workflow: one typed value, written and read back field by field."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from striatum.compiler import check, compile
from striatum.compiler.compiled import CompiledWorkflow
from striatum.compiler.ir import Job, Lane

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*/workflow.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_a_compiled_workflow_reads_back_as_the_same_value(path: Path) -> None:
    compiled = compile(check(str(path)))
    again = CompiledWorkflow.from_document(compiled.to_document())
    # The jobs and lanes come back as they were; `final` comes back explicit (written as
    # the workflow's own, or the jobs nothing needs).
    assert (again.workflow.jobs, again.workflow.lanes) == (compiled.workflow.jobs,
                                                          compiled.workflow.lanes)
    assert again.final == again.workflow.final == compiled.final
    assert dict(again.prompts) == dict(compiled.prompts)
    assert again.data == compiled.data and again.digest == compiled.digest


@pytest.mark.parametrize("path", EXAMPLES[:1], ids=lambda p: p.parent.name)
def test_every_field_of_a_job_and_a_lane_is_in_the_compiled_document(path: Path) -> None:
    """The document is written from the dataclasses' fields: a field added to Job or Lane
    reaches the pinned workflow (and the runtime) with nothing else to change."""
    document = compile(check(str(path))).to_document()["workflow"]
    job_fields = {f.name for f in dataclasses.fields(Job)} - {"index"}
    lane_fields = {f.name for f in dataclasses.fields(Lane)} - {"name"}
    assert all(set(job) == job_fields for job in document["jobs"])
    assert all(set(lane) == lane_fields for lane in document["lanes"].values())
