"""Advance a run: the rules of DESIGN §5, applied one transaction at a time.

A ``Transition`` is one short transaction over one run: it locks the run
row, then all its job rows (always in that order, so two transitions never
deadlock), checks every change against the state machines, writes the
projections, and appends one event per change *last* — the chain head's lock
is the final lock taken and is held only until commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from ..compiler.graph import WorkflowGraph
from ..compiler.simulate import resolve
from ..errors import Conflict, NotFound
from .audit import Event, append_events
from .machine import JOB_TERMINAL, check_job, check_run
from .records import JobRow, RunRow
from .store import fetch, fetch_one

if TYPE_CHECKING:
    import psycopg

LIVE_JOB_STATES = ("pending", "ready", "leased", "awaiting_decision")
SETTLED = ("succeeded", "skipped")


def save_job(cur: psycopg.Cursor[Any], run_id: str, row: JobRow,
             lease_seconds: int | None = None) -> None:
    """Write a job's projection; ``lease_seconds`` starts a new lease's clock."""
    fetch(cur, "update_job", {
        "run": run_id, "job": row.job_id, "status": row.status, "iteration": row.iteration,
        "attempt": row.attempt, "executions": row.executions,
        "revisions_used": row.revisions_used, "fence": row.fence,
        "lease_token": row.lease_token, "lease_owner": row.lease_owner,
        "lease_seconds": lease_seconds, "chosen": row.chosen, "verdict": row.verdict,
        "reason": row.reason})


@lru_cache(maxsize=64)
def compiled_document(digest: str, compiled_text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(compiled_text)
    return loaded


@lru_cache(maxsize=64)
def workflow_graph(digest: str, compiled_text: str) -> WorkflowGraph:
    """The pinned workflow's graph, rebuilt without networkx (cached per digest)."""
    from ..compiler.compile import workflow_from_compiled
    from ..compiler.graph import build_graph

    return build_graph(workflow_from_compiled(compiled_document(digest, compiled_text)),
                       with_networkx=False)


def _compiled_text(cur: psycopg.Cursor[Any], digest: str) -> str:
    row = fetch_one(cur, "load_workflow", {"digest": digest})
    if row is None:  # pragma: no cover - a foreign key forbids it
        raise NotFound(f"workflow {digest} is missing")
    return str(row[0])


def graph_for(cur: psycopg.Cursor[Any], digest: str) -> WorkflowGraph:
    return workflow_graph(digest, _compiled_text(cur, digest))


def compiled_for(cur: psycopg.Cursor[Any], digest: str) -> dict[str, Any]:
    return compiled_document(digest, _compiled_text(cur, digest))


@dataclass
class Transition:
    cur: psycopg.Cursor[Any]
    run: RunRow
    jobs: dict[str, JobRow]
    wg: WorkflowGraph
    now: datetime
    events: list[Event] = field(default_factory=list)
    dirty: dict[str, None] = field(default_factory=dict)  # ordered set of changed jobs
    run_dirty: bool = False
    granted: dict[str, int] = field(default_factory=dict)  # job -> lease seconds
    ended_leases: list[tuple[str, int, str]] = field(default_factory=list)
    head: tuple[int, str] | None = None

    @classmethod
    def open(cls, cur: psycopg.Cursor[Any], run_id: str) -> Transition:
        row = fetch_one(cur, "lock_run", {"run": run_id})
        if row is None:
            raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
        run = RunRow.from_row(row)
        jobs = {r[0]: JobRow.from_row(r) for r in fetch(cur, "lock_jobs", {"run": run_id})}
        now = fetch_one(cur, "now")[0]
        return cls(cur, run, jobs, graph_for(cur, run.workflow_digest), now)

    def job(self, job_id: str, trigger: str, data: dict[str, Any] | None = None,
            **changes: Any) -> JobRow:
        row = self.jobs[job_id]
        before = row.status
        row.status = check_job(trigger, before, f"{self.run.id}/{job_id}")
        for key, value in changes.items():
            setattr(row, key, value)
        if before == "leased" and row.status != "leased":
            self.ended_leases.append((job_id, row.fence, trigger))
            row.lease_token = None
            row.lease_owner = None
        self.dirty[job_id] = None
        self.events.append(Event(f"job.{trigger}", self.run.id, job_id, row.state(), data or {}))
        return row

    def run_to(self, trigger: str, data: dict[str, Any] | None = None, **changes: Any) -> None:
        self.run.status = check_run(trigger, self.run.status, self.run.id)
        for key, value in changes.items():
            setattr(self.run, key, value)
        self.run_dirty = True
        self.events.append(Event(f"run.{trigger}", self.run.id, None, self.run.state(),
                                 data or {}))

    def flush(self) -> None:
        for job_id in self.dirty:
            save_job(self.cur, self.run.id, self.jobs[job_id], self.granted.get(job_id))
        for job_id, fence, outcome in self.ended_leases:
            fetch(self.cur, "end_lease", {"run": self.run.id, "job": job_id, "fence": fence,
                                          "outcome": outcome})
        if self.run_dirty:
            fetch(self.cur, "update_run", {"run": self.run.id, "status": self.run.status,
                                           "blocked_on": self.run.blocked_on})
        self.head = append_events(self.cur, self.run.repo_id, self.events, self.now)
        if any(event.type == "job.ready" for event in self.events):
            fetch(self.cur, "notify_ready", {"run": self.run.id})

    @property
    def ended(self) -> bool:
        return self.run.status in ("completed", "failed", "cancelled")


def advance(tx: Transition) -> None:
    """Settle every pending job whose needs are settled, then end the run if all are."""
    if tx.run.status != "running":
        return
    statuses = {job_id: row.status for job_id, row in tx.jobs.items()}
    chosen = {job_id: row.chosen for job_id, row in tx.jobs.items() if row.chosen}
    for job_id in tx.wg.order:
        row = tx.jobs[job_id]
        if row.status != "pending":
            continue
        outcome = resolve(tx.wg, job_id, statuses, chosen)
        if outcome == "skipped":
            tx.job(job_id, "skip")
        elif outcome == "ready":
            # A pass starts here; retries of the same pass do not count again.
            tx.job(job_id, "ready", executions=row.executions + 1, attempt=0)
            if row.kind == "checkpoint":
                tx.job(job_id, "await_decision")
        statuses[job_id] = row.status
    if all(status in SETTLED for status in statuses.values()):
        tx.run_to("complete")


def fail_run(tx: Transition, reason: str) -> None:
    for job_id, row in tx.jobs.items():
        if row.status in LIVE_JOB_STATES:
            tx.job(job_id, "cancel", {"reason": "the run failed"})
    tx.run_to("fail", {"reason": reason}, blocked_on=None)


def cancel_run(tx: Transition, reason: str) -> None:
    for job_id, row in tx.jobs.items():
        if row.status in LIVE_JOB_STATES:
            tx.job(job_id, "cancel", {"reason": reason})
    tx.run_to("cancel", {"reason": reason}, blocked_on=None)


def revise(tx: Transition, reviewer: str, reason: str, *, granted: bool) -> None:
    """Send the reviewer's region back to pending, one iteration on."""
    region = tx.wg.ids_of(tx.wg.region_bits(reviewer))
    row = tx.jobs[reviewer]
    if not granted:
        row.revisions_used += 1
    for member in region:
        job = tx.jobs[member]
        if job.status == "pending":
            continue  # it had not started this pass: nothing to undo
        tx.job(member, "reset", {"by": reviewer, "reason": reason, "granted": granted},
               iteration=job.iteration + 1, attempt=0,
               verdict="needs_revision" if member == reviewer else None)
    advance(tx)


def apply_verdict(tx: Transition, job_id: str, verdict: str, reason: str) -> None:
    row = tx.jobs[job_id]
    spec = tx.wg.jobs[job_id]
    data = {"verdict": verdict, "reason": reason}
    if verdict == "accept":
        tx.job(job_id, "complete", data, verdict="accept", reason=reason)
        advance(tx)
    elif verdict == "reject":
        tx.job(job_id, "fail", data, verdict="reject", reason=reason)
        fail_run(tx, f"{job_id} rejected the work: {reason}")
    elif spec.revise is None:
        raise Conflict(f"review {job_id!r} has no revise target, so it cannot ask for a "
                       "revision", hint="record accept or reject")
    elif row.revisions_used < spec.revise.max:
        revise(tx, job_id, reason, granted=False)
    elif spec.revise.on_exhausted == "accept":
        tx.job(job_id, "complete", {**data, "exhausted": True}, verdict="accept", reason=reason)
        advance(tx)
    elif spec.revise.on_exhausted == "fail":
        tx.job(job_id, "fail", {**data, "exhausted": True}, verdict="needs_revision",
               reason=reason)
        fail_run(tx, f"{job_id} spent its revision budget ({spec.revise.max})")
    else:
        tx.job(job_id, "escalate", {**data, "exhausted": True}, verdict="needs_revision",
               reason=reason)
        tx.run_to("block", {"job": job_id, "reason": reason}, blocked_on=job_id)


def attempt_failed(tx: Transition, job_id: str, trigger: str, reason: str) -> None:
    """An attempt crashed, timed out or gave up: retry while attempts remain."""
    row = tx.jobs[job_id]
    if row.attempt + 1 < row.max_attempts:
        tx.job(job_id, trigger, {"reason": reason}, attempt=row.attempt + 1, reason=reason)
    else:
        tx.job(job_id, "fail", {"reason": reason, "attempts": row.attempt + 1}, reason=reason)
        fail_run(tx, f"{job_id} failed after {row.attempt + 1} attempt(s): {reason}")


def is_final(row: JobRow) -> bool:
    return row.status in JOB_TERMINAL
