"""The ``budget`` key: in the contract, in the DSL, through ``fmt`` and into the compiled
workflow a run is pinned to."""

from __future__ import annotations

import json
from pathlib import Path

from striatum.compiler.compile import check
from striatum.compiler.compiled import CompiledWorkflow
from striatum.compiler.dsl import parse_dsl
from striatum.compiler.dsl.printer import to_dsl
from striatum.compiler.ir import Budget, normalize, to_document

DSL = """workflow w

budget max_wall_seconds 7200 max_cost 500000 max_job_runs 12

lane a = ["x"] timeout 60

task t by a
"""


def test_the_dsl_reads_limits_in_any_order_and_fmt_writes_them_in_one() -> None:
    source = parse_dsl(DSL, "w.stm")
    assert source.diagnostics == []
    assert source.document is not None
    assert source.document["budget"] == {"max_wall_seconds": 7200, "max_cost": 500000,
                                         "max_job_runs": 12}
    workflow = normalize(source.document)
    assert workflow.budget == Budget(12, 7200, 500000)
    text = to_dsl(workflow)
    assert "\nbudget max_job_runs 12 max_wall_seconds 7200 max_cost 500000\n" in text
    assert to_document(workflow)["budget"] == {"max_job_runs": 12, "max_wall_seconds": 7200,
                                               "max_cost": 500000}
    again = parse_dsl(text, "w.stm")
    assert again.document is not None and normalize(again.document) == workflow


def test_a_limit_given_twice_is_pointed_at(tmp_path: Path) -> None:
    source = parse_dsl(DSL.replace("max_cost 500000", "max_job_runs 3"), "w.stm")
    assert [(d.code, d.line, d.message) for d in source.diagnostics] == [
        ("STR011", 3, "`max_job_runs` is given twice in the budget")]


def test_the_contract_refuses_an_unknown_or_empty_budget(tmp_path: Path) -> None:
    base = {"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": [{"id": "t", "lane": "a"}]}
    for budget in ({}, {"max_runs": 3}, {"max_job_runs": 0}, {"max_cost": "5"}):
        path = tmp_path / "w.json"
        path.write_text(json.dumps({**base, "budget": budget}))
        codes = {d.code[:4] for d in check(str(path)).diagnostics}
        assert codes == {"STR1"}, (budget, codes)


def test_the_compiled_workflow_carries_the_budget_and_keeps_old_digests(tmp_path: Path) -> None:
    path = tmp_path / "w.stm"
    path.write_text(DSL)
    comp = check(str(path))
    assert comp.ok and comp.workflow is not None
    from striatum.compiler.compile import compile_workflow

    compiled = compile_workflow(comp)
    assert compiled.to_document()["workflow"]["budget"] == {
        "max_job_runs": 12, "max_wall_seconds": 7200, "max_cost": 500000}
    assert CompiledWorkflow.from_document(compiled.to_document()).workflow.budget == \
        Budget(12, 7200, 500000)
    path.write_text(DSL.replace("budget max_wall_seconds 7200 max_cost 500000 max_job_runs 12\n",
                                ""))
    plain = compile_workflow(check(str(path)))
    assert "budget" not in plain.to_document()["workflow"]


def test_raise_budget_items_are_parsed_or_refused_with_the_limits_named() -> None:
    import pytest

    from striatum.errors import UsageError
    from striatum.runtime.budgets import resume_params

    assert resume_params("r", None, ("max_job_runs=40", "max_cost=7"), "") == {
        "run": "r", "decision": "raise", "reason": "",
        "budget": {"max_job_runs": 40, "max_cost": 7}}
    assert resume_params("r", "fail", (), "no") == {"run": "r", "decision": "fail",
                                                     "reason": "no"}
    for bad in ("max_runs=3", "max_job_runs", "max_job_runs=0", "max_cost=-1", "max_cost=x"):
        with pytest.raises(UsageError, match="is not LIMIT=N") as caught:
            resume_params("r", None, (bad,), "")
        assert "max_job_runs, max_wall_seconds, max_cost" in (caught.value.hint or "")
    with pytest.raises(UsageError, match="--raise-budget LIMIT=N"):
        resume_params("r", None, (), "")
