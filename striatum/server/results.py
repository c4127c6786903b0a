"""The JSON document each verb returns, built in one place for every face.

The CLI's ``--json`` prints these, and the registry returns them to the MCP
server (and any later face), so the two cannot drift apart. Each function
takes what the core returned; none reads the database or imports more than
this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..runtime.actor import default_owner as default_owner  # where the CLI took it from

if TYPE_CHECKING:
    from datetime import datetime

    from ..compiler.compile import Compilation
    from ..compiler.compiled import CompiledWorkflow
    from ..runtime.completion import Completed
    from ..runtime.engine import Transition
    from ..runtime.leases import Claim
    from ..runtime.records import RunRow
    from ..runtime.runs import Idle, RunView, Waiting


def count(n: int, noun: str) -> str:
    """``1 job``, ``2 jobs``: a number and its noun, plural unless the number is one."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def summary(diagnostics: Iterable[Any]) -> str:
    """``1 error, 2 warnings``, or ``no problems``."""
    counts = {"error": 0, "warning": 0, "info": 0}
    for d in diagnostics:
        counts[d.severity.value] += 1
    parts = [count(n, name) for name, n in counts.items() if n]
    return ", ".join(parts) or "no problems"


# -- runs --------------------------------------------------------------------------------------


def prepared(run_id: str, view: RunView) -> dict[str, Any]:
    return {"run_id": run_id, **view.to_json()}


def run_list(found: list[dict[str, Any]]) -> dict[str, Any]:
    return {"runs": found}


def run_plan(run: RunRow, workflow: CompiledWorkflow) -> dict[str, Any]:
    return {"run": run.id, "workflow": run.workflow_name, "digest": run.workflow_digest,
            "waves": [list(wave) for wave in workflow.waves],
            "needs": {job.id: list(job.needs) for job in workflow.workflow.jobs},
            "worst_case": workflow.worst_case, "worst_case_exact": workflow.worst_case_exact}


def run_events(run_id: str, events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    return {"run": run_id, "events": list(events)}


def run_waiting(run_id: str, waiting: list[Waiting]) -> dict[str, Any]:
    return {"run": run_id, "waiting": [{"job": w.job, "iteration": w.iteration, "kind": w.kind,
                                        "command": w.command} for w in waiting]}


def decided(tx: Transition, job_id: str, choice: str) -> dict[str, Any]:
    return {"run": tx.run.id, "job": job_id, "choice": choice, "run_status": tx.run.status,
            "skipped": skipped(tx)}


def skipped(tx: Transition) -> list[str]:
    """The jobs a transition left skipped (a checkpoint's branches not chosen)."""
    return [j for j, row in tx.jobs.items() if row.status == "skipped"]


# -- jobs --------------------------------------------------------------------------------------


def claimed(found: Claim | Idle) -> dict[str, Any]:
    if found.claimed:
        return {"claimed": True, **found.to_json()}
    return found.to_json()


def heartbeat(run_id: str, job_id: str, expires: datetime) -> dict[str, Any]:
    return {"run": run_id, "job": job_id, "expires_at": expires.isoformat()}


def published(run_id: str, job_id: str, record: dict[str, Any]) -> dict[str, Any]:
    return {"run": run_id, "job": job_id, **record}


def job_outcome(tx: Transition | Completed, job_id: str) -> dict[str, Any]:
    """Where a job and its run stand after verdict, complete, release or fail."""
    row = tx.jobs[job_id]
    return {"run": tx.run.id, "job": job_id, "status": row.status, "iteration": row.iteration,
            "run_status": tx.run.status, "blocked_on": tx.run.blocked_on}


# -- workflows ---------------------------------------------------------------------------------


def validation(file: str, comp: Compilation) -> dict[str, Any]:
    return {"file": file, "format": comp.source.format, "valid": comp.ok,
            "jobs": len(comp.workflow.jobs) if comp.workflow else None,
            "diagnostics": [d.to_json() for d in comp.diagnostics],
            "summary": summary(comp.diagnostics)}


def lint_report(file: str, comp: Compilation, found: list[Any]) -> dict[str, Any]:
    return {"file": file, "valid": comp.ok, "diagnostics": [d.to_json() for d in found],
            "summary": summary(found)}
