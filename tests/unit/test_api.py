"""The compiler's public face (striatum.compiler): one call per stage, cheap to import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import striatum.compiler as compiler
from striatum import resources
from striatum.compiler.compile import check as check_file
from striatum.compiler.compile import compile_bytes
from striatum.errors import UsageError, WorkflowInvalid

EXAMPLE = resources.examples_dir() / "code-change" / "workflow.json"


def test_importing_the_face_loads_no_stage() -> None:
    probe = ("import sys, striatum.compiler\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('networkx', "
             "'jsonschema', 'jsonschema_rs', 'lark', 'jinja2') or m in ("
             "'striatum.compiler.compile', 'striatum.compiler.schema')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2],
                         check=True).stdout
    assert out.strip() == "[]"


def test_each_stage_is_one_call() -> None:
    source = compiler.load(EXAMPLE)
    assert source.ok and source.format == "json"
    assert compiler.validate(source).workflow is not None
    comp = compiler.check(source)
    assert comp.ok
    assert compiler.lint(comp) == []
    assert compiler.plan(comp)["worst_case_job_executions"] == 5
    walked = compiler.plan(comp, verdicts="check=needs_revision,check=accept")["walk"]
    assert [step["job"] for step in walked["steps"]] == ["draft", "check", "draft", "check",
                                                         "apply"]
    compiled = compiler.compile(comp)
    assert (compiled.data, compiled.digest) == compile_bytes(check_file(str(EXAMPLE)))
    assert compiled.document["format"] == "striatum.compiled/1"
    assert compiler.fmt(comp).startswith('{\n  "name": "code-change"')
    assert compiler.fmt(comp, to="dsl").startswith("workflow code-change")
    assert compiler.draw(comp).startswith("flowchart TD")
    with pytest.raises(UsageError, match="unknown graph format 'png'"):
        compiler.draw(comp, "png")
    assert compiler.check(EXAMPLE).ok and compiler.check(str(EXAMPLE), syntax="json").ok


def test_lint_findings_are_located(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"name": "w", "lanes": {"a": {"command": ["x"]},
                                                       "unused": {"kind": "human"}},
                                "jobs": [{"id": "j", "lane": "a"}]}, indent=2))
    [d] = compiler.lint(compiler.check(path))
    assert (d.code, d.file, d.line, d.column) == ("STR311", str(path), 9, 5)


def test_a_stage_that_needs_a_proven_workflow_refuses_an_invalid_one(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{"name": "w", "lanes": {"a": {"command": ["x"]}},'
                    ' "jobs": [{"id": "j", "lane": "a", "needs": ["j"]}]}')
    comp = compiler.check(path)
    assert not comp.ok and compiler.lint(comp) == []
    for stage in (compiler.plan, compiler.compile, compiler.draw):
        with pytest.raises(WorkflowInvalid) as caught:
            stage(comp)
        assert [d["code"] for d in caught.value.details["diagnostics"]] == ["STR203"]
    assert compiler.fmt(comp, to="dsl").startswith("workflow w")  # the IR is enough


def test_the_stage_modules_do_not_hide_the_calls() -> None:
    import striatum.compiler.compile
    import striatum.compiler.fmt
    import striatum.compiler.lint
    import striatum.compiler.load
    import striatum.compiler.plan  # noqa: F401 - imported to set the package attributes
    from striatum.compiler import compile, fmt, lint, load, plan

    assert all(callable(f) for f in (compile, fmt, lint, load, plan))
    assert compiler.lint is lint and callable(compiler.load)
