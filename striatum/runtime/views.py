"""What a person looks at, read in one place: a run's graph (its waves, needs and revision
loops with the budget each has left), one job in full (prompt, log tail, artifacts,
verdicts, leases by the database clock), a page of a run's events with each row's hash
checked, and an artifact's text for a viewer.

Reads only: every one is a registry verb (``run.graph``, ``job.show``, ``run.history``,
``run.artifact``), so the web UI, the daemon and MCP show the same thing. Each read is
bounded (a page of events, a tail of a log, a cap on a text) so a run of thousands of
jobs and a chain of a hundred thousand events costs what one screen shows.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from . import pinned
from .artifacts import read_artifact
from .audit import row_hash
from .prompts import current_prompt, scratch
from .records import JobRow, RunRow
from .runs import get_run, status

if TYPE_CHECKING:
    from .store import Store

TEXT_MAX = 256 * 1024  # of an artifact or a prompt shown in a page
LOG_TAIL = 16 * 1024  # the end of a lane log a job page shows
LEASES_SHOWN = 20


def run_graph(store: Store, run_id: str, *, why: bool = False) -> dict[str, Any]:
    """The run's status (``run.status``'s document) and what a drawing of it needs: the
    plan's waves, its needs as edges, its revision loops with the passes each has left,
    and its verdicts; with ``why``, what holds it (``run.why``'s document) from the same
    read of the status."""
    view = status(store, run_id)
    workflow = pinned.compiled_of(store, view.run.workflow_digest)
    used = {j.job_id: j.revisions_used for j in view.jobs}
    edges = [{"from": need, "to": job.id} for job in workflow.workflow.jobs
             for need in job.needs]
    revisions = [{"from": job.id, "to": job.revise.target, "max": job.revise.max,
                  "left": max(job.revise.max - used.get(job.id, 0), 0)}
                 for job in workflow.workflow.jobs if job.revise is not None]
    verdicts = [{"job": r[0], "iteration": r[1], "verdict": r[2], "reason": r[3],
                 "at": r[4].isoformat()}
                for r in store.execute("run_verdicts", {"run": run_id})]
    found = {**view.to_json(), "waves": [list(wave) for wave in workflow.waves],
             "edges": edges, "revisions": revisions, "verdicts": verdicts}
    if why:
        from .why import explain

        found["why"] = explain(store, run_id, view)
    return found


def job_detail(store: Store, run_id: str, job_id: str) -> dict[str, Any]:
    """One job: its row, the prompt of its current attempt, the tail of its newest lane
    log, what it published (every pass, with sha256), its verdicts, and its leases with
    heartbeat age and expiry measured by the database clock, each with the executable
    and model its attempt's start chained and who started it (``started_by``: worker, or
    operator for a claim through ``job claim``, whose model is None unless stated; all
    None for an attempt that chained no start, recorded before they were chained)."""
    view = status(store, run_id)
    rows = {j.job_id: j for j in view.jobs}
    if job_id not in rows:
        raise NotFound(f"run {run_id} has no job {job_id!r}",
                       hint="its jobs: " + ", ".join(rows))
    row = rows[job_id]
    job = next(j for j in view.to_json()["jobs"] if j["job"] == job_id)
    try:
        prompt: str | None = _capped(current_prompt(store, run_id, job_id), TEXT_MAX)
    except NotFound:
        prompt = None  # not claimed yet: a prompt is rendered at its claim
    artifacts = [{"iteration": r[0], "path": r[1], "stored_at": r[2], "sha256": r[3],
                  "bytes": r[4]}
                 for r in store.execute("job_artifacts_every", {"run": run_id, "job": job_id})]
    log, tail = _log(view.run, row, artifacts)
    verdicts = [{"iteration": r[1], "verdict": r[2], "reason": r[3], "at": r[4].isoformat()}
                for r in store.execute("run_verdicts", {"run": run_id}) if r[0] == job_id]
    found = store.execute("job_leases", {"run": run_id, "job": job_id, "limit": LEASES_SHOWN})
    now: datetime | None = found[0][7] if found else None
    leases = [{"fence": r[0], "owner": r[1], "iteration": r[2], "attempt": r[3],
               "acquired_at": r[4].isoformat(),
               "ended_at": r[5].isoformat() if r[5] else None, "outcome": r[6],
               "executable": r[8], "model": r[9], "started_by": r[10]}
              for r in found]
    live = None
    if row.status == "leased" and row.lease_expires_at is not None and now is not None:
        beat = row.heartbeat_at
        live = {"owner": row.lease_owner, "expires_at": row.lease_expires_at.isoformat(),
                "expires_in_seconds": int((row.lease_expires_at - now).total_seconds()),
                "heartbeat_age_seconds": int((now - beat).total_seconds()) if beat else None,
                "expired": row.lease_expired}
    return {"run": run_id, "job": job, "max_attempts": row.max_attempts, "prompt": prompt,
            "log": log, "log_tail": tail, "artifacts": artifacts, "verdicts": verdicts,
            "leases": leases, "lease": live,
            "database_now": now.isoformat() if now is not None else None}


def events_page(store: Store, run_id: str, before: int | None, limit: int) -> dict[str, Any]:
    """At most ``limit`` events of the run before seq ``before`` (the newest when None),
    newest first, each row's hash recomputed from its payload, and each link between
    rows of consecutive seq checked: a page checks what it shows, ``doctor`` the whole
    chain."""
    get_run(store, run_id)  # a missing run is not found, not an empty page
    rows = store.execute("run_events_page", {"run": run_id, "before": before,
                                             "limit": limit + 1})
    more = len(rows) > limit
    rows = rows[:limit]
    events = []
    broken = 0
    for n, (seq, kind, job, payload, previous, hashed, at) in enumerate(rows):
        intact = row_hash(previous, payload) == hashed
        older = rows[n + 1] if n + 1 < len(rows) else None
        if older is not None and older[0] == seq - 1 and older[5] != previous:
            intact = False
        broken += not intact
        events.append({"seq": seq, "type": kind, "job": job, "payload": json.loads(payload),
                       "hash": hashed, "at": at.isoformat(), "intact": intact})
    return {"run": run_id, "events": events, "intact": broken == 0, "broken": broken,
            "older": events[-1]["seq"] if more and events else None}


def artifact_text(store: Store, run_id: str, path: str) -> dict[str, Any]:
    """An artifact's newest version for a viewer: its record, how to show it (markdown,
    json, diff, text, or binary when it is not UTF-8), and its text up to a cap."""
    data, record = read_artifact(store, run_id, path)
    try:
        text: str | None = data[:TEXT_MAX].decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"run": run_id, **record, "kind": _kind(path, text), "text": text,
            "truncated": len(data) > TEXT_MAX}


def _kind(path: str, text: str | None) -> str:
    if text is None:
        return "binary"
    suffix = Path(path).suffix.lower()
    if suffix in (".md", ".markdown"):
        return "markdown"
    if suffix == ".json":
        return "json"
    if suffix in (".diff", ".patch") or text.startswith(("diff --git", "--- ")):
        return "diff"
    return "text"


def _log(run: RunRow, row: JobRow, artifacts: list[dict[str, Any]]
         ) -> tuple[str | None, str | None]:
    """Where the job's log is and its tail: while leased, the lane log its attempt is
    writing now (in the scratch folder); else the newest one published."""
    if row.status == "leased":
        live = scratch(run, row).log
        if live.is_file():
            return str(live.relative_to(run.repo_path)), _tail(live, LOG_TAIL)
    name = f"logs/{row.job_id}.log"
    published = next((a["stored_at"] for a in artifacts if a["path"] == name), None)
    if published is None:
        return None, None
    return published, _tail(Path(run.repo_path) / published, LOG_TAIL)


def _capped(path: Path, cap: int) -> str:
    with path.open("rb") as handle:
        return handle.read(cap).decode("utf-8", "replace")


def _tail(path: Path, size: int) -> str | None:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(handle.tell() - size, 0))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return None
