"""Every shipped example validates, lints clean, plans, draws, compiles and round-trips."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import EXAMPLES, REPO, Cli

pytestmark = pytest.mark.e2e


def test_all_six_shapes_ship() -> None:
    assert EXAMPLES == ["code-change", "human-checkpoint", "minimal", "multi-review", "review",
                        "support-ledger"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_example(cli: Cli, tmp_path: Path, example: str) -> None:
    wf = str(REPO / "examples" / example / "workflow.json")
    validate = cli("workflow", "validate", "--json", wf)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert json.loads(validate.stdout)["valid"] is True

    lint = cli("workflow", "lint", "--strict", wf)
    assert lint.returncode == 0, lint.stdout
    assert "no problems" in lint.stdout

    plan = json.loads(cli("workflow", "plan", "--json", wf).stdout)
    assert plan["worst_case_exact"] is True
    assert plan["worst_case_job_executions"] >= plan["jobs"]
    assert plan["paths"] >= 1

    for fmt in ("mermaid", "dot", "json"):
        drawn = cli("workflow", "graph", "--format", fmt, wf)
        assert drawn.returncode == 0 and drawn.stdout

    first = cli("workflow", "compile", "-o", str(tmp_path / "a.json"), wf)
    second = cli("workflow", "compile", "-o", str(tmp_path / "b.json"), wf)
    assert first.returncode == 0 and second.returncode == 0
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert first.stdout.split("sha256:")[1] == second.stdout.split("sha256:")[1]

    assert cli("workflow", "fmt", "--check", wf).returncode == 0
    dsl = cli("workflow", "fmt", "--to", "dsl", wf)
    assert dsl.returncode == 0, dsl.stderr
    (tmp_path / "w.stm").write_text(dsl.stdout)
    back = cli("workflow", "fmt", "--to", "json", str(tmp_path / "w.stm"))
    assert back.returncode == 0, back.stderr
    assert back.stdout == Path(wf).read_text()


@pytest.mark.parametrize("example", EXAMPLES)
def test_dsl_twin_matches_json(cli: Cli, example: str) -> None:
    stm = REPO / "examples" / example / "workflow.stm"
    wf = REPO / "examples" / example / "workflow.json"
    assert stm.exists(), f"examples/{example} needs its DSL twin workflow.stm"
    assert cli("workflow", "fmt", "--check", str(stm)).returncode == 0
    converted = cli("workflow", "fmt", "--to", "json", str(stm))
    assert converted.stdout == wf.read_text()


def test_compiled_digest_is_stable_and_pins_prompts(cli: Cli, tmp_path: Path) -> None:
    init = cli("workflow", "init", "--style", "code-change", str(tmp_path / "flow"))
    assert init.returncode == 0, init.stderr
    wf = str(tmp_path / "flow" / "workflow.json")
    before = json.loads(cli("workflow", "compile", "--json", wf).stdout)["digest"]
    assert json.loads(cli("workflow", "compile", "--json", wf).stdout)["digest"] == before
    prompt = tmp_path / "flow" / "prompts" / "draft.md"
    prompt.write_text(prompt.read_text() + "\nOne more line.\n")
    assert json.loads(cli("workflow", "compile", "--json", wf).stdout)["digest"] != before
