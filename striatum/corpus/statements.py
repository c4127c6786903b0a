"""Each accepted review as an in-toto Statement (v1): what was judged, and by whom.

The subjects are the artifacts the reviewer consumed, at the newest iteration
published up to the accepted pass (for a review that consumes none, what it
published itself), named by their sha256 (the digest the record chained when
they were published); the predicate holds the verdict and the reviewer: its
lane, and the executable and model its accepting attempt chained when it started
(``attempt.start``; ``"from": "attempt"``; an operator's claim adds ``"by":
"operator"`` and the lease's owner, its model null unless the operator stated it), or,
for an attempt that chained none (a run recorded before attempts chained it), the
program and model the lane's command names (``"from": "workflow"``).
"""

from __future__ import annotations

from typing import Any

from ..runtime.starts import model_of

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:striatum:verdict:v1"


def _subjects(verdict: dict[str, Any], artifacts: list[dict[str, Any]],
              consumes: set[str]) -> list[dict[str, Any]]:
    """The consumed artifacts at the newest iteration up to the verdict's; for a review
    that consumes none, what the reviewer itself published in that pass."""
    newest: dict[str, dict[str, Any]] = {}
    for artifact in artifacts:
        if artifact["run_id"] != verdict["run_id"] or artifact["iteration"] > verdict["iteration"]:
            continue
        if consumes and artifact["path"] not in consumes:
            continue
        if not consumes and (artifact["job_id"] != verdict["job_id"]
                             or artifact["iteration"] != verdict["iteration"]):
            continue
        kept = newest.get(artifact["path"])
        if kept is None or artifact["iteration"] >= kept["iteration"]:
            newest[artifact["path"]] = artifact
    return [{"name": a["path"], "digest": {"sha256": a["sha256"]},
             "annotations": {"job": a["job_id"], "iteration": a["iteration"]}}
            for _, a in sorted(newest.items())]


def _reviewer(lane_name: Any, lane: dict[str, Any] | None,
              started: dict[str, Any] | None) -> dict[str, Any]:
    if started is not None:
        # An operator's own claim: no program striatum started, the lease's owner, and a
        # model only as the operator stated it (null: unknown).
        operator = {"by": "operator", "owner": started.get("owner")} \
            if started.get("by") == "operator" else {}
        return {"lane": started.get("lane", lane_name), "kind": (lane or {}).get("kind"),
                "executable": started.get("executable"), "model": started.get("model"),
                "from": "attempt", **operator}
    return {"lane": lane_name, "kind": (lane or {}).get("kind"),
            "executable": ((lane or {}).get("command") or [None])[0],
            "model": model_of((lane or {}).get("command")), "from": "workflow"}


def statement(verdict: dict[str, Any], artifacts: list[dict[str, Any]],
              job: dict[str, Any] | None = None, lane: dict[str, Any] | None = None,
              started: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The statement of an accepted review, or None when it names no artifact (in-toto
    requires a subject). ``started``: the data of the ``attempt.start`` event of the
    attempt that gave the verdict, when one was chained."""
    subjects = _subjects(verdict, artifacts, set((job or {}).get("consumes") or []))
    if not subjects:
        return None
    predicate: dict[str, Any] = {
        "run": verdict["run_id"], "job": verdict["job_id"],
        "iteration": verdict["iteration"], "verdict": verdict["verdict"],
        "reason": verdict["reason"], "fence": verdict["fence"],
        "reviewer": _reviewer((job or {}).get("lane"), lane, started),
    }
    if "judged" in verdict:  # the digests the reviewer saw (verdicts recorded since)
        predicate["judged"] = verdict["judged"]
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE,
            "predicate": predicate}
