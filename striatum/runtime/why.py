"""``why``: exactly what holds a run, and the command that moves it.

Every state of the run machine and of the job machine (``runtime.machine``) has
an answer here: a run that is prepared, blocked, failed or cancelled says so
with its command; a running run is held by its unsettled jobs, each for its own
reason (a checkpoint or an escalated review waiting for a human, a lease held
by a worker until a time of the database clock, a ready job no worker has
claimed yet, a pending job waiting on named needs). Times are the database's
(``now()``), never this machine's, as the lease arithmetic is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import collector
from ..durations import spoken
from . import pinned
from .budgets import stopped as budget_stopped
from .findings import run_repeats
from .records import JobRow, RunRow
from .runs import RunView, resume_command, resume_job, status

if TYPE_CHECKING:
    from ..compiler.compiled import CompiledWorkflow
    from .store import Store

SETTLED = frozenset({"succeeded", "skipped"})
# A lease whose heartbeat is older than this share of its length is stale: a third, so
# a worker that heartbeats each third of its lease (as striatum's own do) has missed two.
STALE_SHARE = 1 / 3


@dataclass(frozen=True)
class Hold:
    """One thing that holds the run: a job and why, or the run itself (job None)."""

    kind: str  # stable: see HOLD_KINDS
    job: str | None
    text: str  # one line for a person
    command: str | None = None  # what moves it, when a command does
    details: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "job": self.job, "text": self.text,
                "command": self.command, **(self.details or {})}


HOLD_KINDS = ("not_started", "checkpoint", "escalated", "lapsed", "blocked", "over_budget",
              "leased", "lease_stale", "lease_expired", "ready", "no_worker", "needs",
              "failed", "cancelled", "completed", "findings_repeated")
HUMAN_HOLDS = ("checkpoint", "escalated", "lapsed")  # nothing else moves until they answer


def budget_hold(run: RunRow, reason: str | None) -> Hold:
    """A run its budget stopped: nothing of it is claimed until a human answers."""
    assert run.blocked_on is not None
    key = run.blocked_on.removeprefix("budget:")
    said = reason or f"{key} reached"
    return Hold("over_budget", None, f"run {run.id} is over budget and waits for a human: "
                f"{said}; raise the limit to go on, or fail the run",
                f"striatum run resume {run.id} --raise-budget {key}=N",
                {"budget": key})


def explain(store: Store, run_id: str, view: RunView | None = None) -> dict[str, Any]:
    """The ``why`` document of a run: its state, what holds it, and the next command.
    ``view``: the run's status, when the caller read it already."""
    with collector.paused():
        return _explain(store, run_id, view)


def _explain(store: Store, run_id: str, view: RunView | None) -> dict[str, Any]:
    view = status(store, run_id) if view is None else view
    now: datetime = store.execute("now")[0][0]
    workflow = pinned.compiled_of(store, view.run.workflow_digest)
    serving = [(str(name), lanes) for name, lanes in
               store.execute("serving_workers", {"run": run_id})]
    reviews = [j.job_id for j in view.jobs if j.kind == "review"]
    holds = _holds(view, workflow, now, serving, run_repeats(store, run_id, reviews))
    moving = next((h.command for h in holds if h.command), None)
    return {"run": run_id, "workflow": view.run.workflow_name, "status": view.run.status,
            "summary": _summary(view, holds), "holds": [h.to_json() for h in holds],
            "next": moving, "at": now.isoformat()}


def _holds(view: RunView, workflow: CompiledWorkflow, now: datetime,
           serving: list[tuple[str, list[str] | None]], repeats: dict[str, list[str]]
           ) -> list[Hold]:
    run = view.run
    rid = run.id
    if run.status == "prepared":
        return [Hold("not_started", None, f"run {rid} is prepared and not started",
                     f"striatum run start {rid}")]
    if run.status == "completed":
        return [Hold("completed", None, f"run {rid} is done: every job succeeded or was "
                     "skipped; nothing holds it")]
    if run.status == "cancelled":
        said = f": {view.reason}" if view.reason else ""
        return [Hold("cancelled", None, f"run {rid} was cancelled{said}; a cancelled run "
                     "stays so: prepare a new run of the workflow to work it again")]
    if run.status == "failed":
        failed = [j.job_id for j in view.jobs if j.status == "failed"]
        said = f": {view.reason}" if view.reason else ""
        where = f" ({', '.join(failed)} failed)" if failed else ""
        return [Hold("failed", failed[0] if failed else None,
                     f"run {rid} failed{where}{said}; `run retry` runs the failed job again "
                     "with a fresh attempt", f"striatum run retry {rid}")]
    jobs = {j.job_id: j for j in view.jobs}
    out = [hold for job in view.jobs
           if (hold := job_hold(rid, workflow, jobs, job, now, serving, repeats)) is not None]
    # A loop that goes on revising though its last round changed nothing: said, not held.
    out += [repeat_hold(rid, job.job_id, repeats[job.job_id]) for job in view.jobs
            if job.job_id in repeats and job.status != "awaiting_decision"]
    if run.status == "blocked":
        out = [in_turn(hold, run.blocked_on) for hold in out]
    # The human's holds first, the one the run is blocked on before those after it:
    # nothing else moves until they answer.
    out.sort(key=lambda h: (h.kind not in HUMAN_HOLDS, "after" in (h.details or {})))
    if run.status == "blocked" and budget_stopped(run.blocked_on):
        out.insert(0, budget_hold(run, view.reason))
    elif run.status == "blocked" and not any(h.kind in HUMAN_HOLDS for h in out):
        out.insert(0, Hold("blocked", run.blocked_on,
                           f"run {rid} is blocked on {run.blocked_on}",
                           resume_command(rid, run.blocked_on)))
    return out


def in_turn(hold: Hold, blocked_on: str | None) -> Hold:
    """A job handed to a human while the run is blocked on another (accepts that lapsed
    together): its own command (``run resume --job``) answers it first, or a ``run
    resume`` that names no job answers the one the run is blocked on, then the run blocks
    on this one."""
    if hold.kind not in ("lapsed", "escalated") or blocked_on in (None, hold.job):
        return hold
    if budget_stopped(blocked_on):
        return replace(hold, text=f"{hold.text} (after the run's budget: raise the budget "
                       f"first, then the run blocks on {hold.job})",
                       details={**(hold.details or {}), "after": blocked_on})
    return replace(hold, text=f"{hold.text} (the run is blocked on {blocked_on}: this "
                   f"command answers {hold.job} first; answering {blocked_on} first blocks "
                   f"the run on {hold.job} next)",
                   details={**(hold.details or {}), "after": blocked_on})


def repeat_hold(rid: str, jid: str, findings: list[str]) -> Hold:
    """A review whose last round named the same findings as the round before, its loop
    still revising (``on_repeat: continue``)."""
    return Hold("findings_repeated", jid, f"review {jid} returned the same findings as the "
                f"round before ({', '.join(findings)}): its revision loop is not converging "
                "and goes on spending its budget; cancel the run to stop it, or set "
                "`on_repeat: escalate` on the revise to hand such a round to a human",
                None, {"findings": findings})


def job_hold(rid: str, workflow: CompiledWorkflow, jobs: dict[str, JobRow], job: JobRow,
             now: datetime, serving: list[tuple[str, list[str] | None]] | None = None,
             repeats: dict[str, list[str]] | None = None) -> Hold | None:
    """What ``job`` of run ``rid`` holds the run with, if anything (``jobs``: the run's
    jobs by id, for the needs a pending job waits on; ``serving``: the live workers that
    serve the run and their lanes, None when not asked; ``repeats``: the reviews whose
    latest round repeated the one before, with its finding ids)."""
    jid = job.job_id
    passes = f" (pass {job.iteration + 1})" if job.iteration else ""
    status = job.status
    # Most jobs of a big run are ready or settled: those two are answered first.
    if status == "ready":
        return _ready_hold(rid, job, passes, now, serving)
    if status in SETTLED:
        return None
    spec = workflow.jobs[jid]
    if status == "awaiting_decision":
        if job.kind == "checkpoint":
            choices = [name for name, _ in spec.choices]
            title = f" {spec.title!r}" if spec.title else ""
            return Hold("checkpoint", jid, f"checkpoint {jid}{title} waits for a human to "
                        f"choose {' or '.join(choices)}",
                        f"striatum checkpoint decide {rid} {jid} {'|'.join(choices)}",
                        {"choices": choices})
        if job.kind == "review" and job.verdict == "lapsed":
            budget = spec.revise.max if spec.revise else 0
            return Hold("lapsed", jid, f"review {jid}{passes}: {job.reason}; its revision "
                        f"budget ({budget}) is spent, or a job already started on the accept, "
                        "so it waits for a human: accept the work as it now is, fail the run, "
                        "or grant one more pass",
                        resume_job(rid, jid),
                        {"by": "lapse", "lapsed": job.reason})
        if job.kind != "review" or job.verdict != "needs_revision":
            return Hold("escalated", jid, f"{jid}{passes} was handed to a human by its agent: "
                        f"{job.reason or '(no reason given)'}; accept it as it stands, fail "
                        "the run, or grant it another attempt",
                        resume_job(rid, jid),
                        {"by": "agent"})
        repeated = (repeats or {}).get(jid)
        if repeated is not None:
            return Hold("escalated", jid, f"review {jid}{passes} returned the same findings "
                        f"as the round before ({', '.join(repeated)}) and waits for a human "
                        "instead of another revision: accept the work as it is, fail the "
                        "run, or grant one more revision",
                        resume_job(rid, jid),
                        {"by": "repeat", "findings": repeated})
        budget = spec.revise.max if spec.revise else 0
        return Hold("escalated", jid, f"review {jid}{passes} spent its revision budget "
                    f"({budget}) and waits for a human: accept the work as it is, fail the "
                    "run, or grant one more revision",
                    resume_job(rid, jid), {"by": "budget"})
    if status == "leased":
        return _lease_hold(rid, job, passes, now)
    if status == "pending":
        waiting = [(need, jobs[need].status) for need in spec.needs
                   if need in jobs and jobs[need].status not in SETTLED]
        if not waiting:
            return None  # it becomes ready with the transition that settles its last need
        named = ", ".join(f"{need} ({state})" for need, state in waiting)
        return Hold("needs", jid, f"{jid} waits for {named}", None,
                    {"needs": [need for need, _ in waiting]})
    return None  # succeeded, skipped, failed, cancelled: it holds nothing


def _ready_hold(rid: str, job: JobRow, passes: str, now: datetime,
                serving: list[tuple[str, list[str] | None]] | None) -> Hold:
    jid, lane = job.job_id, job.lane
    waited = int((now - job.updated_at).total_seconds())
    details = {"lane": lane, "ready_seconds": waited, "workers": None}
    ready = f"{jid}{passes} is ready on lane {lane} since {spoken(waited)} ago"
    if job.verdict == "lapsed":
        # A review run again because what it accepted changed: say so, whoever claims it.
        ready = f"{ready} to review again ({job.reason})"
        details["lapsed"] = job.reason
    if job.lane_kind == "operator":
        return Hold("ready", jid, f"{ready}, for an operator to claim (an agent driving the "
                    "run, not a worker)", f"striatum job claim --run {rid} --lane {lane}",
                    details)
    if serving is None:
        return Hold("ready", jid, f"{ready} and no worker has claimed it",
                    f"striatum run work {rid}", details)
    workers = [name for name, lanes in serving if lanes is None or lane in lanes]
    details["workers"] = workers
    if not workers:
        return Hold("no_worker", jid, f"{ready} and no running worker serves lane {lane}: "
                    "start one", f"striatum run work {rid}", details)
    return Hold("ready", jid, f"{ready}; {len(workers)} running worker(s) serve its lane "
                f"({', '.join(workers[:3])}) and will claim it when a slot frees",
                None, details)


def _lease_hold(rid: str, job: JobRow, passes: str, now: datetime) -> Hold:
    jid = job.job_id
    expires, beat = job.lease_expires_at, job.heartbeat_at
    details: dict[str, Any] = {
        "owner": job.lease_owner, "attempt": job.attempt,
        "expires_at": expires.isoformat() if expires else None,
        "expires_in_seconds": _seconds(expires, now) if expires else None,
        "heartbeat_age_seconds": _seconds(now, beat) if beat else None}
    who = f"{jid}{passes}, attempt {job.attempt}, is leased to {job.lease_owner}"
    if job.lease_expired or (expires is not None and expires <= now):
        return Hold("lease_expired", jid, f"{who}, whose lease expired {_age(now, expires)} "
                    "ago: the next claim takes it back and runs it again",
                    f"striatum run work {rid}", details)
    assert expires is not None
    left = f"until {expires:%H:%M:%S} ({_age(expires, now)} from now, database clock)"
    if beat is not None and now - beat > (expires - beat) * STALE_SHARE:
        return Hold("lease_stale", jid, f"{who} {left}, but its last heartbeat was "
                    f"{_age(now, beat)} ago: its worker may be gone (the lease runs out, "
                    "then another claim takes the job)", None, details)
    return Hold("leased", jid, f"{who} {left}; wait for it to end", None, details)


def _summary(view: RunView, holds: list[Hold]) -> str:
    run = view.run
    if run.status != "running" and run.status != "blocked":
        return holds[0].text
    human = [h for h in holds if h.kind in (*HUMAN_HOLDS, "blocked")]
    if human:
        return f"run {run.id} waits for a human: " + "; ".join(h.text for h in human)
    working = [h for h in holds if h.kind in ("leased", "lease_stale", "lease_expired")]
    ready = [h for h in holds if h.kind == "ready"]
    unserved = sorted({str(h.details["lane"]) for h in holds
                       if h.kind == "no_worker" and h.details})
    parts = []
    if unserved:
        parts.append(f"no running worker serves lane{'s' if len(unserved) > 1 else ''} "
                     f"{', '.join(unserved)}")
    if working:
        parts.append(f"{len(working)} job(s) in a worker's hands "
                     f"({', '.join(str(h.job) for h in working)})")
    if ready:
        parts.append(f"{len(ready)} ready and unclaimed ({', '.join(str(h.job) for h in ready)})")
    repeating = [str(h.job) for h in holds if h.kind == "findings_repeated"]
    if repeating:
        parts.append(f"review {', '.join(repeating)} returned the same findings as the "
                     "round before")
    if not parts:
        return f"run {run.id} is running with nothing in flight: its next transition is due"
    return f"run {run.id} is running: " + "; ".join(parts)


def _seconds(later: datetime | None, earlier: datetime | None) -> int:
    if later is None or earlier is None:
        return 0
    return int((later - earlier).total_seconds())


def _age(later: datetime | None, earlier: datetime | None) -> str:
    return spoken(_seconds(later, earlier))
