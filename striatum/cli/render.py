"""The agent loop's result documents as text to read: a claim, a heartbeat, a publish, a
job's outcome and a run's status.

Standard library only: the click commands print these, and so does the routed fast path
(``fastpath``), which must not import click; one function per document keeps the two
ways' text the same.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing itself is a few milliseconds of a routed command's start
if TYPE_CHECKING:
    from typing import Any


def claimed(found: dict[str, Any]) -> tuple[str, str]:
    """What ``job claim`` prints: (stdout, stderr); one of them empty."""
    if not found["claimed"]:
        return "", f"not claimed ({found['reason']}): {found['detail']}"
    from datetime import datetime

    run, job_id, token = found["run"], found["job"], found["lease"]
    expires = datetime.fromisoformat(found["expires_at"])
    lines = [f"claimed {job_id} ({found['kind']}, lane {found['lane']}) in run {run}",
             f"prompt:       {found['prompt_file']}",
             f"artifact dir: {found['artifact_dir']}"]
    if found["produces"]:
        lines.append(f"produces:     {', '.join(found['produces'])} (write them to the "
                     "artifact dir, then publish each)")
    lines.append(f"lease:        {token} (expires {expires:%H:%M:%S})")
    lines.append(f"export STRIATUM_RUN={run} STRIATUM_JOB={job_id} STRIATUM_LEASE={token}")
    return "\n".join(lines), ""


def heartbeat(document: dict[str, Any]) -> str:
    from datetime import datetime

    return f"lease extended to {datetime.fromisoformat(document['expires_at']):%H:%M:%S}"


def published(record: dict[str, Any]) -> str:
    return f"published {record['path']} → {record['stored_at']} sha256:{record['sha256']}"


def outcome(document: dict[str, Any]) -> str:
    """What verdict, complete, release, fail and escalate print (``results.job_outcome``)."""
    blocked = document.get("blocked_on")
    return (f"{document['job']}: {document['status']}; run {document['run']}: "
            f"{document['run_status']}" + (f" (blocked on {blocked})" if blocked else ""))


def run_status(doc: dict[str, Any]) -> str:
    """A run's status document (``run.status``), as lines to read."""
    granted = (f" (+{doc['granted']} granted by a human)" if doc["granted"] else "")
    lines = [f"run {doc['run']} ({doc['workflow']}): {doc['status']}"
             + (f", blocked on {doc['blocked_on']}" if doc["blocked_on"] else "")
             + (f": {doc['reason']}" if doc["reason"] else ""),
             f"  executions {doc['executions']} of at most {doc['worst_case']}{granted}"]
    for job in doc["jobs"]:
        extra = []
        if job["iteration"]:
            extra.append(f"pass {job['iteration'] + 1}")
        if job["attempt"]:
            extra.append(f"attempt {job['attempt'] + 1}")
        if job["lease_owner"]:
            until = job["lease_expires_at"]
            extra.append(f"held by {job['lease_owner']}"
                         + (f" until {until[11:19]} UTC" if until else ""))
        if job["chosen"]:
            extra.append(f"chose {job['chosen']}")
        if job["verdict"]:
            extra.append(job["verdict"])
        detail = f" ({', '.join(extra)})" if extra else ""
        lines.append(f"  {job['job']:<24} {job['status']:<18} {job['lane']}{detail}")
        if job["status"] == "failed" and job["reason"]:
            lines.append(f"    why: {job['reason']}")
        if job["status"] in ("failed", "leased") and job["log"]:
            lines.append(f"    log: {job['log']}")
        if "choices" in job:
            lines.append(f"    asks: {job['title'] or job['job']}; choices: "
                         + ", ".join(job["choices"]))
            lines.append(f"    answer: striatum checkpoint decide {doc['run']} {job['job']} "
                         + "|".join(job["choices"]))
    return "\n".join(lines)


def as_json(document: Any) -> str:
    """A document as ``--json`` prints it."""
    import json

    return json.dumps(document, indent=2, ensure_ascii=False)
