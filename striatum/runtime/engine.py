"""Advance a run: the run semantics (``compiler/simulate.py``), applied one transaction at a
time.

A ``Transition`` is one short transaction over one run: it locks the run
row, then the job rows it touches (the run's lock comes first, so two
transitions never deadlock), checks every change against the state machines,
writes the projections, and appends one event per change *last* — the chain
head's lock is the final lock taken and is held only until commit.

Transitions run pipelined (``Store.transaction(..., pipelined=True)``): reads
wait for their answer, writes are queued and reach the server with the
COMMIT, so a transition is two round trips whatever the size of the run (a
claim is one statement of its own, ``striatum.claim_job``, and so is a task's
common completion, ``striatum.complete_job``: ``completion.py``).
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound
from . import batches, pinned
from .audit import Event, append_events
from .findings import repeats_last_round, verdict_data
from .machine import RUN_TERMINAL, check_job, check_run
from .records import JobRow, RunRow
from .store import Read, fetch, fetch_records, fetch_together, send

if TYPE_CHECKING:
    import psycopg

    from ..compiler.compiled import CompiledWorkflow
    from ..compiler.graph import WorkflowGraph

LIVE_JOB_STATES = ("pending", "ready", "leased", "awaiting_decision")
SETTLED = ("succeeded", "skipped")


def save_job(cur: psycopg.Cursor[Any], row: JobRow, lease_seconds: int | None = None) -> None:
    """Write a job's projection; ``lease_seconds`` starts a new lease's clock."""
    send(cur, "update_job", {
        "run": row.run_id, "job": row.job_id, "status": row.status,
        "iteration": row.iteration, "attempt": row.attempt, "executions": row.executions,
        "revisions_used": row.revisions_used, "fence": row.fence,
        "lease_token": row.lease_token, "lease_owner": row.lease_owner,
        "lease_seconds": lease_seconds, "chosen": row.chosen, "verdict": row.verdict,
        "reason": row.reason})


_SAVED = ("status", "iteration", "attempt", "executions", "revisions_used", "fence",
          "lease_token", "lease_owner", "chosen", "verdict", "reason")


def save_jobs(cur: psycopg.Cursor[Any], run_id: str, rows: list[JobRow]) -> None:
    """``save_job`` for many jobs of one run (no lease starting), a batch per statement."""
    for batch in batches.slices(rows):
        send(cur, "update_jobs", {"run": run_id, "job": [row.job_id for row in batch],
                                  **{name: [getattr(row, name) for row in batch]
                                     for name in _SAVED}})


@dataclass
class Transition:
    """One transaction over one run. Jobs are loaded (and locked) as the change
    needs them, so a transition that touches one job of a large run costs about
    the same as one on a small run; ``load_all`` is for the changes that sweep
    the whole run (start, revise, cancel, a checkpoint's choice)."""

    cur: psycopg.Cursor[Any]
    run: RunRow
    pinned: CompiledWorkflow
    now: datetime
    unsettled: int  # jobs of the run neither succeeded nor skipped, as of now
    jobs: dict[str, JobRow] = field(default_factory=dict)  # loaded so far
    all_loaded: bool = False
    events: list[Event] = field(default_factory=list)
    dirty: dict[str, None] = field(default_factory=dict)  # ordered set of changed jobs
    run_dirty: bool = False
    ended: bool = False  # this transaction ended the run
    ended_leases: list[tuple[str, int, str]] = field(default_factory=list)
    head: tuple[int, str] | None = None
    # Reads sent with the locks because a dependent's readiness will ask them.
    prefetched: dict[tuple[str, tuple[str, ...]], list[Any]] = field(default_factory=dict)
    budget: Any = None  # budgets.Spent: read once, by the first check of a run with a budget

    @property
    def wg(self) -> WorkflowGraph:
        return self.pinned.graph

    @classmethod
    def open(cls, cur: psycopg.Cursor[Any], run_id: str, job_ids: Iterable[str] = (), *,
             dependents: bool = False) -> Transition:
        """Lock the run, then the named jobs (and, with ``dependents``, the jobs that need
        them, when this process knows the run's graph): one round trip. The run and the
        jobs are read by statements that start after the run's lock is granted, so they
        see every transition that committed while this one waited for it."""
        named = list(job_ids)
        wanted = list(named)
        known = pinned.known(run_id)
        graph = known.graph if known is not None else None
        if dependents and graph is not None:
            wanted += [d for j in named if j in graph.succ for d in graph.succ[j]]
        reads: list[Read] = [("lock_run", {"run": run_id}),
                             ("run_record", {"run": run_id}, RunRow)]
        if wanted:
            reads.append(("lock_some_jobs", {"run": run_id, "jobs": wanted}, JobRow))
        if dependents and graph is not None:
            # A join's readiness needs one more read; sent now, it costs no round trip.
            loaded = set(wanted)
            for job_id in dict.fromkeys(wanted[len(named):]):
                if len(graph.jobs[job_id].needs) > 1:
                    name, params = _settled_read(graph, run_id, job_id, loaded)
                    if params["jobs"]:
                        reads.append((name, params))
        clock, found, *rows = fetch_together(cur, *reads)
        if not found:
            raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
        run: RunRow = found[0]
        pinned.remember_run(run_id, run.workflow_digest)
        tx = cls(cur, run, pinned.compiled(cur, run.workflow_digest), clock[0][0],
                 run.unsettled)
        tx._add(rows[0] if wanted else [])
        for read, answer in zip(reads[3:], rows[1:], strict=True):
            tx.prefetched[(read[0], tuple(read[1]["jobs"]))] = answer
        return tx

    def _add(self, rows: Iterable[JobRow]) -> None:
        for row in rows:
            # A row changed earlier in this transaction is newer than the table's.
            self.jobs.setdefault(row.job_id, row)

    def load(self, job_ids: Iterable[str]) -> None:
        missing = [j for j in job_ids if j not in self.jobs]
        if missing and not self.all_loaded:
            self._add(fetch_records(self.cur, JobRow, "lock_some_jobs",
                                    {"run": self.run.id, "jobs": missing}))

    def load_all(self) -> dict[str, JobRow]:
        if not self.all_loaded:
            self._add(fetch_records(self.cur, JobRow, "lock_jobs", {"run": self.run.id}))
            self.all_loaded = True
            # File order, as the run's jobs are listed everywhere else.
            self.jobs = {j: self.jobs[j] for j in self.wg.workflow.job_ids if j in self.jobs}
        return self.jobs

    def row(self, job_id: str) -> JobRow | None:
        self.load([job_id])
        return self.jobs.get(job_id)

    def job(self, job_id: str, trigger: str, data: dict[str, Any] | None = None,
            **changes: Any) -> JobRow:
        row = self.jobs[job_id]
        before = row.status
        row.status = check_job(trigger, before, f"{self.run.id}/{job_id}")
        self.unsettled += (before in SETTLED) - (row.status in SETTLED)
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
        self.ended = self.run.status in RUN_TERMINAL
        for key, value in changes.items():
            setattr(self.run, key, value)
        self.run_dirty = True
        self.events.append(Event(f"run.{trigger}", self.run.id, None, self.run.state(),
                                 data or {}))

    def flush(self) -> None:
        """Queue every write; in a pipelined transaction they travel with the COMMIT."""
        if len(self.dirty) >= batches.MANY:
            save_jobs(self.cur, self.run.id, [self.jobs[job_id] for job_id in self.dirty])
        else:
            for job_id in self.dirty:
                save_job(self.cur, self.jobs[job_id])
        for job_id, fence, outcome in self.ended_leases:
            send(self.cur, "end_lease", {"run": self.run.id, "job": job_id, "fence": fence,
                                         "outcome": outcome})
        if self.run_dirty or self.unsettled != self.run.unsettled:
            send(self.cur, "update_run", {"run": self.run.id, "status": self.run.status,
                                          "blocked_on": self.run.blocked_on,
                                          "unsettled": self.unsettled})
        append_events(self.cur, self.run.repo_id, self.events, self.now)
        if self.ended:
            # The run's manifest records the head its last event made (one round trip,
            # once per run).
            last = self.cur.fetchone()
            assert last is not None, "append_event returns the new head"
            self.head = (int(last[0]), str(last[1]))
        if any(event.type == "job.ready" for event in self.events):
            send(self.cur, "notify_ready", {"run": self.run.id})
        if any(trigger == "cancel" for _, _, trigger in self.ended_leases):
            # The lanes holding them would run on until their next heartbeat (a third of
            # the lease) found them lost: their workers stop them now.
            send(self.cur, "notify_cancel", {"run": self.run.id})

    @property
    def changed(self) -> bool:
        return bool(self.events)  # every change appends its event


def advance(tx: Transition, changed: Iterable[str] | None = None) -> None:
    """Settle every pending job whose needs are settled, then end the run if all are.

    With ``changed`` (the jobs this transition settled), only their dependents are
    looked at, and a skip's dependents after it; without, every pending job is.
    """
    if tx.run.status != "running":
        return
    if changed is None:
        _advance_all(tx)
    else:
        _advance_from(tx, changed)
    if tx.unsettled == 0:
        tx.run_to("complete")


def _settle(tx: Transition, job_id: str, outcome: str | None) -> None:
    row = tx.jobs[job_id]
    if outcome == "skipped":
        tx.job(job_id, "skip")
    elif outcome == "ready":
        # A pass starts here; retries of the same pass do not count again.
        tx.job(job_id, "ready", executions=row.executions + 1, attempt=0)
        if row.kind == "checkpoint":
            tx.job(job_id, "await_decision")
        if tx.pinned.workflow.budget is not None:
            from .budgets import on_pass

            on_pass(tx)


def _advance_all(tx: Transition) -> None:
    from ..compiler.simulate import resolve  # the graph is loaded: so is the compiler

    jobs = tx.load_all()
    statuses = {job_id: row.status for job_id, row in jobs.items()}
    chosen = {job_id: row.chosen for job_id, row in jobs.items() if row.chosen}
    for job_id in tx.wg.order:
        if jobs[job_id].status != "pending":
            continue
        _settle(tx, job_id, resolve(tx.wg, job_id, statuses, chosen))
        statuses[job_id] = jobs[job_id].status


def _advance_from(tx: Transition, changed: Iterable[str]) -> None:
    from ..compiler.simulate import resolve

    wg = tx.wg
    position = topological_rank(wg)
    queue: list[tuple[int, str]] = []
    seen: set[str] = set()

    def push_dependents(job_id: str) -> None:
        for succ in wg.succ[job_id]:
            if succ not in seen:
                seen.add(succ)
                heapq.heappush(queue, (position[succ], succ))

    for job_id in changed:
        push_dependents(job_id)
    while queue:
        _, job_id = heapq.heappop(queue)
        row = tx.row(job_id)
        if row is None or row.status != "pending":
            continue
        needs = wg.jobs[job_id].needs
        # Walk the loaded jobs, not the needs: a join may need thousands.
        need_set = _need_set(wg, job_id)
        loaded = [n for n in tx.jobs if n in need_set]
        if any(tx.jobs[n].status not in SETTLED for n in loaded):
            continue
        if len(loaded) < len(needs) and not _all_settled(tx, job_id):
            continue
        others = [n for n in needs if n not in tx.jobs]
        tx.load(others)  # settled needs stay settled while the run's lock is held
        statuses = {n: tx.jobs[n].status for n in needs}
        chosen = {n: c for n in needs if (c := tx.jobs[n].chosen)}
        _settle(tx, job_id, resolve(wg, job_id, statuses, chosen))
        if row.status == "skipped":
            push_dependents(job_id)


def topological_rank(wg: WorkflowGraph) -> dict[str, int]:
    """Each job's place in topological order, the order dependents are looked at in (not
    file position): a job is looked at only after every job it needs that a transition
    could still settle (a skip cascading down a branch)."""
    position: dict[str, int] | None = wg.memo.get("topological_rank")
    if position is None:
        position = {job: rank for rank, job in enumerate(wg.order)}
        wg.memo["topological_rank"] = position
    return position


def _need_set(wg: WorkflowGraph, job_id: str) -> frozenset[str]:
    found: frozenset[str] | None = wg.memo.get(f"needs:{job_id}")
    if found is None:
        found = frozenset(wg.jobs[job_id].needs)
        wg.memo[f"needs:{job_id}"] = found
    return found


def rest_of(wg: WorkflowGraph, job_id: str) -> list[str]:
    """The run's jobs other than ``job_id`` and its needs."""
    rest: list[str] | None = wg.memo.get(f"rest:{job_id}")
    if rest is None:
        skip = {job_id, *wg.jobs[job_id].needs}
        rest = [j for j in wg.order if j not in skip]
        wg.memo[f"rest:{job_id}"] = rest
    return rest


def _settled_read(wg: WorkflowGraph, run_id: str, job_id: str, loaded: Collection[str]
                  ) -> tuple[str, dict[str, Any]]:
    """The read that tells whether the needs of ``job_id`` that are not ``loaded`` are
    settled: of the needs themselves, or of the rest of the run, whichever is smaller.
    Only the smaller list is built (the loaded jobs are few; a join's needs may be
    thousands)."""
    need_set = _need_set(wg, job_id)
    unloaded = len(need_set) - sum(1 for n in loaded if n in need_set)
    rest = rest_of(wg, job_id)
    if unloaded <= len(rest):
        return "any_unsettled", {"run": run_id,
                                 "jobs": [n for n in wg.jobs[job_id].needs if n not in loaded]}
    return "count_unsettled", {"run": run_id, "jobs": [j for j in rest if j not in loaded]}


def _all_settled(tx: Transition, job_id: str) -> bool:
    """Are all needs of the pending ``job_id`` that are not loaded settled?

    Asked of whichever is smaller: the needs themselves, or the rest of the run, whose
    unsettled jobs ``tx.unsettled`` (exact under the run's lock) tells apart from the
    needs'. A join over n tasks thus costs O(1) round trips per completion, not O(n),
    and none when ``Transition.open`` sent the read with the locks.
    """
    name, params = _settled_read(tx.wg, tx.run.id, job_id, tx.jobs)
    jobs = params["jobs"]
    answer = tx.prefetched.pop((name, tuple(jobs)), None)
    if name == "any_unsettled":
        return not (answer if answer is not None else fetch(tx.cur, name, params))
    in_memory = sum(1 for j in rest_of(tx.wg, job_id)
                    if j in tx.jobs and tx.jobs[j].status not in SETTLED)
    in_table = 0
    if jobs:
        in_table = int((answer if answer is not None else fetch(tx.cur, name, params))[0][0])
    # The loaded needs were checked settled; the pending job itself is the 1.
    return tx.unsettled - 1 - in_memory - in_table == 0


def fail_run(tx: Transition, reason: str) -> None:
    for job_id, row in tx.load_all().items():
        if row.status in LIVE_JOB_STATES:
            # What it was: a `run retry` grants a pass to a job that had begun one.
            tx.job(job_id, "cancel", {"reason": "the run failed", "was": row.status})
    tx.run_to("fail", {"reason": reason}, blocked_on=None)


def cancel_run(tx: Transition, reason: str) -> None:
    for job_id, row in tx.load_all().items():
        if row.status in LIVE_JOB_STATES:
            tx.job(job_id, "cancel", {"reason": reason})
    tx.run_to("cancel", {"reason": reason}, blocked_on=None)


def revise(tx: Transition, reviewer: str, reason: str, *, granted: bool,
           said: dict[str, Any] | None = None) -> None:
    """Send the reviewer's region back to pending, one iteration on (``said``: what the
    reviewer's own event adds, its findings)."""
    region = tx.wg.ids_of(tx.wg.region_bits(reviewer))
    tx.load_all()
    row = tx.jobs[reviewer]
    if not granted:
        row.revisions_used += 1
    for member in region:
        job = tx.jobs[member]
        if job.status == "pending":
            continue  # it had not started this pass: nothing to undo
        data = {"by": reviewer, "reason": reason, "granted": granted}
        tx.job(member, "reset", {**data, **(said or {})} if member == reviewer else data,
               iteration=job.iteration + 1, attempt=0,
               verdict="needs_revision" if member == reviewer else None)
    advance(tx)


def missing_artifacts(tx: Transition, job_id: str) -> list[str]:
    """What the job's pass has not published of its ``produces``."""
    produces = tx.wg.jobs[job_id].produces
    if not produces:
        return []
    row = tx.jobs[job_id]
    published = {r[0] for r in fetch(tx.cur, "job_artifacts", {
        "run": tx.run.id, "job": job_id, "iteration": row.iteration})}
    return [p for p in produces if p not in published]


def apply_verdict(tx: Transition, job_id: str, verdict: str, reason: str,
                  findings: tuple[str, ...] | None = None,
                  judged: dict[str, Any] | None = None) -> None:
    """``judged``: the digests of what the reviewer saw, recorded on its event."""
    row = tx.jobs[job_id]
    spec = tx.wg.jobs[job_id]
    repeated = verdict == "needs_revision" and repeats_last_round(tx, job_id, findings)
    said = verdict_data(findings, repeated)
    if judged is not None:
        said = {**said, "judged": judged}
    data = {"verdict": verdict, "reason": reason, **said}
    if verdict == "accept":
        tx.job(job_id, "complete", data, verdict="accept", reason=reason)
        advance(tx, [job_id])
    elif verdict == "reject":
        tx.job(job_id, "fail", data, verdict="reject", reason=reason)
        fail_run(tx, f"{job_id} rejected the work: {reason}")
    elif spec.revise is None:
        raise Conflict(f"review {job_id!r} has no revise target, so it cannot ask for a "
                       "revision", hint="record accept or reject")
    elif repeated and spec.revise.on_repeat == "escalate":
        tx.job(job_id, "escalate", data, verdict="needs_revision", reason=reason)
        block_on(tx, job_id, "it returned the same findings as the round before "
                 f"({', '.join(findings or ())}): {reason}")
    elif row.revisions_used < spec.revise.max:
        revise(tx, job_id, reason, granted=False, said=said)
    elif spec.revise.on_exhausted == "accept":
        tx.job(job_id, "complete", {**data, "exhausted": True}, verdict="accept", reason=reason)
        advance(tx, [job_id])
    elif spec.revise.on_exhausted == "fail":
        tx.job(job_id, "fail", {**data, "exhausted": True}, verdict="needs_revision",
               reason=reason)
        fail_run(tx, f"{job_id} spent its revision budget ({spec.revise.max})")
    else:
        tx.job(job_id, "escalate", {**data, "exhausted": True}, verdict="needs_revision",
               reason=reason)
        block_on(tx, job_id, reason)


def block_on(tx: Transition, job_id: str, reason: str, data: dict[str, Any] | None = None
             ) -> None:
    """Block the run on ``job_id``, just handed to a human. A run its budget already
    stopped stays blocked on the budget: the job waits awaiting its decision, and the run
    blocks on it once a human raises the limit (``block_on_waiting``)."""
    if tx.run.status == "running":
        tx.run_to("block", data or {"job": job_id, "reason": reason}, blocked_on=job_id)


def block_on_waiting(tx: Transition) -> None:
    """Block a running run on the next job that waits for ``run resume`` (a review or a
    task handed to a human), if one does: several can wait at once (accepts that lapsed
    together), and each must be reachable once the one before it is answered."""
    if tx.run.status != "running":
        return
    waiting = [row for row in tx.load_all().values()
               if row.status == "awaiting_decision" and row.kind != "checkpoint"]
    if waiting:
        row = waiting[0]
        tx.run_to("block", {"job": row.job_id, "reason": row.reason or ""},
                  blocked_on=row.job_id)


def attempt_failed(tx: Transition, job_id: str, trigger: str, reason: str, *,
                   final: bool = False) -> None:
    """An attempt crashed, timed out or gave up: retry while attempts remain (unless
    ``final``: it would fail alike every time)."""
    row = tx.jobs[job_id]
    if not final and row.attempt + 1 < row.max_attempts:
        tx.job(job_id, trigger, {"reason": reason}, attempt=row.attempt + 1, reason=reason)
    else:
        tx.job(job_id, "fail", {"reason": reason, "attempts": row.attempt + 1}, reason=reason)
        fail_run(tx, f"{job_id} failed after {row.attempt + 1} attempt(s): {reason}")
