"""A run's budget: what it may spend before it stops and waits for a human.

The limits are the workflow's ``budget`` (pinned with the run), raised by a
human's ``run resume --raise-budget``; what the run has spent is read from
its record, so it survives any restart, in one read however long the run:

* **job runs**: the passes its jobs started (``executions``, as plan counts
  them). The transition that makes a pass ready past ``max_job_runs`` blocks
  the run in the same commit, so no worker can claim it.
* **wall seconds**: the time the run spent running, from its ``run.*``
  events (time blocked for a human does not count), read through their own
  index: a few rows, not the run's every event.
* **cost**: the sum of what its lanes reported in ``usage.json``, each report
  a ``budget.usage`` event that adds to the run's ``spent_cost`` in the same
  transaction (doctor checks the sum against the events).

A run that reaches a limit is blocked (``run.block``, ``blocked_on`` naming
the limit, with the limit, the amount spent and the reason); nothing of it is
claimed until a human raises the limit or fails the run. Each claim of a run
with a budget checks it again before its lane starts, and each worker sweep
stops the runs whose clock ran out.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..compiler.ir import BUDGET_KEYS, Budget, budget_document
from ..errors import Conflict, UsageError
from . import pinned
from .audit import Event, verb
from .store import fetch, fetch_one, send

if TYPE_CHECKING:
    import psycopg

    from .engine import Transition
    from .store import Store

PREFIX = "budget:"  # blocked_on of a run its budget stopped; no job id has a colon
USAGE_FILE = "usage.json"
WHAT = {"max_job_runs": "job runs", "max_wall_seconds": "seconds of wall time",
        "max_cost": "cost"}


@dataclass
class Spent:
    limits: dict[str, int]  # the limits in force (declared, then raised)
    wall_seconds: int
    cost: int
    job_runs: int | None = None  # counted only where a check needs it


def stopped(blocked_on: str | None) -> bool:
    return blocked_on is not None and blocked_on.startswith(PREFIX)


def read(cur: psycopg.Cursor[Any], run_id: str, budget: Budget, now: datetime) -> Spent:
    limits = budget_document(budget)
    wall = 0.0
    (_, _, _, cost, _), *lifecycle = fetch(cur, "budget_spent", {"run": run_id})
    since: datetime | None = None
    for kind, at, raised, _, _ in lifecycle:
        if kind in ("run.start", "run.resume", "run.retry"):
            since = at
        elif kind.startswith("run.") and since is not None:
            wall += (at - since).total_seconds()
            since = None
        if isinstance(raised, dict):
            limits.update(raised)
    if since is not None:
        wall += (now - since).total_seconds()
    return Spent(limits, int(wall), int(cost))


def _spent(tx: Transition, budget: Budget) -> Spent:
    if tx.budget is None:
        tx.budget = read(tx.cur, tx.run.id, budget, tx.now)
    spent: Spent = tx.budget
    return spent


def _job_runs(tx: Transition) -> int:
    loaded = list(tx.jobs)
    row = fetch_one(tx.cur, "budget_job_runs", {"run": tx.run.id, "loaded": loaded})
    return int(row[0]) + sum(job.executions for job in tx.jobs.values())


def over(spent: Spent) -> tuple[str, int, int] | None:
    """The first limit reached: (its key, the limit, what was spent), or None."""
    counts = {"max_job_runs": spent.job_runs, "max_wall_seconds": spent.wall_seconds,
              "max_cost": spent.cost}
    for key in BUDGET_KEYS:
        limit, used = spent.limits.get(key), counts[key]
        if limit is None or used is None:
            continue
        # A pass beyond the limit is what job runs stop; time and cost stop on reaching it.
        if used > limit if key == "max_job_runs" else used >= limit:
            return key, limit, used
    return None


def stop(tx: Transition, found: tuple[str, int, int]) -> None:
    key, limit, used = found
    reason = f"{key} {limit} reached: {used} {WHAT[key]} spent"
    if key == "max_job_runs":
        reason = f"{key} {limit} reached: the run's pass number {used} would go beyond it"
    tx.run_to("block", {"budget": key, "limit": limit, "spent": used, "reason": reason},
              blocked_on=PREFIX + key)


def check(tx: Transition, *, job_runs: bool = True) -> bool:
    """Block the running run of ``tx`` if it reached a limit; True if it did."""
    budget = tx.pinned.workflow.budget
    if budget is None or tx.run.status != "running":
        return False
    spent = _spent(tx, budget)
    if job_runs and "max_job_runs" in spent.limits and spent.job_runs is None:
        spent.job_runs = _job_runs(tx)
    found = over(spent)
    if found is None:
        return False
    stop(tx, found)
    return True


def on_pass(tx: Transition) -> None:
    """A pass was made ready: past a limit (``max_job_runs`` above all), the run stops in
    this transaction, before any worker can claim the pass."""
    if tx.pinned.workflow.budget is None:
        return
    if tx.budget is not None and tx.budget.job_runs is not None:
        # Counted once in this transaction: each pass made ready since adds one.
        tx.budget.job_runs += 1
    check(tx)


def hand_back(store: Store, run_id: str, job_id: str, token: str) -> bool:
    """After a claim of a run with a budget, before its lane starts: if the run reached a
    limit, give the job back (no attempt spent) and block the run. True if it did."""
    from .runs import transition

    handed = False

    def change(tx: Transition) -> None:
        nonlocal handed
        row = tx.row(job_id)
        if row is None or row.status != "leased" or row.lease_token != token:
            return  # it moved on: nothing of ours to hand back
        if check(tx):
            tx.job(job_id, "release", {"reason": "its run reached its budget"})
            handed = True

    transition(store, run_id, change, [job_id])
    return handed


@verb("budget sweep")
def sweep(store: Store, run_id: str | None = None) -> int:
    """Block the running runs (``run_id``'s, when given) that reached a limit meanwhile:
    a clock that ran out while nothing was claimed. Returns how many it blocked."""
    from .runs import transition

    blocked = 0
    for found_run, digest in store.execute("budget_running_runs", {"run": run_id}):
        if pinned.compiled_of(store, digest).workflow.budget is None:
            continue

        def change(tx: Transition) -> None:
            nonlocal blocked
            blocked += check(tx)

        transition(store, found_run, change)
    return blocked


def clear_usage(artifact_dir: str) -> None:
    """Before an attempt's lane starts: what an earlier attempt reported is counted."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(Path(artifact_dir) / USAGE_FILE)


def read_usage(artifact_dir: str) -> dict[str, int] | None:
    """What the lane reported in ``usage.json``, or None: absent, or not a usage report
    (``cost`` a whole number, ``tokens`` one too when given)."""
    try:
        document = json.loads((Path(artifact_dir) / USAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    usage = {key: value for key in ("cost", "tokens")
             if type(value := document.get(key)) is int and value >= 0}
    return usage if "cost" in usage else None


@verb("budget usage")
def report_usage(store: Store, run_id: str, job_id: str, usage: dict[str, int]) -> None:
    """Record what an attempt's lane spent (a ``budget.usage`` event); a run whose cost
    reaches ``max_cost`` stops in the same transaction."""
    from .runs import transition

    def change(tx: Transition) -> None:
        row = tx.row(job_id)
        if row is None:
            return
        tx.events.append(Event("budget.usage", tx.run.id, job_id, row.state(),
                               {**usage, "iteration": row.iteration, "attempt": row.attempt}))
        budget = tx.pinned.workflow.budget
        if budget is not None:
            _spent(tx, budget).cost += usage["cost"]
            check(tx, job_runs=False)
        # After the read above: the row's sum is what the run had spent before this report.
        send(tx.cur, "budget_add_cost", {"run": tx.run.id, "cost": usage["cost"]})

    transition(store, run_id, change, [job_id])


def parse_raise(items: tuple[str, ...] | list[str]) -> dict[str, int]:
    """'max_job_runs=40' items -> the limits to raise."""
    out: dict[str, int] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in BUDGET_KEYS or not value.strip().isdigit() \
                or int(value) < 1:
            raise UsageError(f"--raise-budget {item!r} is not LIMIT=N",
                             hint="LIMIT is one of " + ", ".join(BUDGET_KEYS)
                                  + " and N a whole number above 0, e.g. max_job_runs=40")
        out[key] = int(value)
    return out


def resume_params(run_id: str, decision: str | None, raised: tuple[str, ...] | list[str],
                  reason: str, job: str | None = None) -> dict[str, Any]:
    """The ``run resume`` verb's parameters from its command line."""
    if decision is None and not raised:
        raise UsageError("say how to answer the run: --decision accept|fail|revise, or "
                         "--raise-budget LIMIT=N for a run its budget stopped",
                         hint=f"`striatum why {run_id}` says which it waits for")
    if job is not None and raised:
        raise UsageError("--job names a waiting job to answer; --raise-budget answers the "
                         "run's budget: give one of them",
                         hint=f"`striatum why {run_id}` gives the command for each")
    params: dict[str, Any] = {"run": run_id, "decision": decision or "raise", "reason": reason}
    if raised:
        params["budget"] = parse_raise(raised)
    if job is not None:
        params["job"] = job
    return params


def resume(tx: Transition, decision: str, reason: str, raised: dict[str, int] | None) -> None:
    """A human answers a run its budget stopped: ``raise`` the limits (the run goes on), or
    ``fail`` it."""
    from .engine import advance, block_on_waiting, fail_run

    assert tx.run.blocked_on is not None
    key = tx.run.blocked_on[len(PREFIX):]
    if decision == "fail":
        fail_run(tx, f"a human failed the run at its budget ({key}): {reason}")
        return
    if decision != "raise" or not raised:
        raise Conflict(f"run {tx.run.id} is stopped by its budget ({key}), not by a job: "
                       f"raise the limit or fail the run",
                       hint=f"`striatum run resume {tx.run.id} --raise-budget {key}=N` with N "
                            "above what it spent, or --decision fail", state=tx.run.status)
    budget = tx.pinned.workflow.budget or Budget()
    spent = _spent(tx, budget)
    limits = {**spent.limits, **raised}
    trial = Spent(limits, spent.wall_seconds, spent.cost,
                  _job_runs(tx) if "max_job_runs" in limits else None)
    still = over(trial)
    if still is not None:
        which, limit, used = still
        enough = used if which == "max_job_runs" else used + 1
        raise Conflict(f"run {tx.run.id} would stop again at once: {which} {limit} is below "
                       f"what it needs ({enough}, having spent {used})",
                       hint=f"raise {which} to {enough} or more", state=tx.run.status)
    tx.run_to("resume", {"decision": "raise", "budget": raised, "reason": reason,
                         "by": "human"}, blocked_on=None)
    spent.limits = limits
    advance(tx)
    block_on_waiting(tx)  # a job handed to a human while the budget held the run


def stop_reason(rows: list[Any]) -> str | None:
    """The reason of the ``budget_stop`` read's answer."""
    data = rows[0][0] if rows else None
    return str(data["reason"]) if isinstance(data, dict) and data.get("reason") else None
