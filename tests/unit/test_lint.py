"""Lint rules STR301-STR314: each one fired by a small workflow, and a clean one that fires none.

Workflows are written as JSON files in ``tmp_path`` and go through the real
pipeline (``check`` then ``lint``), so paths and messages are what a user sees.
The reachability behind STR301/STR313 is checked against the run semantics
(simulate.py); the glob dialect behind STR305 has its own tests (test_globs.py).
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from striatum.compiler.compile import Compilation, check
from striatum.compiler.diagnostics import CODES, Diagnostic, Severity
from striatum.compiler.lint import (
    MAX_OVERLAP_REPORTS,
    RULES,
    Agent,
    LintContext,
    _always_skipped_cheaply,
    agent_of,
    lint,
    read_prompt,
)
from striatum.compiler.presets import preset
from striatum.compiler.simulate import run

try:
    from tests.unit.strategies import valid_workflows
except ImportError:  # run without the repository root on sys.path
    from strategies import valid_workflows  # type: ignore[no-redef,import-not-found]

# Lanes that work headless (the checks of STR315-318 find nothing in them).
CODER = preset("codex")["command"]
REVIEWER = preset("claude", "reviewer")["command"]


def compile_in(tmp_path: Path, doc: dict[str, Any], files: dict[str, str | bytes] | None = None
               ) -> Compilation:
    for name, content in (files or {}).items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    comp = check(str(path))
    assert comp.ok, [d.to_json() for d in comp.diagnostics]
    return comp


def lint_doc(tmp_path: Path, doc: dict[str, Any],
             files: dict[str, str | bytes] | None = None) -> list[Diagnostic]:
    return lint(compile_in(tmp_path, doc, files))


def only(found: list[Diagnostic], code: str) -> list[Diagnostic]:
    return [d for d in found if d.code == code]


def workflow(*jobs: dict[str, Any], lanes: dict[str, Any] | None = None,
             **extra: Any) -> dict[str, Any]:
    return {"name": "w", "lanes": lanes or {"coder": {"command": CODER},
                                             "reviewer": {"command": REVIEWER}},
            "jobs": list(jobs), **extra}


# ---------------------------------------------------------------- a clean workflow

CLEAN = {
    "name": "clean",
    "vars": {"topic": "retries"},
    "final": ["apply", "note"],
    "lanes": {"coder": {"command": CODER}, "reviewer": {"command": REVIEWER},
              "principal": {"kind": "human"}},
    "jobs": [
        {"id": "draft", "lane": "coder", "prompt": "prompts/draft.md",
         "produces": ["draft.md"], "writes": ["docs/*.md"]},
        {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
         "prompt": {"text": "Review {{ artifacts['draft.md'] }} (round {{ iteration }})."},
         "consumes": ["draft.md"], "revise": {"target": "draft", "max": 2}},
        {"id": "decide", "lane": "principal", "kind": "checkpoint", "needs": ["check"],
         "choices": {"continue": ["apply"], "cancel": ["note"]}},
        {"id": "apply", "lane": "coder", "needs": ["decide"], "consumes": ["draft.md"],
         "produces": ["result.md"], "writes": ["src/**"]},
        {"id": "note", "lane": "coder", "needs": ["decide"], "writes": ["NOTES.md"]},
    ],
}
CLEAN_FILES: dict[str, str | bytes] = {
    "prompts/draft.md": "# {{ workflow }}\nWrite about {{ vars.topic }} for run {{ run }}.\n"
                        "{% if feedback %}Address: {{ feedback }}{% endif %}\n"
                        "{% for line in vars.topic.split(',') %}- {{ line }}\n{% endfor %}"
                        "{{ vars.extra | default('') }}\n",
}


def test_a_clean_workflow_has_no_findings(tmp_path: Path) -> None:
    assert lint_doc(tmp_path, CLEAN, CLEAN_FILES) == []


def test_lint_says_nothing_about_a_workflow_that_did_not_compile(tmp_path: Path) -> None:
    path = tmp_path / "workflow.json"
    path.write_text('{"name": "w", "lanes": {}, "jobs": []}', encoding="utf-8")
    comp = check(str(path))
    assert not comp.ok
    assert lint(comp) == []


def test_every_lint_code_has_a_rule_and_every_rule_a_code() -> None:
    assert set(RULES) == {code for code in CODES if code.startswith("STR3")}


def test_findings_carry_their_registered_severity(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder"}, {"id": "b", "lane": "coder"})
    for d in lint_doc(tmp_path, doc):
        assert d.severity is CODES[d.code][0]


# ---------------------------------------------------------------- STR301, STR313


def test_str313_a_successor_no_choice_lists(tmp_path: Path) -> None:
    doc = workflow(
        {"id": "gate", "lane": "coder", "kind": "checkpoint",
         "choices": {"go": ["ship"], "stop": []}},
        {"id": "ship", "lane": "coder", "needs": ["gate"]},
        {"id": "forgotten", "lane": "coder", "needs": ["ship", "gate"]},
        final=["ship", "forgotten"])
    (d,) = only(lint_doc(tmp_path, doc), "STR313")
    assert d.path == ("jobs", 2, "needs", 1)
    assert "job 'forgotten' needs checkpoint 'gate'" in d.message
    assert "'go' and 'stop'" in d.message
    assert d.hint is not None and "add 'forgotten' to the choice of 'gate'" in d.hint
    assert only(lint_doc(tmp_path, doc), "STR301") == []  # STR313 already says it


def test_str301_what_only_never_chosen_jobs_lead_to(tmp_path: Path) -> None:
    doc = workflow(
        {"id": "gate", "lane": "coder", "kind": "checkpoint",
         "choices": {"go": ["ship"], "stop": []}},
        {"id": "ship", "lane": "coder", "needs": ["gate"]},
        {"id": "orphan", "lane": "coder", "needs": ["gate"]},
        {"id": "after", "lane": "coder", "needs": ["orphan"]},
        final=["ship", "after"])
    found = lint_doc(tmp_path, doc)
    assert [d.path for d in only(found, "STR313")] == [("jobs", 2, "needs", 0)]
    (d,) = only(found, "STR301")
    assert d.path == ("jobs", 3)
    assert d.message.startswith("job 'after' never runs")
    assert "'orphan'" in d.message
    assert d.hint is not None and "'gate'" in d.hint


def test_str301_not_for_a_job_that_runs_under_some_choice(tmp_path: Path) -> None:
    doc = workflow(
        {"id": "gate", "lane": "coder", "kind": "checkpoint",
         "choices": {"left": ["a"], "right": ["b"]}},
        {"id": "a", "lane": "coder", "needs": ["gate"]},
        {"id": "b", "lane": "coder", "needs": ["gate"]},
        {"id": "join", "lane": "coder", "needs": ["a", "b"]})
    found = lint_doc(tmp_path, doc)
    assert only(found, "STR301") == [] and only(found, "STR313") == []


def _never_run(comp: Compilation) -> set[str]:
    """The jobs no run executes, whatever the checkpoints decide (reviews accept)."""
    wg = comp.graph
    assert wg is not None
    checkpoints = [j for j in wg.workflow.jobs if j.kind == "checkpoint"]
    executed: set[str] = set()
    for combo in itertools.product(*[[name for name, _ in c.choices] for c in checkpoints]):
        chosen = {c.id: name for c, name in zip(checkpoints, combo, strict=True)}

        def decide(job: str, kind: str, options: tuple[str, ...],
                   chosen: dict[str, str] = chosen) -> str:
            return chosen[job] if kind == "checkpoint" else "accept"

        executed.update(step.job for step in run(wg, decide).steps)
    return set(wg.workflow.job_ids) - executed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_workflows(max_jobs=7, max_checkpoints=3))
def test_str301_and_str313_agree_with_the_run_semantics(doc: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        comp = compile_in(Path(folder), doc)
        assert comp.workflow is not None and comp.graph is not None
        found = lint(comp)
        ctx = LintContext(comp.workflow, comp.graph, comp.source.directory)
        never = _never_run(comp)
        jobs = comp.workflow.jobs
        unreachable = {jobs[int(d.path[1])].id for d in only(found, "STR301")}
        unchosen = {jobs[int(d.path[1])].id for d in only(found, "STR313")}
        assert unreachable <= never
        assert never <= unreachable | unchosen
        assert not unreachable & unchosen
        # The fallback for huge workflows finds only jobs that truly never run.
        assert set(comp.graph.ids_of(_always_skipped_cheaply(ctx))) <= never


# ---------------------------------------------------------------- STR302


def test_str302_several_ends_without_final(tmp_path: Path) -> None:
    doc = workflow({"id": "root", "lane": "coder"},
                   {"id": "left", "lane": "coder", "needs": ["root"]},
                   {"id": "right", "lane": "coder", "needs": ["root"]})
    found = only(lint_doc(tmp_path, doc), "STR302")
    assert [d.path for d in found] == [("jobs", 1)]
    assert "'left' and 'right'" in found[0].message
    assert found[0].hint == ("declare `final` with the jobs that end the workflow, or make the "
                             "others feed into one")


def test_str302_jobs_that_reach_no_final_job(tmp_path: Path) -> None:
    doc = workflow({"id": "root", "lane": "coder"},
                   {"id": "main", "lane": "coder", "needs": ["root"]},
                   {"id": "side", "lane": "coder", "needs": ["root"]},
                   {"id": "side2", "lane": "coder", "needs": ["side"]},
                   final=["main"])
    found = only(lint_doc(tmp_path, doc), "STR302")
    assert [d.path for d in found] == [("jobs", 2), ("jobs", 3)]
    assert "job 'side' does not lead to any final job ('main')" in found[0].message


def test_str302_one_end_is_fine(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder"}, {"id": "b", "lane": "coder", "needs": ["a"]})
    assert only(lint_doc(tmp_path, doc), "STR302") == []


# ---------------------------------------------------------------- STR303, STR304


def review_of(lanes: dict[str, Any], coder: str = "coder", reviewer: str = "reviewer"
              ) -> dict[str, Any]:
    return workflow({"id": "draft", "lane": coder},
                    {"id": "check", "lane": reviewer, "kind": "review", "needs": ["draft"],
                     "revise": {"target": "draft", "max": 1}},
                    lanes=lanes)


def test_str303_reviewer_on_the_lane_it_reviews(tmp_path: Path) -> None:
    doc = review_of({"coder": {"command": CODER}}, reviewer="coder")
    (d,) = only(lint_doc(tmp_path, doc), "STR303")
    assert d.path == ("jobs", 1, "lane")
    assert d.message == ("review 'check' runs on lane 'coder', the same lane as job 'draft', "
                         "which it reviews")
    assert d.hint is not None and "co-blindness" in d.hint


def test_str303_counts_direct_task_needs_too(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder"}, {"id": "b", "lane": "reviewer"},
                   {"id": "r", "lane": "coder", "kind": "review", "needs": ["a", "b"]})
    (d,) = only(lint_doc(tmp_path, doc), "STR303")
    assert "job 'a'" in d.message and "'b'" not in d.message


@pytest.mark.parametrize(("coder", "reviewer", "fires"), [
    (["codex", "exec", "-"], ["codex", "exec", "--sandbox", "read-only", "-"], True),
    (["codex", "-m", "gpt-5"], ["codex", "-m", "o3"], False),
    (["codex", "--model=gpt-5"], ["/usr/local/bin/codex", "--model", "GPT-5"], True),
    (["claude", "-p"], ["npx", "-y", "@anthropic-ai/claude-code", "-p"], True),
    (["env", "DEBUG=1", "gemini", "-p", "x"], ["gemini", "-m", "pro"], True),
    (["claude", "-p"], ["codex", "exec"], False),
    (["python", "coder.py"], ["python3", "reviewer.py"], False),
    (["CLAUDE.EXE", "-p"], ["claude", "-p"], True),
])
def test_str304_same_vendor_and_model(tmp_path: Path, coder: list[str], reviewer: list[str],
                                      fires: bool) -> None:
    doc = review_of({"coder": {"command": coder}, "reviewer": {"command": reviewer}})
    found = only(lint_doc(tmp_path, doc), "STR304")
    assert bool(found) is fires
    if fires:
        assert found[0].path == ("jobs", 1, "lane")
        assert "review 'check' (lane 'reviewer') and job 'draft'" in found[0].message


def test_str304_names_the_vendor_and_the_shared_model(tmp_path: Path) -> None:
    doc = review_of({"coder": {"command": ["claude", "--model", "opus", "-p"]},
                     "reviewer": {"command": ["claude", "--model=opus", "-p"]}})
    (d,) = only(lint_doc(tmp_path, doc), "STR304")
    assert d.message.endswith("all run 'claude' with model 'opus'")


def test_str304_says_which_lane_sets_no_model(tmp_path: Path) -> None:
    doc = review_of({"coder": {"command": ["codex"]},
                     "reviewer": {"command": ["codex", "-m", "o3"]}})
    (d,) = only(lint_doc(tmp_path, doc), "STR304")
    assert "no --model on lane 'coder'" in d.message


def test_str304_not_for_operator_or_human_lanes(tmp_path: Path) -> None:
    doc = review_of({"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}})
    assert only(lint_doc(tmp_path, doc), "STR304") == []


def test_agent_of_skips_launchers() -> None:
    assert agent_of(("env", "A=1", "B=2", "npx", "--yes", "@openai/codex@latest", "exec",
                     "-m", "o3")) == Agent("codex", "o3")
    assert agent_of(("python", "-u", "agents/fake.py", "--model", "x")) == Agent(
        "python fake.py", "x")
    assert agent_of(("env",)) is None


# ---------------------------------------------------------------- STR305


def parallel(writes_a: list[str], writes_b: list[str], *, chained: bool = False
             ) -> dict[str, Any]:
    b: dict[str, Any] = {"id": "b", "lane": "coder", "writes": writes_b}
    if chained:
        b["needs"] = ["a"]
    return workflow({"id": "a", "lane": "coder", "writes": writes_a}, b,
                    {"id": "end", "lane": "coder", "needs": ["a", "b"]})


def test_str305_parallel_jobs_with_overlapping_writes(tmp_path: Path) -> None:
    doc = parallel(["docs/*.md", "src/**"], ["README.md", "src/a/*.py"])
    (d,) = only(lint_doc(tmp_path, doc), "STR305")
    assert d.path == ("jobs", 1, "writes", 1)
    assert d.message == ("jobs 'a' and 'b' can run at the same time and may both write paths "
                         "matching 'src/**' and 'src/a/*.py', e.g. 'src/a/x.py'")
    assert d.hint is not None and "make 'b' need 'a'" in d.hint


def test_str305_once_per_pair(tmp_path: Path) -> None:
    doc = parallel(["src/**", "src/x.py"], ["src/x.py", "src/*.py"])
    assert len(only(lint_doc(tmp_path, doc), "STR305")) == 1


def test_str305_not_when_one_needs_the_other(tmp_path: Path) -> None:
    doc = parallel(["src/**"], ["src/**"], chained=True)
    assert only(lint_doc(tmp_path, doc), "STR305") == []


def test_str305_not_when_the_globs_are_disjoint(tmp_path: Path) -> None:
    doc = parallel(["docs/*.md", "*.py"], ["src/*.md", "*/x.py"])
    assert only(lint_doc(tmp_path, doc), "STR305") == []


def test_str305_a_wide_fan_out_is_counted_not_listed(tmp_path: Path) -> None:
    doc = workflow(*[{"id": f"j{i}", "lane": "coder", "writes": ["**"]} for i in range(12)],
                   final=[f"j{i}" for i in range(12)])
    found = only(lint_doc(tmp_path, doc), "STR305")
    assert len(found) == MAX_OVERLAP_REPORTS + 1
    assert found[-1].message == "... and 16 more pairs of parallel jobs whose writes overlap"


# ---------------------------------------------------------------- STR306


def test_str306_an_artifact_nobody_consumes(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder", "produces": ["notes.md", "plan.md"]},
                   {"id": "b", "lane": "coder", "needs": ["a"], "consumes": ["plan.md"],
                    "produces": ["result.md"]})
    (d,) = only(lint_doc(tmp_path, doc), "STR306")
    assert d.path == ("jobs", 0, "produces", 0)
    assert d.message == ("job 'a' produces 'notes.md', but no job consumes it and 'a' is "
                         "not a final job")


def test_str306_a_final_jobs_artifacts_are_results(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder", "produces": ["x.md"]},
                   {"id": "b", "lane": "coder", "needs": ["a"]}, final=["a", "b"])
    assert only(lint_doc(tmp_path, doc), "STR306") == []


# ---------------------------------------------------------------- STR307, STR312, STR308


def prompted(prompt: Any, **extra: Any) -> dict[str, Any]:
    return workflow({"id": "draft", "lane": "coder", "prompt": prompt}, **extra)


def test_str307_missing_prompt_file_with_a_near_name(tmp_path: Path) -> None:
    doc = prompted("prompts/draft.md")
    (d,) = only(lint_doc(tmp_path, doc, {"prompts/drafts.md": "x"}), "STR307")
    assert d.path == ("jobs", 0, "prompt")
    assert d.message == "prompt file 'prompts/draft.md' of job 'draft' does not exist"
    assert d.hint is not None and "did you mean 'prompts/drafts.md'?" in d.hint


def test_str307_one_finding_per_job_using_a_missing_file(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder", "prompt": "p.md"},
                   {"id": "b", "lane": "coder", "needs": ["a"], "prompt": "p.md"})
    assert [d.path for d in only(lint_doc(tmp_path, doc), "STR307")] == [
        ("jobs", 0, "prompt"), ("jobs", 1, "prompt")]


@pytest.mark.parametrize(("content", "says"), [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "is binary"),
    (b"caf\xe9\n", "is not valid UTF-8 (byte 0xe9 at offset 3)"),
])
def test_str307_unreadable_prompt_file(tmp_path: Path, content: bytes, says: str) -> None:
    (d,) = only(lint_doc(tmp_path, prompted("p.md"), {"p.md": content}), "STR307")
    assert says in d.message


def test_str307_a_directory_is_not_a_prompt(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (d,) = only(lint_doc(tmp_path, prompted("prompts")), "STR307")
    assert "is a directory" in d.message


def test_read_prompt_accepts_a_bom_and_refuses_huge_files(tmp_path: Path) -> None:
    (tmp_path / "bom.md").write_bytes(b"\xef\xbb\xbfhello")
    assert read_prompt(tmp_path / "bom.md") == ("hello", None)
    (tmp_path / "big.md").write_bytes(b"x" * 1_000_001)
    assert read_prompt(tmp_path / "big.md")[1] == "is larger than 1,000,000 bytes"


def test_str312_syntax_error_in_a_prompt_file(tmp_path: Path) -> None:
    files: dict[str, str | bytes] = {"p.md": "line one\n{% if vars.x %}\nunclosed\n"}
    (d,) = only(lint_doc(tmp_path, prompted("p.md"), files), "STR312")
    assert d.path == ("jobs", 0, "prompt")
    assert d.message.startswith("the prompt file 'p.md' of job 'draft' is not a valid Jinja2 "
                                "template: Unexpected end of template.")
    assert "(template line" in d.message


def test_str312_inline_prompt_names_the_line(tmp_path: Path) -> None:
    doc = prompted({"text": "ok\n{{ run }\n"})
    (d,) = only(lint_doc(tmp_path, doc), "STR312")
    assert d.path == ("jobs", 0, "prompt", "text")
    assert "(template line 2: '{{ run }')" in d.message
    assert d.hint is not None and "{% raw %}" in d.hint


def test_str312_an_unknown_filter(tmp_path: Path) -> None:
    (d,) = only(lint_doc(tmp_path, prompted({"text": "{{ run | shout }}"})), "STR312")
    assert "No filter named 'shout'" in d.message


def test_str312_deep_nesting_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    text = "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}"
    (d,) = only(lint_doc(tmp_path, prompted({"text": text})), "STR312")
    assert "nested too deeply" in d.message


def test_str308_unknown_top_level_name(tmp_path: Path) -> None:
    doc = prompted({"text": "Hello\n{{ runn }} {{ job }}"})
    (d,) = only(lint_doc(tmp_path, doc), "STR308")
    assert d.path == ("jobs", 0, "prompt", "text")
    assert d.message == ("the inline prompt of job 'draft' uses 'runn', which is not a "
                         "template variable (template line 2: '{{ runn }} {{ job }}')")
    assert d.hint is not None and d.hint.startswith("did you mean 'run'?")


def test_str308_undeclared_workflow_var(tmp_path: Path) -> None:
    doc = prompted("p.md", vars={"topic": "x"})
    files: dict[str, str | bytes] = {
        "p.md": "{{ vars.topik }} {{ vars['other'] }} {{ vars.topic }}"}
    found = only(lint_doc(tmp_path, doc, files), "STR308")
    assert [d.message.split(" uses ")[1].split(",")[0] for d in found] == [
        "vars.topik", "vars.other"]
    assert found[0].hint is not None and found[0].hint.startswith("did you mean vars.topic?")
    assert found[0].path == ("jobs", 0, "prompt")


@pytest.mark.parametrize("text", [
    "{{ vars.maybe | default('x') }}",
    "{% if vars.maybe is defined %}{{ vars.maybe }}{% endif %}",
    "{{ stranger | d('') }}",
    "{% for item in artifacts %}{{ item }}{{ loop.index }}{% endfor %}",
    "{% set vars = {'a': 1} %}{{ vars.a }}",
    "{{ vars.get('maybe', '') }} {{ range(3) | list }}",
    "{% raw %}{{ not_a_variable }}{% endraw %}",
])
def test_str308_not_for_names_the_template_handles(tmp_path: Path, text: str) -> None:
    assert only(lint_doc(tmp_path, prompted({"text": text})), "STR308") == []


def test_prompt_shared_by_jobs_is_reported_once_naming_them(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder", "prompt": "p.md"},
                   {"id": "b", "lane": "coder", "needs": ["a"], "prompt": "p.md"})
    (d,) = only(lint_doc(tmp_path, doc, {"p.md": "{{ nope }}"}), "STR308")
    assert "of jobs 'a' and 'b'" in d.message


# ---------------------------------------------------------------- STR309, STR310, STR311, STR314


def test_str309_checkpoint_with_one_choice(tmp_path: Path) -> None:
    doc = workflow({"id": "gate", "lane": "coder", "kind": "checkpoint",
                    "choices": {"go": ["next"]}},
                   {"id": "next", "lane": "coder", "needs": ["gate"]})
    (d,) = only(lint_doc(tmp_path, doc), "STR309")
    assert d.path == ("jobs", 0, "choices")
    assert d.message == ("checkpoint 'gate' has only one choice ('go'), so there is nothing "
                         "to decide")


@pytest.mark.parametrize(("budget", "fires"), [(5, False), (6, True)])
def test_str310_large_revision_budget(tmp_path: Path, budget: int, fires: bool) -> None:
    doc = workflow({"id": "draft", "lane": "coder"},
                   {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                    "revise": {"target": "draft", "max": budget}})
    found = only(lint_doc(tmp_path, doc), "STR310")
    assert bool(found) is fires
    if fires:
        assert found[0].path == ("jobs", 1, "revise", "max")
        assert "'draft' 6 times; each time 2 job(s) run again" in found[0].message
        assert found[0].hint is not None and "worst case grows" in found[0].hint


def test_str311_unused_lane_points_at_its_key(tmp_path: Path) -> None:
    doc = workflow({"id": "a", "lane": "coder"},
                   lanes={"coder": {"command": CODER}, "spare": {"kind": "human"}})
    comp = compile_in(tmp_path, doc)
    found = only(lint(comp), "STR311")
    assert [(d.path, d.key) for d in found] == [(("lanes", "spare"), True)]
    comp.add(found)
    located = comp.diagnostics[-1]
    assert located.line is not None and located.column is not None
    line = (tmp_path / "workflow.json").read_text().splitlines()[located.line - 1]
    assert line[located.column - 1:].startswith('"spare"')


def test_str314_plan_bound_not_exact(tmp_path: Path) -> None:
    choices: dict[str, list[str]] = {f"c{k}": [] for k in range(7)}
    doc = workflow(*[{"id": f"gate{i}", "lane": "coder", "kind": "checkpoint",
                      "choices": choices} for i in range(8)], final=[f"gate{i}" for i in range(8)])
    (d,) = only(lint_doc(tmp_path, doc), "STR314")
    assert d.severity is Severity.INFO
    assert d.path == ("jobs", 0)
    assert "is an upper bound, not exact" in d.message


def test_str314_not_when_the_plan_is_exact(tmp_path: Path) -> None:
    assert only(lint_doc(tmp_path, CLEAN, CLEAN_FILES), "STR314") == []


# ---------------------------------------------------------------- the rule reference

RULES_DOC = Path(__file__).resolve().parents[2] / "docs" / "lint-rules.md"


def test_the_rule_reference_documents_every_code() -> None:
    text = RULES_DOC.read_text(encoding="utf-8")
    for code, (severity, name) in CODES.items():
        assert f'<a id="{code.lower()}"></a>\n### {code} {name} ({severity.value})' in text, code
    documented = re.findall(r"^### (STR\d{3}) ", text, flags=re.MULTILINE)
    assert documented == list(CODES)
