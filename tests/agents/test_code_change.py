"""examples/code-change end to end with every lane a real CLI: the coder drafts a plan, the
reviewer sends it back once (needs_revision), the coder revises it, the reviewer accepts,
and the coder applies the change to the repository's source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .harness import REPO_ROOT, SYSTEM_PATH, Bench, Outcome, refusals
from .lanes import lane
from .script import Edit, Read, Script, Verdict, Write, calls, say

pytestmark = pytest.mark.timeout(600)

SOURCE = 'def load(path):\n    with open(path) as f:\n        return f.read()\n'
OLD = "def load(path):\n"
NEW = 'def load(path):\n    if not path:\n        raise ValueError("no config path")\n'
PLAN = "# Plan {n}\nValidate the path in src/config.py before opening it.\n"
FEEDBACK = "name the test that covers an empty path"
SUMMARY = "# Summary\nsrc/config.py now refuses an empty path.\n"


def git_repo(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / "src" / "config.py").write_text(SOURCE)
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
           "PATH": SYSTEM_PATH}
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "base"]):
        subprocess.run(argv, cwd=repo, env=env, check=True)


def script() -> Script:
    plan_2 = PLAN.format(n=2) + "Test: tests/test_config.py::test_empty_path.\n"
    return (Script()
            .job("draft", calls(Write("{paths[0]}", PLAN.format(n=1))), say("Plan written."))
            .job("draft", calls(Write("{paths[0]}", plan_2)), say("Plan revised."), on_pass=2)
            .job("check", calls(Verdict("needs_revision", FEEDBACK)), say("Sent back."))
            .job("check", calls(Verdict("accept", "the plan names its test")), say("Accepted."),
                 on_pass=2)
            .job("apply", calls(Read("{repo}/src/config.py")),
                 calls(Edit("{repo}/src/config.py", OLD, NEW)),
                 calls(Write("{paths[0]}", SUMMARY)), say("Applied.")))


@pytest.mark.parametrize(("coder", "reviewer"), [
    ("claude", "claude"), ("codex", "codex"), ("gemini", "gemini"),
    ("codex", "claude"),  # the example's own pairing
    ("claude", "gemini"),
], ids=lambda vendor: str(vendor))
def test_code_change_with_one_revision(bench: Bench, repo: Path, tmp_path: Path, coder: str,
                                       reviewer: str) -> None:
    git_repo(repo)
    outcome = code_change(bench, tmp_path / "flow", coder, reviewer)
    assert_worked(bench, outcome, coder, reviewer)


def code_change(bench: Bench, flow: Path, coder: str, reviewer: str) -> Outcome:
    """examples/code-change, copied to ``flow``, run on the presets of ``coder`` and
    ``reviewer`` in the bench's repository, with ``script()``."""
    shutil.copytree(REPO_ROOT / "examples" / "code-change", flow)
    run_id = bench.prepare(flow / "workflow.json", {"coder": lane(coder, "author"),
                                                     "reviewer": lane(reviewer, "reviewer")})
    return bench.work(run_id, script())


def assert_worked(bench: Bench, outcome: Outcome, coder: str, reviewer: str) -> None:
    """The run went as ``script()`` says: one revision, then the change applied."""
    repo, run_id = outcome.repo, outcome.run_id
    assert outcome.status == "completed", outcome.explain()
    assert [(j.job_id, j.status, j.iteration) for j in outcome.view.jobs] == [
        ("draft", "succeeded", 1), ("check", "succeeded", 1), ("apply", "succeeded", 0)]
    assert outcome.view.executions == 5  # plan's worst case: draft, check, twice; apply

    # The verdicts, as recorded: sent back once with the reviewer's words, then accepted.
    assert bench.verdicts(outcome) == [("check", 0, "needs_revision", FEEDBACK),
                                       ("check", 1, "accept", "the plan names its test")]
    assert {e["job"] for e in outcome.of("job.reset")} == {"draft", "check"}
    assert all(e["payload"]["data"]["reason"] == FEEDBACK for e in outcome.of("job.reset"))
    (accepted,) = outcome.of("job.complete", job="check")
    assert accepted["payload"]["data"]["verdict"] == "accept"

    # What each job published, with the lane's log; and the change, in the repository.
    plan_1, plan_2 = (bench.artifacts(outcome, "draft", i) for i in (0, 1))
    assert plan_1["draft.md"] == PLAN.format(n=1) and "Plan written." in plan_1["logs/draft.log"]
    assert plan_2["draft.md"].startswith(PLAN.format(n=2))
    assert "Plan revised." in plan_2["logs/draft.log"]
    applied = bench.artifacts(outcome, "apply")
    assert applied["summary.md"] == SUMMARY and "Applied." in applied["logs/apply.log"]
    assert (repo / "src" / "config.py").read_text() == SOURCE.replace(OLD, NEW)

    # What the CLIs sent: each job on its lane's vendor, every tool call carried out, the
    # reviewer's words in the second draft's prompt, each plan in the review that read it.
    record = outcome.record
    assert record.errors() == []
    assert record.names == []
    assert {job: record.vendors(job) for job in ("draft", "check", "apply")} == {
        "draft": {coder}, "check": {reviewer}, "apply": {coder}}
    for job, passes in (("draft", (1, 2)), ("check", (1, 2)), ("apply", (1,))):
        for on_pass in passes:
            results = record.results(job, on_pass)
            assert results and refusals(results) == [], (job, on_pass, results)
    assert FEEDBACK in record.prompt("draft", 2)
    assert PLAN.format(n=1) in record.prompt("check", 1)
    assert plan_2["draft.md"] in record.prompt("check", 2)
    assert plan_2["draft.md"] in record.prompt("apply")
    assert f"check: succeeded; run {run_id}: running" in record.results("check", 2)[0].output
