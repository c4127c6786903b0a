"""STR330: a declared budget below what the plan proves a run may need, naming the loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from striatum.compiler.compile import check
from striatum.compiler.diagnostics import Diagnostic
from striatum.compiler.lint import lint


def lint_of(tmp_path: Path, budget: dict[str, int], *, timeout: int = 60,
            extra: list[dict[str, Any]] | None = None) -> list[Diagnostic]:
    doc = {"name": "w", "budget": budget,
           "lanes": {"coder": {"command": ["x"], "timeout": timeout},
                     "reviewer": {"command": ["y"], "timeout": timeout},
                     "boss": {"kind": "human"}},
           "jobs": [{"id": "draft", "lane": "coder", "max_attempts": 1},
                    {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                     "max_attempts": 1, "revise": {"target": "draft", "max": 2}},
                    *(extra or [])]}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(doc, indent=2))
    comp = check(str(path))
    assert comp.ok, comp.diagnostics
    comp.add(lint(comp))
    return [d for d in comp.diagnostics if d.code == "STR330"]


def test_max_job_runs_below_the_worst_case_names_the_loop(tmp_path: Path) -> None:
    (d,) = lint_of(tmp_path, {"max_job_runs": 4})
    assert d.message == ("max_job_runs 4 is below the plan's worst case of 6 job executions: "
                         "the revision loop check → draft (up to 2 revisions) can take it "
                         "there")
    assert d.hint is not None and "raise max_job_runs to 6" in d.hint
    assert d.path == ("budget", "max_job_runs") and d.line == 4  # at the limit, as written


def test_jobs_alone_over_the_limit_are_said_so(tmp_path: Path) -> None:
    (d,) = lint_of(tmp_path, {"max_job_runs": 1})
    assert "its 2 jobs alone run more than that" in d.message


def test_max_wall_seconds_below_the_worst_case_names_the_loop(tmp_path: Path) -> None:
    # Three passes of draft and check, 60 s each: 360 s at worst.
    (d,) = lint_of(tmp_path, {"max_wall_seconds": 300})
    assert d.message == ("max_wall_seconds 300 is below the plan's worst-case wall time of "
                         "360 seconds: the revision loop check → draft (up to 2 revisions) "
                         "can take it there")
    (d,) = lint_of(tmp_path, {"max_wall_seconds": 100})
    assert "the longest chain of jobs alone takes longer" in d.message


def test_a_budget_at_the_worst_case_is_quiet(tmp_path: Path) -> None:
    assert lint_of(tmp_path, {"max_job_runs": 6, "max_wall_seconds": 360,
                              "max_cost": 1}) == []


def test_a_person_in_the_workflow_leaves_the_wall_limit_unproven(tmp_path: Path) -> None:
    go = {"id": "go", "lane": "boss", "kind": "checkpoint", "needs": ["check"],
          "choices": {"yes": [], "no": []}}
    (d,) = lint_of(tmp_path, {"max_wall_seconds": 10**6}, extra=[go])
    assert d.message.startswith("max_wall_seconds 1000000 cannot be proven enough: go ")


def test_only_the_loops_that_take_the_run_past_the_limit_are_named(tmp_path: Path) -> None:
    # 4 jobs; check → draft adds 2 passes of two jobs (4), final → polish 1 pass of two (2).
    polish = [{"id": "polish", "lane": "coder", "needs": ["check"], "max_attempts": 1},
              {"id": "final", "lane": "reviewer", "kind": "review", "needs": ["polish"],
               "max_attempts": 1, "revise": {"target": "polish", "max": 1}}]
    (d,) = lint_of(tmp_path, {"max_job_runs": 5}, extra=polish)
    assert d.message == ("max_job_runs 5 is below the plan's worst case of 10 job executions: "
                         "the revision loop check → draft (up to 2 revisions) can take it "
                         "there")
    (d,) = lint_of(tmp_path, {"max_job_runs": 9}, extra=polish)
    assert "the revision loops check → draft (up to 2 revisions), final → polish (up to 1 " \
           "revision) can take it there" in d.message
