"""Hand-worked proofs and plans, and the compiler's refusal to crash on bad input.

Every expected number below is worked out by hand in the comment above it,
from the run semantics (budgets per run, never reset; a revision sends back
{target} + descendants(target) - strict descendants(reviewer)).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from striatum.compiler.compile import Compilation, check
from striatum.compiler.plan import parse_verdicts, plan_document, walk, worst_case
from striatum.errors import UsageError
from tests.unit.strategies import (
    LANES,
    deep,
    dumps,
    hostile_bytes,
    mutated_documents,
    workflow_file,
)


def job(id_: str, *needs: str, lane: str = "a", **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": id_, "lane": lane}
    if needs:
        doc["needs"] = list(needs)
    doc.update(extra)
    return doc


def review(id_: str, *needs: str, target: str | None = None, max_: int = 1,
           on_exhausted: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"kind": "review"}
    if target is not None:
        extra["revise"] = {"target": target, "max": max_}
        if on_exhausted is not None:
            extra["revise"]["on_exhausted"] = on_exhausted
    return job(id_, *needs, lane="b", **extra)


def checkpoint(id_: str, *needs: str, **choices: list[str]) -> dict[str, Any]:
    return job(id_, *needs, lane="b", kind="checkpoint", choices=choices)


def workflow(*jobs: dict[str, Any]) -> dict[str, Any]:
    return {"name": "w", "lanes": LANES, "jobs": list(jobs)}


def compile_doc(doc: dict[str, Any], tmp_path: Path, name: str = "workflow.json"
                ) -> Compilation:
    path = tmp_path / name
    path.write_text(json.dumps(doc, indent=2))
    return check(str(path))


def graph(doc: dict[str, Any], tmp_path: Path) -> Any:
    comp = compile_doc(doc, tmp_path)
    assert comp.ok, [(d.code, d.message) for d in comp.diagnostics]
    return comp.graph


def errors(comp: Compilation) -> list[str]:
    return [d.code for d in comp.diagnostics if d.severity == "error"]


def run(wg: Any, verdicts: str) -> tuple[str, int, list[tuple[str, Any]], list[str]]:
    outcome, unused = walk(wg, parse_verdicts(verdicts, wg))
    return (outcome.status, outcome.executions, [(s.job, s.outcome) for s in outcome.steps],
            list(unused))


# --------------------------------------------------------------------------
# Worst cases and paths, by hand

CODE_CHANGE = workflow(job("draft"), review("check", "draft", target="draft", max_=1),
                       job("apply", "check"))


def test_code_change(tmp_path: Path) -> None:
    # Worst case: draft, check(needs_revision), draft, check(accept), apply = 5.
    # Paths: accept -> apply | reject | needs_revision -> draft, check: accept -> apply |
    # reject | needs_revision with the budget spent -> escalate.  2 + 3 = 5.
    wg = graph(CODE_CHANGE, tmp_path)
    worst = worst_case(wg)
    assert (worst.executions, worst.exact) == (5, True)
    assert plan_document(wg)["paths"] == 5


NESTED = workflow(job("a"), job("b", "a"), review("c", "b", target="b", max_=1),
                  review("d", "c", target="a", max_=1), job("e", "d"))


def test_nested_loops(tmp_path: Path) -> None:
    # a -> b -> c (revises b, max 1) -> d (revises a, max 1) -> e.
    # Without revisions: 5 executions.  c's revision reruns {b, c}: +2, once.
    # d's revision reruns {a, b, c, d}: +4, once.  Budgets are per run, so the inner
    # loop does not get a fresh budget when the outer one sends work back:
    #   a b c(nr) b c(acc) d(nr) a b c(acc) d(acc) e  = 5 + 2 + 4 = 11
    # (had budgets reset per outer pass, the answer would be 13).
    #
    # Paths.  f(i, o) = leaves from a run of c with i inner and o outer revisions
    # left; g(i, o) = leaves from a run of d.
    #   g(i, 0) = 3 (accept -> e, reject, escalate)   g(i, 1) = 2 + f(i, 0)
    #   f(0, o) = 2 + g(0, o)  (reject, escalate)     f(1, o) = 1 + g(1, o) + f(0, o)
    #   f(0,0) = 5, g(0,1) = 7, f(0,1) = 9, f(1,0) = 1 + 3 + 5 = 9,
    #   g(1,1) = 2 + f(1,0) = 11, f(1,1) = 1 + 11 + 9 = 21.
    wg = graph(NESTED, tmp_path)
    worst = worst_case(wg)
    assert (worst.executions, worst.exact) == (11, True)
    assert plan_document(wg)["paths"] == 21
    status, executions, steps, unused = run(
        wg, "c=needs_revision,c=accept,d=needs_revision,c=accept,d=accept")
    assert (status, executions, unused) == ("completed", 11, [])
    assert [j for j, _ in steps] == list("abcbcdabcde")
    # The inner budget is spent after the first pass: its second needs_revision escalates.
    status, executions, steps, _ = run(
        wg, "c=needs_revision,c=accept,d=needs_revision,c=needs_revision")
    assert (status, executions) == ("blocked", 9)
    assert [j for j, _ in steps] == list("abcbcdabc")


@pytest.mark.parametrize("file_order", [("a", "s", "r"), ("a", "r", "s")])
def test_side_branch_off_the_revise_target(tmp_path: Path, file_order: tuple[str, ...]
                                           ) -> None:
    # a -> r (revises a, max 1) and a -> s, a side branch nobody downstream of r needs.
    # The region of r is {a, r, s}: s may have run on a's old output, so it runs again.
    # Worst case over every schedule: a s r(nr) a s r(accept) = 6, in either file order.
    # (Run in file order a, r, s, a schedule reaches only a r(nr) a r(accept) s = 5.)
    # Paths in the canonical order: accept | reject | nr -> accept | reject | escalate = 5.
    jobs = {"a": job("a"), "r": review("r", "a", target="a", max_=1), "s": job("s", "a")}
    wg = graph(workflow(*(jobs[j] for j in file_order)), tmp_path)
    worst = worst_case(wg)
    assert (worst.executions, worst.exact) == (6, True)
    assert plan_document(wg)["paths"] == 5
    status, executions, _, _ = run(wg, "r=needs_revision,r=accept")
    assert status == "completed"
    assert executions == (6 if file_order == ("a", "s", "r") else 5)


CHECKPOINTED = workflow(
    job("a"),
    checkpoint("cp", "a", go=["w"], cancel=["alt"]),
    job("w", "cp"),
    review("r", "w", target="w", max_=2),
    job("e", "r"),
    job("alt", "cp"),
)


def test_checkpoint_that_skips_a_reviewer(tmp_path: Path) -> None:
    # cancel: a cp alt = 3 (w is skipped, so r and e, whose needs are all skipped, are too).
    # go:     a cp w r(nr) w r(nr) w r(accept) e = 9; alt is skipped.  The maximum goes.
    # Paths: cancel -> 1.  go -> P(2) with P(0) = 3 (accept, reject, escalate) and
    # P(k) = 2 + P(k - 1): P(2) = 7.  8 in all.
    wg = graph(CHECKPOINTED, tmp_path)
    worst = worst_case(wg)
    assert (worst.executions, worst.exact) == (9, True)
    assert worst.choices == {"cp": "go"}
    assert plan_document(wg)["paths"] == 8
    status, executions, steps, _ = run(wg, "cp=cancel")
    assert (status, executions) == ("completed", 3)
    assert [j for j, _ in steps] == ["a", "cp", "alt"]


def test_on_exhausted(tmp_path: Path) -> None:
    # With the budget spent, needs_revision goes to on_exhausted.
    for on_exhausted, status, executions, paths in (
            ("escalate", "blocked", 4, 5), ("fail", "failed", 4, 5),
            ("accept", "completed", 5, 5)):
        doc = workflow(job("draft"), review("check", "draft", target="draft", max_=1,
                                            on_exhausted=on_exhausted), job("apply", "check"))
        wg = graph(doc, tmp_path)
        assert worst_case(wg).executions == 5
        assert plan_document(wg)["paths"] == paths
        got = run(wg, "check=needs_revision,check=needs_revision")
        assert got[:2] == (status, executions), on_exhausted


def test_walk_prints_the_scripted_sequence(tmp_path: Path) -> None:
    wg = graph(CODE_CHANGE, tmp_path)
    status, executions, steps, unused = run(wg, "check=needs_revision,check=accept")
    assert (status, executions, unused) == ("completed", 5, [])
    assert [j for j, _ in steps] == ["draft", "check", "draft", "check", "apply"]
    assert [o for j, o in steps if j == "check"] == ["needs_revision", "accept"]
    status, executions, steps, unused = run(wg, "check=reject,check=accept")
    assert (status, executions) == ("failed", 2)
    assert [j for j, _ in steps] == ["draft", "check"]
    assert unused == ["check=accept"]


# --------------------------------------------------------------------------
# Proof failures: located, coded diagnostics


def test_cycle_is_named_and_located(tmp_path: Path) -> None:
    # One job per line so the location can be checked against the edges of the cycle.
    lines = [
        '{"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": [',
        '  {"id": "start", "lane": "a"},',
        '  {"id": "p", "lane": "a", "needs": ["start", "r"]},',
        '  {"id": "q", "lane": "a", "needs": ["p"]},',
        '  {"id": "r", "lane": "a", "needs": ["q"]},',
        '  {"id": "tail", "lane": "a", "needs": ["r"]}',
        "]}",
    ]
    path = tmp_path / "cycle.json"
    path.write_text("\n".join(lines) + "\n")
    comp = check(str(path))
    assert not comp.ok
    cycles = [d for d in comp.diagnostics if d.code == "STR204"]
    assert len(cycles) == 1
    d = cycles[0]
    # The message names the cycle as a closed walk along needs edges.
    named = d.message.split(": ", 1)[1].split(" → ")
    assert named[0] == named[-1] and set(named) == {"p", "q", "r"}
    needs = {"p": {"start", "r"}, "q": {"p"}, "r": {"q"}}
    for before, after in zip(named, named[1:], strict=False):
        assert before in needs[after], (before, after)
    # It points at a need that is an edge of the cycle (1-based line and column).
    edges = set()
    for lineno, text in enumerate(lines, start=1):
        for jid, need in (("p", "r"), ("q", "p"), ("r", "q")):
            if f'"id": "{jid}"' in text:
                edges.add((lineno, text.index(f'"{need}"]') + 1))
    assert (d.line, d.column) in edges, (d.line, d.column, edges)


@pytest.mark.parametrize("target", ["z", "r", "side"])
def test_revise_target_not_upstream(tmp_path: Path, target: str) -> None:
    # z is downstream of r, r is r itself, side is a sibling: none is a strict ancestor.
    doc = workflow(job("a"), job("side", "a"), review("r", "a", target=target),
                   job("z", "r"))
    comp = compile_doc(doc, tmp_path)
    assert not comp.ok
    found = [d for d in comp.diagnostics if d.code == "STR206"]
    assert len(found) == 1 and found[0].line and found[0].line >= 1
    assert repr(target) in found[0].message


def test_checkpoint_inside_a_loop(tmp_path: Path) -> None:
    on_the_path = workflow(job("a"), checkpoint("cp", "a", go=["r"], stop=[]),
                           review("r", "cp", target="a"))
    off_the_path = workflow(job("a"), checkpoint("cp", "a", go=["x"], stop=[]),
                            job("x", "cp"), review("r", "a", target="a"))
    after_the_reviewer = workflow(job("a"), review("r", "a", target="a"),
                                  checkpoint("cp", "r", go=["x"], stop=[]), job("x", "cp"))
    for doc, expected in ((on_the_path, True), (off_the_path, True),
                          (after_the_reviewer, False)):
        comp = compile_doc(doc, tmp_path)
        found = [d for d in comp.diagnostics if d.code == "STR210"]
        assert bool(found) == expected, (doc, comp.diagnostics)
        assert comp.ok == (not expected)
        for d in found:
            assert "'cp'" in d.message and d.line is not None and d.line >= 1


# --------------------------------------------------------------------------
# Nothing the user writes crashes the compiler

CODE = re.compile(r"^STR\d{3}$")


def assert_diagnosed(path: str) -> Compilation:
    comp = check(path)  # must not raise
    for d in comp.diagnostics:
        assert CODE.match(d.code), d
        assert d.line is not None and d.line >= 1, d
        assert d.column is not None and d.column >= 1, d
    if comp.ok:
        worst = worst_case(comp.graph)
        assert worst.executions >= 1
        plan_document(comp.graph)
    else:
        assert errors(comp), comp.diagnostics
    return comp


FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow,
                                                    HealthCheck.data_too_large]}


@settings(max_examples=300, **FUZZ)
@given(mutated_documents())
def test_mutated_documents_get_diagnostics(text: str) -> None:
    with workflow_file(text) as path:
        assert_diagnosed(path)


@settings(max_examples=300, **FUZZ)
@given(hostile_bytes())
def test_hostile_bytes_get_diagnostics(data: bytes) -> None:
    with workflow_file(data) as path:
        comp = assert_diagnosed(path)
    assert not comp.ok or data.lstrip(b"\xef\xbb\xbf").strip().startswith(b"{")


@pytest.mark.soak
@settings(max_examples=3000, **FUZZ)
@given(mutated_documents())
def test_soak_mutated_documents_get_diagnostics(text: str) -> None:
    with workflow_file(text) as path:
        assert_diagnosed(path)


@pytest.mark.parametrize("text", [
    dumps(workflow(review("r", target="r", max_=int("1" * 40)))),
    '{"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": [{"id": "j", "lane": "a", '
    '"max_attempts": ' + "1" * 5000 + "}]}",
    '{"name": ' + "1" * 5000 + "}",
    '{"name": NaN, "lanes": Infinity, "jobs": -Infinity}',
    '{"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": [{"id": "j", "lane": "a", '
    '"max_attempts": 1e999999}]}',
    dumps({"name": "w", "lanes": LANES, "jobs": [deep(100_000)]}),
    dumps({"name": "w", "lanes": LANES, "jobs": [deep(100_000, kind="{")]}),
    "[" * 1_000_000,
    '{"name": "w", "name": "v", "lanes": {}, "jobs": []}',
    '"\\ud800"',
    '{"name": "\\ud800", "lanes": {"\\udfff": {"command": ["x"]}}, "jobs": []}',
    '{"name": "名前", "lanes": {"é": {"command": ["💥"]}}, "jobs": [{"id": "💥", '
    '"lane": "é"}]}',
    "null", "[]", '"workflow"', "0", "{}", "{", "}", '{"jobs": [{}]}',
])
def test_handpicked_hostile_documents(text: str) -> None:
    with workflow_file(text) as path:
        assert not assert_diagnosed(path).ok


@pytest.mark.parametrize("data", [
    b"", b"   \n", b"\xef\xbb\xbf", b"\xff\xfe{\x00}\x00", b"{\"name\": \"\xff\"}",
    b"{\x00}", bytes(range(256)), b"\xed\xa0\x80", b"\xc0\xaf",
])
def test_handpicked_hostile_bytes(data: bytes) -> None:
    with workflow_file(data) as path:
        assert not assert_diagnosed(path).ok


def test_paths_that_are_not_files(tmp_path: Path) -> None:
    assert not assert_diagnosed(str(tmp_path / "missing.json")).ok
    assert not assert_diagnosed(str(tmp_path)).ok
    with tempfile.TemporaryDirectory() as directory:
        link = os.path.join(directory, "loop.json")
        os.symlink(link, link)
        assert not assert_diagnosed(link).ok


@settings(max_examples=100, **FUZZ)
@given(hostile_bytes())
def test_hostile_bytes_as_dsl_get_diagnostics(data: bytes) -> None:
    pytest.importorskip("striatum.compiler.dsl")
    with workflow_file(data, suffix=".stm") as path:
        assert_diagnosed(path)


@pytest.mark.parametrize(("target", "needs", "hint"), [
    ("r", ["a"], "a review sends work back to the job it reviews: revise a job it needs, "
                 "such as 'a'"),
    ("r", [], "a review sends work back to the job it reviews: add the job it reviews to its "
              "needs and revise that job"),
    ("z", ["a"], "'z' needs 'r', directly or through others, and work can only go back "
                 "upstream: revise a job it needs, such as 'a'"),
])
def test_a_revise_target_hint_leads_to_no_other_error(tmp_path: Path, target: str,
                                                      needs: list[str], hint: str) -> None:
    # Adding 'r' or 'z' to the needs of 'r', as the hint once said, makes a cycle.
    doc = workflow(job("a"), review("r", *needs, target=target), job("z", "r"))
    [d] = compile_doc(doc, tmp_path).diagnostics
    assert d.code == "STR206" and d.hint == hint
    if needs:  # following the hint compiles
        doc["jobs"][1]["revise"]["target"] = needs[0]
        assert compile_doc(doc, tmp_path).ok


@pytest.mark.parametrize(("script", "message", "hint"), [
    ("check", "verdict 'check' is not JOB=OUTCOME",
     "write JOB=OUTCOME items separated by commas, e.g. 'check=needs_revision,check=accept'"),
    ("a=accept", "'a' is a task: only a review or a checkpoint takes a verdict",
     "jobs that take one: 'r'"),
    ("r=maybe", "'r' cannot take 'maybe'", "it takes 'accept', 'needs_revision' or 'reject'"),
])
def test_a_verdict_script_error_names_no_command_line_flag(tmp_path: Path, script: str,
                                                           message: str, hint: str) -> None:
    wg = graph(workflow(job("a"), review("r", "a", target="a")), tmp_path)
    with pytest.raises(UsageError) as caught:
        parse_verdicts(script, wg)
    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_a_workflow_without_decisions_says_so(tmp_path: Path) -> None:
    wg = graph(workflow(job("a"), job("b", "a")), tmp_path)
    with pytest.raises(UsageError) as caught:
        parse_verdicts("a=accept", wg)
    assert caught.value.hint == "the workflow has no reviews or checkpoints to script"


def test_a_long_value_is_cut_in_a_verdict_script(tmp_path: Path) -> None:
    wg = graph(workflow(job("a"), review("r", "a", target="a")), tmp_path)
    long = "x" * 10_000
    for script in (long, long + "=accept", "r=" + long):
        with pytest.raises(UsageError) as caught:
            parse_verdicts(script, wg)
        assert len(caught.value.message) <= 300 and len(caught.value.hint or "") <= 300


def test_a_walk_takes_ready_jobs_in_topological_order_not_file_order(tmp_path: Path) -> None:
    # Written last, `a` runs first; `b` and `c` both wait for it and run in file order.
    wg = graph(workflow(job("c", "a"), job("b", "a"), job("a")), tmp_path)
    assert run(wg, "")[2] == [("a", None), ("c", None), ("b", None)]


USER_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "user-guide.md"


def test_the_user_guide_states_the_budgets_the_code_has() -> None:
    from striatum.compiler.ir import DEFAULT_MAX_ATTEMPTS
    from striatum.compiler.plan import MAX_CHOICE_WORK
    from striatum.compiler.simulate import PATHS_STEPS, PATHS_WORK

    text = " ".join(USER_GUIDE.read_text(encoding="utf-8").split())
    fewest, most = PATHS_STEPS
    assert (f"stops after min({most:,}, max({fewest:,}, {PATHS_WORK:,} ÷ jobs)) simulated "
            f"steps (a step runs one job): {most:,} for a workflow of up to "
            f"{PATHS_WORK // most} jobs, {fewest:,} from {PATHS_WORK // fewest:,} jobs on") in text
    assert f"pass {MAX_CHOICE_WORK:,}; then `plan` assumes no branch is ever skipped" in text
    retries = DEFAULT_MAX_ATTEMPTS - 1
    assert (f"how many attempts each run of the job gets, the first included (default "
            f"{DEFAULT_MAX_ATTEMPTS}: one try and up to {retries} retries)") in text
    assert "walks jobs one at a time in topological order" in text
    assert "file order" not in text
