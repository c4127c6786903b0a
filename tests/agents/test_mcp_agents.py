"""An agent drives a run over MCP: the real CLI, started in a repository that ``striatum adopt``
wired up, is the AI operator. Its project config registers ``striatum mcp serve --stdio``
as adopt writes it; the scripted model calls the server's tools by the names the CLI
offers them under, and the run goes from prepare to completed through those calls alone:
the agent prepares and starts it, claims the task, writes and publishes its artifact,
completes it, claims the review, records its verdict, and reads the run's status. One
call is refused on the way (a token that is no lease), and the model is told so as a
tool error carrying striatum's stable code."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import Bench, Ran, adopt, mcp_document, mcp_failed, verdict_said, write_workflow
from .lanes import OPERATOR, PROFILE, VENDORS
from .script import Mcp, Script, Write, calls, say
from .test_code_change import git_repo

pytestmark = pytest.mark.timeout(300)

ACTOR = "conformance-operator"
REPORT = "# Report\nWritten by the operator, published over MCP.\n"
REASON = "the report says what it must"
BAD_LEASE = "1-0000000000000000"
# The name each CLI offers the server's tool ``job_claim`` under (codex calls it from
# its code-mode ``exec`` tool, as ``tools.mcp__striatum__job_claim(...)``).
TOOL_NAME = {"claude": "mcp__striatum__{}", "codex": "exec", "gemini": "mcp_striatum_{}"}


def operator_script(session: str, workflow: Path) -> Script:
    held = {"run": "{run_id}", "job": "{job}", "lease": "{lease}"}
    return Script().job(
        session,
        calls(Mcp("run_prepare", {"workflow": str(workflow), "start": True})),
        calls(Mcp("job_claim", {"run": "{run_id}", "lane": "author"})),
        calls(Write("{artifact_dir}/report.md", REPORT)),
        calls(Mcp("job_publish", {**held, "artifact": "{artifact_dir}/report.md"})),
        calls(Mcp("job_complete", {"run": "{run_id}", "job": "report", "lease": BAD_LEASE})),
        calls(Mcp("job_complete", held)),
        calls(Mcp("job_claim", {"run": "{run_id}"})),
        calls(Mcp("job_verdict", {**held, "outcome": "accept", "reason": REASON})),
        calls(Mcp("run_status", {"run": "{run_id}"})),
        say("The run is complete."))


def operate(bench: Bench, vendor: str, session: str, script: Script) -> Ran:
    argv, env = OPERATOR[vendor]
    prompt = (f"Operator session {session}.\nWork the striatum run of flow/workflow.json "
              "to its end with the striatum MCP server's tools.\n")
    return bench.sandboxed(argv, script, 240, {**env, "STRIATUM_ACTOR": ACTOR}, prompt)


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_agent_drives_a_run_over_mcp(bench: Bench, repo: Path, vendor: str) -> None:
    git_repo(repo)
    adopt(bench.dsn, repo, PROFILE[vendor])
    workflow = write_workflow(repo / "flow", {
        "name": "operated",
        "lanes": {"author": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
        "jobs": [{"id": "report", "lane": "author", "produces": ["report.md"],
                  "prompt": {"text": "Write a two-line report.\n"}},
                 {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["report"],
                  "prompt": {"text": "Review the report.\n"}}]})
    session = f"mcp-{vendor}"

    ran = operate(bench, vendor, session, operator_script(session, workflow))

    record = ran.record
    said = "\n".join(f"  {r.tool} -> {r.output[:400]!r}" + (" (error)" if r.error else "")
                     for r in record.results(session))
    explain = (f"exit {ran.exit_code}; fake errors {record.errors()}; waited "
               f"{record.waits(session)} turns for the server\n{said}\n{ran.output[-3000:]}")
    assert ran.exit_code == 0, explain
    assert record.errors() == [] and record.names == [], explain
    assert record.vendors(session) == {vendor}

    # What the model was told, call by call: each tool's document, the refusal as an error.
    results = record.results(session)
    assert len(results) == 9, explain
    name = TOOL_NAME[vendor]
    assert [r.tool for r in results] == [
        name.format(t) if t != "write" else {"claude": "Write", "codex": "exec",
                                             "gemini": "write_file"}[vendor]
        for t in ("run_prepare", "job_claim", "write", "job_publish", "job_complete",
                  "job_complete", "job_claim", "job_verdict", "run_status")], explain
    prepared, claim, _, published, refused, completed, review, verdict, status = results
    # (not ``refusals``: a run's document names "blocked_on")
    assert [r for r in results if mcp_failed(vendor, r)] == [refused], explain
    run_id = mcp_document(prepared.output)["run_id"]
    assert mcp_document(prepared.output)["status"] == "running"
    held = mcp_document(claim.output)
    assert (held["claimed"], held["run"], held["job"]) == (True, run_id, "report")
    assert held["lease"] and held["produces"] == ["report.md"]
    assert (mcp_document(published.output)["path"], mcp_document(published.output)["job"]) == (
        "report.md", "report")
    # The refusal: striatum's stable code, its message and its hint, as the model got them.
    assert "striatum error lease_lost: " in refused.output, refused
    assert "is not a lease token" in refused.output and "pass the token" in refused.output
    assert mcp_document(completed.output)["status"] == "succeeded"
    assert mcp_document(review.output)["job"] == "check"
    assert (mcp_document(verdict.output)["status"], mcp_document(verdict.output)["run_status"]) == (
        "succeeded", "completed")
    assert mcp_document(status.output)["status"] == "completed"

    # What the record holds: the run the agent prepared, worked to its end by MCP calls
    # alone, each change audited as the MCP caller.
    view = bench.status(run_id)
    assert view.run.status == "completed"
    assert view.run.repo_path == str(repo)
    assert [(j.job_id, j.status, j.verdict, j.reason) for j in view.jobs] == [
        ("report", "succeeded", None, None), ("check", "succeeded", "accept", REASON)]
    assert bench.published(run_id, "report") == {"report.md": REPORT}
    events = bench.events(run_id)
    assert [(e["type"], e["job"]) for e in events if e["type"] in (
        "artifact.publish", "job.complete")] == [
        ("artifact.publish", "report"), ("job.complete", "report"), ("job.complete", "check")]
    assert verdict_said([e["payload"]["data"] for e in events
                         if e["type"] == "job.complete"][-1]) == {
        "verdict": "accept", "reason": REASON}
    audited = bench.audited(f"{ACTOR} mcp")
    assert [verb for verb, said in audited if said != "ok"] == ["job complete"], audited
    assert ("job complete", "lease_lost") in audited
    assert [verb for verb, said in audited if said == "ok"] == [
        "run prepare", "run start", "job claim", "job publish", "job complete", "job claim",
        "job verdict"], audited
    # Each claim says an operator made it (its statement chains the attempt's start, with
    # the claim's audit row alone); the session stated no model: unknown.
    assert [(e["job"], e["payload"]["data"]["by"], e["payload"]["data"]["model"])
            for e in events if e["type"] == "attempt.start"] == [
        ("report", "operator", None), ("check", "operator", None)]
