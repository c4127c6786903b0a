"""The inbox: one queue of everything that waits for a human, across runs.

A checkpoint waiting for its decision, a review that spent its revision budget
and blocks its run, a run its budget stopped (one item for the run, job None), a
lease whose worker went quiet (its last heartbeat older than a third of the
lease) or whose lease expired unswept, a lane of a running run with ready jobs
that no running worker serves (``striatum.workers``), and a review whose last
round named the same findings as the round before (``findings``). Each item is
``why``'s answer for that job (the same text and command), with the run, its
repository and how long the item has waited, oldest first. It is read in four
statements (the jobs, the unserved lanes, the repeats, the clock) plus one read
per run and per pinned workflow in it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import pinned
from .records import JobRow, RunRow
from .runs import get_run
from .why import Hold, budget_hold, in_turn, job_hold, repeat_hold

if TYPE_CHECKING:
    from ..compiler.compiled import CompiledWorkflow
    from .store import Store

INBOX_KINDS = ("checkpoint", "escalated", "lapsed", "over_budget", "lease_stale",
               "lease_expired", "no_worker", "findings_repeated")


def inbox(store: Store, repo: str | None = None) -> dict[str, Any]:
    """Everything that waits for a human (of ``repo``'s runs when given), oldest first."""
    import os

    where = {"repo": os.path.realpath(repo) if repo else None}
    found = store.execute("inbox_jobs", where, JobRow)
    # One item per run and lane nobody serves, however many of its jobs are ready.
    unserved = {(job.run_id, job.lane): job
                for job in reversed(store.execute("inbox_unserved", where, JobRow))}
    # Reviews whose latest round named the same findings as the one before: an escalated
    # one says so in its item; one whose loop goes on is an item of its own.
    repeats: dict[str, dict[str, list[str]]] = {}
    going_on = []
    for run_id, job_id, kind, data, at in store.execute("live_repeats", where):
        repeats.setdefault(run_id, {})[job_id] = list(data.get("findings") or [])
        if kind != "job.escalate":
            going_on.append((run_id, job_id, at))
    now: datetime = store.execute("now")[0][0]
    runs: dict[str, RunRow] = {}
    workflows: dict[str, CompiledWorkflow] = {}
    items: list[tuple[datetime, dict[str, Any]]] = _over_budget(store, where, now)
    for job in sorted([*found, *unserved.values()], key=lambda j: j.updated_at):
        run = runs.get(job.run_id) or runs.setdefault(job.run_id, get_run(store, job.run_id))
        digest = run.workflow_digest
        workflow = workflows.get(digest) or workflows.setdefault(
            digest, pinned.compiled_of(store, digest))
        hold = job_hold(run.id, workflow, {}, job, now, [] if job.status == "ready" else None,
                        repeats.get(run.id))
        if hold is None or hold.kind not in INBOX_KINDS:
            continue  # it moved on between the two reads
        if run.status == "blocked":
            hold = in_turn(hold, run.blocked_on)
        since = job.heartbeat_at if hold.kind == "lease_stale" and job.heartbeat_at \
            else job.updated_at
        items.append((job.updated_at, _item(hold, run, since, now)))
    for run_id, job_id, at in going_on:
        run = runs.get(run_id) or runs.setdefault(run_id, get_run(store, run_id))
        items.append((at, _item(repeat_hold(run_id, job_id, repeats[run_id][job_id]), run,
                                at, now)))
    # Oldest first by when each changed last (stable: jobs of one instant keep their order).
    items.sort(key=lambda keyed: keyed[0])
    ordered = [item for _, item in items]
    return {"items": ordered, "count": len(ordered), "at": now.isoformat()}


def _over_budget(store: Store, where: dict[str, Any], now: datetime
                 ) -> list[tuple[datetime, dict[str, Any]]]:
    """One item per run its budget stopped: the run waits, not one of its jobs."""
    from .budgets import stop_reason

    return [(run.updated_at,
             _item(budget_hold(run, stop_reason(store.execute("budget_stop", {"run": run.id}))),
                   run, run.updated_at, now))
            for run in store.execute("inbox_over_budget", where, RunRow)]


def _item(hold: Hold, run: RunRow, since: datetime, now: datetime) -> dict[str, Any]:
    return {**hold.to_json(), "run": run.id, "repo": run.repo_path,
            "workflow": run.workflow_name, "run_status": run.status,
            "since": since.isoformat(), "age_seconds": max(0, int((now - since).total_seconds()))}
