"""Each accepted review as an in-toto Statement (v1): what was judged, and by whom.

The subjects are the artifacts the reviewer consumed, at the newest iteration
published up to the accepted pass (for a review that consumes none, what it
published itself), named by their sha256 (the digest the record chained when
they were published); the predicate holds the verdict, the reviewer's
lane and, when its command says so (``--model``/``-m``), the model.
"""

from __future__ import annotations

from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "urn:striatum:verdict:v1"


def model_of(command: list[str] | None) -> str | None:
    """The model a lane's command names (``--model M``, ``--model=M``, ``-m M``)."""
    args = list(command or [])
    for index, arg in enumerate(args):
        if arg in ("--model", "-m") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return None


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


def statement(verdict: dict[str, Any], artifacts: list[dict[str, Any]],
              job: dict[str, Any] | None = None, lane: dict[str, Any] | None = None
              ) -> dict[str, Any] | None:
    """The statement of an accepted review, or None when it names no artifact (in-toto
    requires a subject)."""
    subjects = _subjects(verdict, artifacts, set((job or {}).get("consumes") or []))
    if not subjects:
        return None
    lane_name = (job or {}).get("lane")
    predicate: dict[str, Any] = {
        "run": verdict["run_id"], "job": verdict["job_id"],
        "iteration": verdict["iteration"], "verdict": verdict["verdict"],
        "reason": verdict["reason"], "fence": verdict["fence"],
        "reviewer": {"lane": lane_name,
                     "kind": (lane or {}).get("kind"),
                     "executable": ((lane or {}).get("command") or [None])[0],
                     "model": model_of((lane or {}).get("command"))},
    }
    if "judged" in verdict:  # the digests the reviewer saw (verdicts recorded since)
        predicate["judged"] = verdict["judged"]
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE,
            "predicate": predicate}
