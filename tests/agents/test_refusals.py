"""The control: the same CLIs without the flags that permit writing files headless. Their
file tool is refused (or not offered), the fake is told so, and the job fails for want of
its artifact: what the other tests assert on is able to fail."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from .harness import Bench, refusals, write_workflow
from .lanes import UNPERMITTED, VENDORS
from .script import Script, Write, calls, say

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("vendor", VENDORS)
def test_without_permission_flags_the_write_is_refused(bench: Bench, tmp_path: Path,
                                                       vendor: str) -> None:
    workflow = write_workflow(tmp_path / "flow", {
        "name": "conformance-refusal",
        "lanes": {"author": {"command": ["false"]}},
        "jobs": [{"id": "report", "lane": "author", "produces": ["report.md"],
                  "max_attempts": 1, "prompt": {"text": "Write a report.\n"}}]})
    script = Script().job("report", calls(Write("{paths[0]}", "# Report\n")),
                          say("I could not write the report."))

    run_id = bench.prepare(workflow, {"author": copy.deepcopy(UNPERMITTED[vendor])})
    outcome = bench.work(run_id, script)

    assert outcome.status == "failed", outcome.explain()
    report = outcome.job("report")
    assert report.status == "failed" and "report.md" in (report.reason or ""), report.reason
    job = outcome.repo / ".striatum" / "runs" / run_id / "report"
    assert not (job / "i0a0" / "report.md").exists()
    assert "I could not write the report." in (job / "i0a0.log").read_text()
    results = outcome.record.results("report")
    assert results and all(r.error for r in results), outcome.explain()
    assert refusals(results) == results
