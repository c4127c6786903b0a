"""Lint rules STR319 (a reviewer of the work's model family) and STR320 (a review chain
whose final acceptance is given by the reviewer that drove the revisions), and the
family table behind both, which docs/lint-rules.md shows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from striatum.compiler.lint.families import MODEL_FAMILIES, PROGRAM_FAMILIES, family_of_model

try:
    from tests.unit.test_lint import CODER, REVIEWER, lint_doc, only, review_of, workflow
except ImportError:  # run without the repository root on sys.path
    from test_lint import (  # type: ignore[no-redef,import-not-found]
        CODER,
        REVIEWER,
        lint_doc,
        only,
        review_of,
        workflow,
    )

RULES_DOC = Path(__file__).resolve().parents[2] / "docs" / "lint-rules.md"


@pytest.mark.parametrize(("model", "family"), [
    ("claude-sonnet-4-5", "claude"), ("claude-opus-4-1", "claude"), ("Opus", "claude"),
    ("anthropic/claude-3-7-sonnet", "claude"), ("openrouter/anthropic/claude-opus-4", "claude"),
    ("gpt-5", "openai"), ("o3", "openai"), ("o4-mini", "openai"), ("o1.5", "openai"),
    ("codex-mini-latest", "openai"), ("gpt-5-codex", "openai"), ("openai/gpt-4o", "openai"),
    ("gemini-2.5-pro", "gemini"), ("google/gemma-3", "gemini"),
    ("deepseek-coder", "deepseek"), ("qwen3-coder", "qwen"), ("grok-4", "grok"),
    ("ollama", None), ("olmo-2", None), ("pro", None), ("o", None),
])
def test_the_family_of_a_model_name(model: str, family: str | None) -> None:
    assert family_of_model(model) == family


def test_the_reference_shows_every_family_and_every_program_default() -> None:
    section = RULES_DOC.read_text(encoding="utf-8").split('<a id="str319">')[1].split(
        '<a id="str320">')[0]
    rows = dict(re.findall(r"^\| (.+) \| (\w+) \|$", section, flags=re.MULTILINE))
    assert sorted(set(rows.values()) - {"family"}) == sorted({f for _, f in MODEL_FAMILIES})
    for program, family in PROGRAM_FAMILIES.items():
        assert f"`{program}` → {family}" in section


# ---------------------------------------------------------------- STR319

@pytest.mark.parametrize(("coder", "reviewer", "fires"), [
    # Two explicit models of one family: STR304 is silent, STR319 speaks.
    (["claude", "--model", "claude-sonnet-4-5", "-p"],
     ["claude", "--model", "claude-opus-4-1", "-p"], True),
    (["codex", "exec", "-m", "gpt-5", "-"], ["aider", "--model", "o3"], True),
    (["claude", "-p"], ["aider", "--model", "anthropic/claude-opus-4-1"], True),
    (["gemini", "-m", "gemini-2.5-flash"], ["opencode", "-m", "google/gemini-2.5-pro"], True),
    # Different families, or nothing to tell the family by.
    (["claude", "--model", "claude-sonnet-4-5", "-p"], ["codex", "exec", "-m", "gpt-5"], False),
    (["claude", "-p"], ["codex", "exec", "-"], False),
    (["aider", "--model", "ollama"], ["aider2", "--model", "ollama"], False),
    (["python", "coder.py"], ["python", "reviewer.py"], False),
    # The same program with no model says nothing of a difference: STR304's, not STR319's.
    (["claude", "-p"], ["claude", "--model", "opus", "-p"], False),
])
def test_str319_same_model_family(tmp_path: Path, coder: list[str], reviewer: list[str],
                                  fires: bool) -> None:
    doc = review_of({"coder": {"command": coder}, "reviewer": {"command": reviewer}})
    found = only(lint_doc(tmp_path, doc), "STR319")
    assert bool(found) is fires
    if fires:
        assert found[0].path == ("jobs", 1, "lane")
        assert found[0].hint is not None and "another family" in found[0].hint


def test_str319_names_both_models_and_the_family(tmp_path: Path) -> None:
    doc = review_of({"coder": {"command": ["claude", "-p"]},
                     "reviewer": {"command": ["aider", "--model", "claude-opus-4-1"]}})
    (d,) = only(lint_doc(tmp_path, doc), "STR319")
    assert d.message == ("review 'check' (lane 'reviewer', model 'claude-opus-4-1') and job "
                         "'draft' it reviews (lane 'coder', the default model of 'claude') "
                         "are all of model family 'claude'")


def test_str319_not_for_operator_or_human_lanes(tmp_path: Path) -> None:
    doc = review_of({"coder": {"kind": "operator"}, "reviewer": {"kind": "human"}})
    assert only(lint_doc(tmp_path, doc), "STR319") == []


# ---------------------------------------------------------------- STR320

def chain(first: str, last: str, lanes: dict[str, Any] | None = None,
          revise: bool = True) -> dict[str, Any]:
    check: dict[str, Any] = {"id": "check", "lane": first, "kind": "review", "needs": ["draft"]}
    if revise:
        check["revise"] = {"target": "draft", "max": 2}
    return workflow({"id": "draft", "lane": "coder"}, check,
                    {"id": "apply", "lane": "coder", "needs": ["check"]},
                    {"id": "final", "lane": last, "kind": "review", "needs": ["apply"]},
                    lanes=lanes or {"coder": {"command": CODER},
                                    "reviewer": {"command": REVIEWER},
                                    "second": {"command": ["gemini", "-m", "gemini-2.5-pro"]},
                                    "principal": {"kind": "human"}})


def test_str320_the_reviser_gives_the_final_acceptance_on_the_same_lane(
        tmp_path: Path) -> None:
    (d,) = only(lint_doc(tmp_path, chain("reviewer", "reviewer")), "STR320")
    assert d.path == ("jobs", 3, "lane")
    assert d.message == ("review 'final' gives the final acceptance of work that review "
                         "'check' sent back for revision, and the two are one judge: both on "
                         "lane 'reviewer'")


@pytest.mark.parametrize(("first", "last", "how"), [
    (["claude", "-p"], ["claude", "--model", "opus", "-p"], "both run 'claude'"),
    (["claude", "--model", "claude-sonnet-4-5", "-p"], ["aider", "--model", "opus"],
     "both of model family 'claude'"),
])
def test_str320_one_judge_on_two_lanes(tmp_path: Path, first: list[str], last: list[str],
                                       how: str) -> None:
    lanes = {"coder": {"command": CODER}, "a": {"command": first}, "b": {"command": last}}
    (d,) = only(lint_doc(tmp_path, chain("a", "b", lanes)), "STR320")
    assert d.message.endswith(how + " (lanes 'a' and 'b')")


@pytest.mark.parametrize(("first", "last", "revise"), [
    ("reviewer", "second", True),  # another vendor and family accepts
    ("reviewer", "reviewer", False),  # the first review drives no revision
    ("principal", "reviewer", True),  # a human is whoever answers: nothing to compare
])
def test_str320_independent_final_acceptance_is_fine(tmp_path: Path, first: str, last: str,
                                                     revise: bool) -> None:
    assert only(lint_doc(tmp_path, chain(first, last, revise=revise)), "STR320") == []


def test_str320_only_the_last_review_gives_the_final_acceptance(tmp_path: Path) -> None:
    # check (reviewer, revises) -> middle (reviewer) -> final (second): the last word is
    # another judge's, so the middle review on the same lane is no finding.
    doc = workflow({"id": "draft", "lane": "coder"},
                   {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                    "revise": {"target": "draft", "max": 1}},
                   {"id": "middle", "lane": "reviewer", "kind": "review", "needs": ["check"]},
                   {"id": "final", "lane": "second", "kind": "review", "needs": ["middle"]},
                   lanes={"coder": {"command": CODER}, "reviewer": {"command": REVIEWER},
                          "second": {"command": ["gemini", "-m", "gemini-2.5-pro"]}})
    assert only(lint_doc(tmp_path, doc), "STR320") == []


def test_a_single_review_that_revises_and_accepts_is_not_a_chain(tmp_path: Path) -> None:
    doc = review_of({"coder": {"command": CODER}, "reviewer": {"command": REVIEWER}})
    assert only(lint_doc(tmp_path, doc), "STR320") == []
