"""The line `striatum adopt` draws between the agent's verbs and the human's, seen from the
real CLIs: in an adopted repository, each CLI started headless as the operator, with no
flag of its own about the striatum MCP server's tools, may call the agent's tools (a
run's status, a claim) and not the human's (a checkpoint's answer); the record shows the
refused call changed nothing. For Claude Code, also the case the deny is for: a user who
allows the whole server (``--allowedTools=mcp__striatum``) still does not hand the agent
the human's verbs, and without adopt's deny the same session does answer the checkpoint
(so the refusal is the deny's doing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from striatum.agents.adopt import AGENT_TOOLS, HUMAN_TOOLS
from striatum.runtime import runs

from .fakes import ToolResult
from .harness import Bench, Ran, adopt, mcp_document, mcp_failed, write_workflow
from .lanes import OPERATOR, PROFILE, VENDORS
from .script import Mcp, Script, calls, say, strings
from .test_code_change import git_repo

pytestmark = pytest.mark.timeout(300)

ACTOR = "conformance-operator"
# Each CLI headless as the operator, told nothing about the striatum server's tools:
# Claude Code with no --allowedTools at all (the lanes' OPERATOR allows mcp__striatum);
# codex and gemini as OPERATOR runs them (nothing there names a striatum tool).
UNTOLD: dict[str, tuple[list[str], dict[str, str]]] = {
    "claude": (["claude", "-p", "--permission-mode", "acceptEdits"], OPERATOR["claude"][1]),
    "codex": OPERATOR["codex"],
    "gemini": OPERATOR["gemini"],
}


def gated_run(bench: Bench, repo: Path, profile: str) -> str:
    """A git repository adopted for ``profile``, and a started run of it with a task an
    operator may claim and a checkpoint that waits for a human."""
    git_repo(repo)
    adopt(bench.dsn, repo, profile)
    workflow = write_workflow(repo / "flow", {
        "name": "gated",
        "lanes": {"author": {"kind": "operator"}, "principal": {"kind": "human"}},
        "jobs": [{"id": "report", "lane": "author", "produces": ["report.md"],
                  "prompt": {"text": "Write a two-line report.\n"}},
                 {"id": "gate", "lane": "principal", "kind": "checkpoint",
                  "title": "Ship it?", "choices": {"ship": ["ship"], "stop": []}},
                 {"id": "ship", "lane": "author", "needs": ["gate", "report"],
                  "consumes": ["report.md"],
                  "prompt": {"text": "Ship the report.\n"}}]})
    run_id = bench.prepare(workflow, {})
    runs.start(bench.store, run_id)
    return run_id


def trusted(repo: Path) -> dict[str, str]:
    """The home of a user who trusted ``repo`` in Claude Code (accepted its trust dialog
    once): Claude Code ignores a project's allow rules in a folder nobody trusted."""
    return {".claude.json": json.dumps(
        {"projects": {str(repo): {"hasTrustDialogAccepted": True}}})}


def operate(bench: Bench, argv: list[str], env: dict[str, str], session: str,
            script: Script, home: dict[str, str] | None = None) -> Ran:
    prompt = (f"Operator session {session}.\nWork the striatum run with the striatum MCP "
              "server's tools.\n")
    return bench.sandboxed(argv, script, 240, {**env, "STRIATUM_ACTOR": ACTOR}, prompt,
                           home_files=home)


def claude(bench: Bench, argv: list[str], session: str, *steps: Mcp,
           home: dict[str, str] | None = None) -> tuple[list[ToolResult], str]:
    """Claude Code run with ``argv``, making each call in turn: what it answered, and
    what to read when an assertion fails."""
    ran = operate(bench, argv, OPERATOR["claude"][1], session, Script().job(
        session, *(calls(step) for step in steps), say("Done.")), home)
    explain = explained(ran, session)
    assert ran.exit_code == 0 and ran.record.errors() == [] and ran.record.names == [], explain
    return ran.record.results(session), explain + ran.stderr


def explained(ran: Ran, session: str) -> str:
    said = "\n".join(f"  {r.tool} -> {r.output[:400]!r}" + (" (error)" if r.error else "")
                     for r in ran.record.results(session))
    return (f"exit {ran.exit_code}; fake errors {ran.record.errors()}\n{said}\n"
            f"{ran.output[-3000:]}")


def gate(bench: Bench, run_id: str) -> tuple[str, str | None]:
    job = next(j for j in bench.status(run_id).jobs if j.job_id == "gate")
    return job.status, job.chosen


def decide(run_id: str) -> Mcp:
    return Mcp("checkpoint_decide", {"run": run_id, "job": "gate", "choice": "ship"})


def offered(vendor: str, body: dict[str, object]) -> list[str]:
    """The striatum tools the request names to the model (codex names the namespace
    alone)."""
    text = "\n".join(strings(body))
    if vendor == "claude":  # deferred: each named on a line of the system message
        return sorted(t for t in [*AGENT_TOOLS, *HUMAN_TOOLS]
                      if f"\nmcp__striatum__{t}\n" in text)
    if vendor == "gemini":
        declared = {d["name"] for t in body["tools"]  # type: ignore[attr-defined]
                    for d in t.get("functionDeclarations", [])}
        return sorted(t for t in [*AGENT_TOOLS, *HUMAN_TOOLS]
                      if f"mcp_striatum_{t}" in declared)
    return ["mcp__striatum"] if "Deferred tool namespaces:\n- mcp__striatum: " in text else []


@pytest.mark.parametrize("vendor", VENDORS)
def test_after_adopt_the_agent_may_claim_but_not_answer_a_checkpoint(
        bench: Bench, repo: Path, vendor: str) -> None:
    run_id = gated_run(bench, repo, PROFILE[vendor])
    assert gate(bench, run_id) == ("awaiting_decision", None)
    before = len(bench.events(run_id))
    session = f"boundary-{vendor}"

    argv, env = UNTOLD[vendor]
    ran = operate(bench, argv, env, session, Script().job(
        session, calls(Mcp("run_status", {"run": run_id})),
        calls(Mcp("job_claim", {"run": run_id, "lane": "author"})),
        calls(decide(run_id)),
        calls(Mcp("run_waiting", {"run": run_id})),
        say("The checkpoint is the human's.")), trusted(repo) if vendor == "claude" else None)

    explain = explained(ran, session)
    assert ran.exit_code == 0 and ran.record.errors() == [] and ran.record.names == [], explain
    status, claim, refused, waiting = ran.record.results(session)
    # The agent's tools work with no flag naming them: adopt's config allows them.
    assert not mcp_failed(vendor, status) and not mcp_failed(vendor, claim), explain
    assert mcp_document(status.output)["run"] == run_id
    held = mcp_document(claim.output)
    assert (held["claimed"], held["job"]) == (True, "report"), explain
    assert not mcp_failed(vendor, waiting), explain
    assert [w["job"] for w in mcp_document(waiting.output)["waiting"]] == ["gate"], explain
    # The human's is refused by the CLI itself: the call never reaches striatum.
    last = ran.record.conversation(session)[-1]["body"]
    if vendor == "claude":  # denied by adopt's permissions: a denied tool is not offered
        # (the first request: a later one names the call the model made)
        first = ran.record.conversation(session)[0]["body"]
        assert offered(vendor, first) == sorted(AGENT_TOOLS)
        assert refused.error and "No such tool available: mcp__striatum__checkpoint_decide" \
            in refused.output, explain
    elif vendor == "gemini":  # excluded: never declared to the model
        assert offered(vendor, last) == sorted(AGENT_TOOLS)
        assert refused.error and "not found" in refused.output, explain
    else:  # disabled: not in the namespace, so the program's call fails
        assert offered(vendor, last) == ["mcp__striatum"]
        assert refused.output.startswith("Script failed"), explain
        assert "mcp__striatum__checkpoint_decide" in refused.output, explain

    # The record: the claim (and who made it) is there, the checkpoint untouched, nothing
    # of it audited.
    assert gate(bench, run_id) == ("awaiting_decision", None)
    after = bench.events(run_id)[before:]
    assert [(e["type"], e["job"]) for e in after] == [
        ("job.claim", "report"), ("attempt.start", "report")], after
    assert bench.audited(f"{ACTOR} mcp") == [("job claim", "ok")]  # its start chained in it


def test_a_users_broad_allow_does_not_hand_claude_the_humans_verbs(
        bench: Bench, repo: Path) -> None:
    run_id = gated_run(bench, repo, "claude_code")
    broad = ["claude", "-p", "--permission-mode", "acceptEdits",
             "--allowedTools=mcp__striatum"]

    (refused,), explain = claude(bench, broad, "broad-denied", decide(run_id))
    assert refused.error and "No such tool available" in refused.output, explain
    assert gate(bench, run_id) == ("awaiting_decision", None)
    assert bench.audited(f"{ACTOR} mcp") == []

    # The control: the same session, the deny taken out of the settings, answers the
    # checkpoint; so what refused it above was adopt's deny.
    settings = repo / ".claude" / "settings.json"
    document = json.loads(settings.read_text(encoding="utf-8"))
    del document["permissions"]["deny"]
    settings.write_text(json.dumps(document), encoding="utf-8")
    (answered,), explain = claude(bench, broad, "broad-allowed", decide(run_id))
    assert not answered.error, explain
    assert gate(bench, run_id) == ("succeeded", "ship")
    assert bench.audited(f"{ACTOR} mcp") == [("checkpoint decide", "ok")]


def test_claude_ignores_the_allow_rules_of_a_folder_nobody_trusted(
        bench: Bench, repo: Path) -> None:
    run_id = gated_run(bench, repo, "claude_code")
    argv = UNTOLD["claude"][0]

    (refused,), explain = claude(bench, argv, "untrusted", Mcp("run_status", {"run": run_id}))
    assert refused.error and "haven't granted it yet" in refused.output, explain
    allows = len(json.loads((repo / ".claude/settings.json").read_text())["permissions"]["allow"])
    assert f"Ignoring {allows} permissions.allow entries from .claude/settings.json: this " \
           "workspace has not been trusted" in explain, explain

    # Where nobody can accept the trust dialog (CI), the same file named by --settings is
    # the caller's own choice, which Claude Code applies untrusted too; its deny as well.
    (status, refused), explain = claude(
        bench, [*argv, "--settings", ".claude/settings.json"], "flagged",
        Mcp("run_status", {"run": run_id}), decide(run_id))
    assert not status.error and mcp_document(status.output)["run"] == run_id, explain
    assert refused.error and "No such tool available" in refused.output, explain
    assert gate(bench, run_id) == ("awaiting_decision", None)
