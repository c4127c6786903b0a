"""A run, a job and a one-job workflow for the prompt tests; importing this module
imports no template engine (a test checks what rendering a plain prompt imports)."""

from __future__ import annotations

from datetime import UTC, datetime

from striatum.compiler.compiled import CompiledWorkflow, PinnedPrompt
from striatum.compiler.ir import Job, Lane, Prompt, Workflow
from striatum.runtime.records import JobRow, RunRow

EPOCH = datetime(2026, 11, 24, tzinfo=UTC)
RUN = RunRow(id="20261124-000000-abcdef", repo_id=1, workflow_digest="d" * 64,
             workflow_name="code-change", status="running", vars={"topic": "caching"},
             artifact_root=".striatum/artifacts", base_commit=None, worst_case=3,
             blocked_on=None, created_at=EPOCH, updated_at=EPOCH, unsettled=1,
             repo_path="/repo")
JOB = JobRow(run_id=RUN.id, job_id="draft", position=0, kind="task", lane="coder",
             lane_kind="command", status="leased", iteration=1, attempt=0, max_attempts=3,
             executions=2, revisions_used=0, fence=2, lease_token=None, lease_owner=None,
             lease_expires_at=None, heartbeat_at=None, chosen=None, verdict=None,
             reason=None, updated_at=EPOCH, lease_expired=False)


def pinned(text: str | None = None, title: str | None = None) -> CompiledWorkflow:
    """The workflow of JOB: an inline prompt ``text``, or none and a ``title``."""
    prompt = None if text is None else Prompt("text", text)
    job = Job("draft", "coder", title=title, prompt=prompt)
    workflow = Workflow("code-change", (Lane("coder", command=("true",)),), (job,))
    prompts = {} if text is None else {"draft": PinnedPrompt(text)}
    return CompiledWorkflow(workflow, prompts, ("draft",), ("draft",), (("draft",),), 1, True)
