"""Finding ids: what a reviewer names in its verdict, and whether a round repeats the last.

A reviewer may list its findings with its verdict (``verdict.json``'s
``findings: [{"id": ...}, ...]``, or ``job verdict --finding ID``). Their ids
ride in the verdict's chained event (``findings``: sorted, each once); a
verdict without a list adds nothing. A ``needs_revision`` whose ids equal those
of the round that sent the work back the time before is a *repeat*: the
revision did not change what the reviewer objects to, so the loop is not
converging. The event then says ``repeated: true``; ``why`` and the inbox read
it back from the record, and a revise with ``on_repeat: escalate`` hands the
review to a human instead of spending another round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .store import fetch

if TYPE_CHECKING:
    from .engine import Transition
    from .store import Store


def finding_ids(raw: Any) -> tuple[str, ...] | None:
    """The ids of a verdict's findings (objects with an ``id``, or bare ids), sorted and
    each once; None when no list was given. Items without an id are not counted: a
    finding nobody named cannot be recognised in the next round."""
    if not isinstance(raw, list | tuple):
        return None
    ids = set()
    for item in raw:
        found = item.get("id") if isinstance(item, dict) else item
        if isinstance(found, str | int) and not isinstance(found, bool) and str(found).strip():
            ids.add(str(found).strip())
    return tuple(sorted(ids))


def repeats_last_round(tx: Transition, job_id: str, findings: tuple[str, ...] | None
                       ) -> bool:
    """Does this needs_revision name the same (non-empty) ids as the needs_revision that
    began the review's current pass? One read, only when the verdict names findings."""
    if not findings:
        return False
    rows = fetch(tx.cur, "last_review_round", {"run": tx.run.id, "job": job_id})
    if not rows:
        return False
    kind, data = rows[0]
    # Only the review's own revision round counts: a reset by an outer loop (or a
    # human's grant, which names no findings) starts the comparison afresh.
    return (kind == "job.reset" and data.get("by") == job_id
            and tuple(data.get("findings") or ()) == findings)


def verdict_data(findings: tuple[str, ...] | None, repeated: bool) -> dict[str, Any]:
    """What a verdict's event adds: nothing when the reviewer named no findings."""
    if findings is None:
        return {}
    return {"findings": list(findings), **({"repeated": True} if repeated else {})}


def run_repeats(store: Store, run_id: str, reviews: Iterable[str]) -> dict[str, list[str]]:
    """The reviews of a run whose latest verdict repeated the round before: their ids."""
    jobs = list(reviews)
    if not jobs:
        return {}
    rows = store.execute("run_review_rounds", {"run": run_id, "jobs": jobs})
    return {str(job): list(data.get("findings") or []) for job, _, data in rows
            if data and data.get("repeated") is True}
