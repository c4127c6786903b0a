"""The in-toto statement of an accepted review: its subjects, its reviewer, its model."""

from __future__ import annotations

from typing import Any

from striatum.corpus.statements import STATEMENT_TYPE, model_of, statement

VERDICT = {"run_id": "r", "job_id": "check", "iteration": 1, "verdict": "accept",
           "reason": "ok", "fence": 3}


def artifact(job: str, iteration: int, path: str, sha: str, run: str = "r") -> dict[str, Any]:
    return {"run_id": run, "job_id": job, "iteration": iteration, "path": path, "sha256": sha}


ARTIFACTS = [artifact("draft", 0, "draft.md", "a" * 64), artifact("draft", 1, "draft.md", "b" * 64),
             artifact("draft", 2, "draft.md", "c" * 64), artifact("draft", 1, "notes.md", "d" * 64),
             artifact("draft", 1, "draft.md", "e" * 64, run="other"),
             artifact("check", 1, "verdict.json", "f" * 64)]


def test_the_subjects_are_the_consumed_artifacts_as_the_accepted_pass_saw_them() -> None:
    found = statement(VERDICT, ARTIFACTS, {"id": "check", "lane": "rev",
                                           "consumes": ["draft.md"]},
                      {"kind": "command", "command": ["claude", "--model", "opus", "-p"]})
    assert found is not None and found["_type"] == STATEMENT_TYPE
    assert found["subject"] == [{"name": "draft.md", "digest": {"sha256": "b" * 64},
                                 "annotations": {"job": "draft", "iteration": 1}}]
    assert found["predicate"]["reviewer"] == {"lane": "rev", "kind": "command",
                                              "executable": "claude", "model": "opus",
                                              "from": "workflow"}


def test_the_reviewer_is_who_the_accepting_attempt_chained_it_ran_when_it_did() -> None:
    started = {"lane": "rev", "executable": "/usr/local/bin/claude", "model": "opus-4"}
    found = statement(VERDICT, ARTIFACTS, {"id": "check", "lane": "rev",
                                           "consumes": ["draft.md"]},
                      {"kind": "command", "command": ["claude", "--model", "sonnet", "-p"]},
                      started)
    assert found is not None
    assert found["predicate"]["reviewer"] == {"lane": "rev", "kind": "command",
                                              "executable": "/usr/local/bin/claude",
                                              "model": "opus-4", "from": "attempt"}


def test_a_review_that_consumes_nothing_names_what_it_published_or_makes_no_statement() -> None:
    found = statement(VERDICT, ARTIFACTS, {"id": "check", "lane": "rev"})
    assert found is not None
    assert [s["name"] for s in found["subject"]] == ["verdict.json"]
    assert statement(VERDICT, ARTIFACTS[:3], {"id": "check", "lane": "rev"}) is None


def test_the_model_is_read_from_the_lane_command() -> None:
    assert model_of(["codex", "exec", "-m", "gpt-5"]) == "gpt-5"
    assert model_of(["gemini", "--model=gemini-2.5-pro"]) == "gemini-2.5-pro"
    assert model_of(["claude", "-p"]) is None
    assert model_of(None) is None
