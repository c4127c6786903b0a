"""A completion as one statement (``striatum.complete_job``), as a claim is one.

A task's completion is most of the transitions a run makes, and nearly all of them
are the same change: the job's live lease ends, the job succeeds, the jobs that were
waiting only for it become ready. The database makes
that change in one call (one round trip, one commit), its events byte for byte
those the engine would append (a test holds the two together). Python still says
what varies: the event's ``data``, the artifacts the job must have published, and
which jobs may become ready.

Anything else (a lease that is not live, a missing artifact, the run's last job, a
dependent that is a checkpoint or needs one, files to publish with the change) is
left to the general transition (``runs.transition``): the statement then changes
nothing, and the caller makes the change the general way, which words every refusal.
A review's verdict always goes that way: it records what its reviewer judged
(``judged``), read from the repository and the attempt's scratch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json, text_safe
from . import audit, pinned
from .engine import rest_of, topological_rank
from .records import JobRow, RunRow, from_json

if TYPE_CHECKING:
    from ..compiler.graph import WorkflowGraph
    from .store import Store

# Above this many jobs to send for one dependent (its needs, or the rest of the run), its
# readiness is the engine's to find.
MAX_NEEDS = 256


@dataclass
class Completed:
    """Where the job and its run stand after a completion made in one statement: the
    fields a face reads of a ``Transition``."""

    run: RunRow
    jobs: dict[str, JobRow]
    ended: bool = False  # the run's last job is never completed this way


def dependents_document(wg: WorkflowGraph, job_id: str) -> str | None:
    """The jobs that may become ready when ``job_id`` succeeds, in the order the engine
    looks at them (topological rank), as the JSON ``striatum.dependents_ready`` reads:
    each with its other needs, or with the rest of the run when that is shorter (a
    join's needs may be thousands). None when the engine must decide: a dependent is a
    checkpoint or needs one (a choice may skip it), or both lists are long."""
    key = f"complete_dependents:{job_id}"
    if key in wg.memo:
        found: str | None = wg.memo[key]
        return found
    rank = topological_rank(wg)
    entries: list[list[Any]] = []
    document: str | None = None
    for dependent in sorted(dict.fromkeys(wg.succ[job_id]), key=rank.__getitem__):
        spec = wg.jobs[dependent]
        rest = rest_of(wg, dependent)
        if min(len(spec.needs) - 1, len(rest)) > MAX_NEEDS or _chooses(wg, dependent):
            break
        if len(spec.needs) - 1 <= len(rest):
            entries.append([dependent, "needs", [n for n in spec.needs if n != job_id]])
        else:
            entries.append([dependent, "rest", rest])
    else:
        document = json.dumps(entries, separators=(",", ":"))
    wg.memo[key] = document
    return document


def _chooses(wg: WorkflowGraph, dependent: str) -> bool:
    """Is the job a checkpoint, or does it need one (whose choice may skip it)? Asked once
    per job: a join's needs may be thousands, and each of them asks."""
    key = f"chooses:{dependent}"
    found: bool | None = wg.memo.get(key)
    if found is None:
        found = wg.jobs[dependent].kind == "checkpoint" or any(
            wg.jobs[n].kind == "checkpoint" for n in wg.jobs[dependent].needs)
        wg.memo[key] = found
    return found


def data_text(data: dict[str, Any]) -> str:
    """An event's ``data`` as the canonical JSON its payload holds (``Event.payload``)."""
    try:
        return canonical_json(data).decode("utf-8")
    except UnicodeEncodeError:
        return canonical_json(text_safe(data)).decode("utf-8")


def complete_in_one(store: Store, run_id: str, job_id: str, token: str, *,
                    data: dict[str, Any], check_writes: bool = False) -> Completed | None:
    """Complete the leased task in one statement, inside its verb; None, with nothing
    changed, when the general transition must make the change. ``check_writes``: the
    caller wants the job's changes checked against its ``writes``, which only the
    general transition does."""
    known = pinned.known(run_id)  # the graph, when this process has seen the run
    if known is None or job_id not in known.graph.jobs:
        return None
    wg = known.graph
    spec = wg.jobs[job_id]
    if check_writes and spec.writes and spec.isolation != "worktree":
        return None
    dependents = dependents_document(wg, job_id)
    if dependents is None:
        return None
    found = store.call("complete_job", {
        "run": run_id, "job": job_id, "token": token, "data": data_text(data),
        "produces": list(spec.produces), "dependents": dependents,
        **audit.claim_params(store)})
    if not found:
        return None
    store.audited += 1  # the statement wrote its audit row
    return Completed(from_json(RunRow, found[0][1]), {job_id: from_json(JobRow, found[0][0])})
