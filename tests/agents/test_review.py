"""A review job: the agent records its verdict by running ``striatum job verdict accept``
with its CLI's shell tool, which reaches the run's database from inside the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import Bench, refusals, verdict_said, write_workflow
from .lanes import VENDORS, lane
from .script import Script, Verdict, calls, say

pytestmark = pytest.mark.timeout(300)

SHELL_TOOL = {"claude": "Bash", "codex": "exec", "gemini": "run_shell_command"}


@pytest.mark.parametrize("vendor", VENDORS)
def test_the_agent_records_its_verdict_with_its_shell_tool(bench: Bench, tmp_path: Path,
                                                           vendor: str) -> None:
    workflow = write_workflow(tmp_path / "flow", {
        "name": "conformance-review",
        "lanes": {"reviewer": {"command": ["false"]}},
        "jobs": [{"id": "check", "lane": "reviewer", "kind": "review",
                  "prompt": {"text": "Review the repository's README.\n"}}]})
    reason = f"{vendor} read it: the README is sound"
    script = Script().job("check", calls(Verdict("accept", reason)),
                          say("Verdict recorded."))

    run_id = bench.prepare(workflow, {"reviewer": lane(vendor, "reviewer")})
    outcome = bench.work(run_id, script)

    assert outcome.status == "completed", outcome.explain()
    check = outcome.job("check")
    assert (check.status, check.verdict, check.reason) == ("succeeded", "accept", reason)
    (verdict,) = outcome.of("job.complete", job="check")
    assert verdict_said(verdict["payload"]["data"]) == {"verdict": "accept", "reason": reason}

    record = outcome.record
    assert record.errors() == []
    assert record.names == []
    assert record.vendors("check") == {vendor}
    (result,) = record.results("check")
    assert result.tool == SHELL_TOOL[vendor]
    assert refusals([result]) == [], result
    # What `striatum job verdict` printed: it reached the run's database.
    assert f"check: succeeded; run {run_id}: completed" in result.output, result
    # Through the command, not a verdict.json left behind; and the lane's output is still
    # published as the job's log though its agent ended the job first.
    out = outcome.repo / ".striatum" / "runs" / run_id / "check" / "i0a0"
    assert not (out / "verdict.json").exists()
    assert "Verdict recorded." in bench.artifacts(outcome, "check")["logs/check.log"]
