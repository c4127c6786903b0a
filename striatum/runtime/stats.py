"""``stats``: how each reviewer did, across runs, from the record.

For each author lane → reviewer lane pair (the author being the lane of the job
a review revises, or of each job it needs when it revises none): the verdicts
the reviewer gave, how often it asked for a revision, how deep its loops went,
and the time from the author's first claim to the accept, per accepted review.
Checkpoints are counted by their decisions. Cost is not in the record: every
figure here comes from verdicts, jobs and leases, so ``cost_per_accepted`` is
null and ``cost_known`` false.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..compiler.ir import VERDICTS
from . import pinned

if TYPE_CHECKING:
    from .store import Store


@dataclass
class _Pair:
    verdicts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(VERDICTS, 0))
    depths: list[int] = field(default_factory=list)  # needs_revision rounds per review
    accepted_seconds: list[float] = field(default_factory=list)
    runs: set[str] = field(default_factory=set)

    def to_json(self, author: str, reviewer: str) -> dict[str, Any]:
        given = sum(self.verdicts.values())
        accepted = len(self.accepted_seconds)
        return {
            "author_lane": author, "reviewer_lane": reviewer, "runs": len(self.runs),
            "reviews": len(self.depths), "verdicts": dict(self.verdicts),
            "needs_revision_rate": _ratio(self.verdicts["needs_revision"], given),
            "revision_depth_mean": _ratio(sum(self.depths), len(self.depths)),
            "revision_depth_max": max(self.depths, default=0),
            "accepted": accepted,
            "seconds_per_accepted": _ratio(sum(self.accepted_seconds), accepted),
            "cost_per_accepted": None}


def _ratio(part: float, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def stats(store: Store, repo: str | None = None) -> dict[str, Any]:
    """Per author→reviewer lane pair and per checkpoint, over every run (of ``repo``)."""
    where = {"repo": os.path.realpath(repo) if repo else None}
    jobs = {(run, job): (lane, kind, status, chosen, started)
            for run, job, lane, kind, status, chosen, _, started
            in store.execute("stats_jobs", where)}
    rounds: dict[tuple[str, str], list[tuple[str, datetime]]] = defaultdict(list)
    digests: dict[str, str] = {}
    for run, job, _, digest, verdict, at in store.execute("stats_verdicts", where):
        rounds[(run, job)].append((verdict, at))
        digests[run] = digest
    pairs: dict[tuple[str, str], _Pair] = defaultdict(_Pair)
    for (run, job), given in rounds.items():
        workflow = pinned.compiled_of(store, digests[run]).jobs
        spec = workflow[job]
        authors = [spec.revise.target] if spec.revise else list(spec.needs)
        reviewer = jobs[(run, job)][0]
        accepted_at = next((at for verdict, at in given if verdict == "accept"), None)
        for author_lane in dict.fromkeys(workflow[a].lane for a in authors):
            pair = pairs[(author_lane, reviewer)]
            pair.runs.add(run)
            for verdict, _ in given:
                pair.verdicts[verdict] += 1
            pair.depths.append(sum(v == "needs_revision" for v, _ in given))
            # From the author's first claim: the whole loop, every revision included.
            began = min((jobs[(run, a)][4] for a in authors
                         if (run, a) in jobs and jobs[(run, a)][4] is not None), default=None)
            if accepted_at is not None and began is not None:
                pair.accepted_seconds.append((accepted_at - began).total_seconds())
    return {"pairs": [pair.to_json(a, r) for (a, r), pair in sorted(pairs.items())],
            "checkpoints": _checkpoints(jobs), "cost_known": False,
            "repo": where["repo"]}


def _checkpoints(jobs: dict[tuple[str, str], tuple[Any, ...]]) -> list[dict[str, Any]]:
    by_job: dict[tuple[str, str], dict[str, Any]] = {}
    for (_, job), (lane, kind, status, chosen, _) in jobs.items():
        if kind != "checkpoint":
            continue
        entry = by_job.setdefault((job, lane), {"job": job, "lane": lane, "runs": 0,
                                                "decided": 0, "waiting": 0, "skipped": 0,
                                                "choices": {}})
        entry["runs"] += 1
        if chosen:
            entry["decided"] += 1
            entry["choices"][chosen] = entry["choices"].get(chosen, 0) + 1
        elif status == "awaiting_decision":
            entry["waiting"] += 1
        elif status in ("skipped", "cancelled"):
            entry["skipped"] += 1
    for entry in by_job.values():
        entry["choices"] = dict(sorted(entry["choices"].items()))  # not the runs' order
    return [by_job[key] for key in sorted(by_job)]
