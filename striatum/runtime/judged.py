"""What a review's verdict judged, and whether it still holds when a job uses it.

A verdict records the digests of what its reviewer saw: the sha256 of each
artifact it consumed, as published when its prompt was rendered (with the diff of
each upstream job that worked in a worktree), and, when upstream jobs change the
shared working tree, the git tree id of that tree when the reviewer was claimed (the
tree it was asked to judge; a reviewer that changed it is recorded as having done so).

A job that needs an accepted review checks those digests when it is claimed,
before its lane starts. If they hold, an event (``verdict.used``) records the
digest the job ran on; ``doctor`` checks it against the verdict's. If not, the
accept **lapses**: the job goes back to pending, and the reviewer runs again
within its loop's revision budget, or the run blocks for a human.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json
from ..errors import LeaseLost
from .audit import Event, verb
from .engine import advance
from .prompts import scratch
from .runs import transition
from .store import fetch
from .worktrees import checkout

if TYPE_CHECKING:
    from ..compiler.compiled import CompiledWorkflow
    from ..compiler.graph import WorkflowGraph
    from .engine import Transition
    from .records import JobRow, RunRow
    from .store import Store

USED = "verdict.used"


def digest(judged: dict[str, Any]) -> str:
    """The one digest that names a whole judgement (sha256 of the canonical JSON of its
    artifacts and tree: what the reviewer judged, not the tree it left behind)."""
    return hashlib.sha256(canonical_json(
        {key: judged[key] for key in ("artifacts", "tree") if key in judged})).hexdigest()


def judged_paths(wg: WorkflowGraph, review: str) -> list[str]:
    """The artifacts a review judges: those it consumes, and the diff of every upstream
    job that changes the repository in a worktree."""
    spec = wg.jobs[review]
    upstream = wg.ids_of(wg.ancestors_bits[review] & ~wg.bit(review))
    diffs = [f"changes/{job}.diff" for job in upstream
             if wg.jobs[job].writes and wg.jobs[job].isolation == "worktree"]
    return [*spec.consumes, *diffs]


def judges_tree(wg: WorkflowGraph, review: str) -> bool:
    """Whether an upstream job of the review changes the shared working tree."""
    upstream = wg.ids_of(wg.ancestors_bits[review] & ~wg.bit(review))
    return any(wg.jobs[job].writes and wg.jobs[job].isolation != "worktree"
               for job in upstream)


def remember_seen(path: Path, wg: WorkflowGraph, run: RunRow, review: str,
                  latest: list[Any]) -> None:
    """Write what the review's prompt was rendered with (``latest``: the run's
    latest_artifacts rows) and the tree it runs against at ``path``, beside the prompt,
    for its verdict to record."""
    wanted = set(judged_paths(wg, review))
    seen: dict[str, Any] = {"artifacts": {str(row[2]): str(row[4]) for row in latest
                                          if row[2] in wanted}}
    if judges_tree(wg, review):
        seen["tree"] = tree_id(Path(run.repo_path), run.artifact_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(seen, sort_keys=True), encoding="utf-8")


def tree_id(repo: Path, artifact_root: str) -> str | None:
    """The git tree of the working tree as it is (uncommitted changes and untracked files
    included, ignored files not), without striatum's own folders; None outside git or
    when git cannot say. Built in a copy of the index: the user's is left alone."""
    if checkout(str(repo)) is None:
        return None
    try:
        found = subprocess.run(["git", "rev-parse", "--git-path", "index"], cwd=repo,
                               capture_output=True, text=True, timeout=60, check=True)
        with tempfile.TemporaryDirectory() as scratch:
            index = Path(scratch) / "index"
            real = repo / found.stdout.strip()
            if real.is_file():
                shutil.copyfile(real, index)  # its stat cache spares rehashing clean files
            env = {**os.environ, "GIT_INDEX_FILE": str(index)}
            subprocess.run(["git", "add", "-A", "--", ":/", ":(exclude).striatum",
                            f":(exclude){artifact_root}"], cwd=repo, env=env,
                           capture_output=True, timeout=600, check=True)
            tree = subprocess.run(["git", "write-tree"], cwd=repo, env=env,
                                  capture_output=True, text=True, timeout=600, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return tree.stdout.strip() or None


def _seen(tx: Transition, row: JobRow) -> dict[str, Any]:
    """What the review's prompt was rendered with, as ``remember_seen`` wrote it (an
    older file holds the artifacts alone; none: the artifacts as published now)."""
    try:
        seen = json.loads(scratch(tx.run, row).seen.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        wanted = set(judged_paths(tx.wg, row.job_id))
        return {"artifacts": {str(a[2]): str(a[4]) for a in fetch(
            tx.cur, "latest_artifacts", {"run": tx.run.id}) if a[2] in wanted}}
    return seen if isinstance(seen.get("artifacts"), dict) else {"artifacts": seen}


def of_verdict(tx: Transition, row: JobRow) -> dict[str, Any]:
    """What the review holding ``row`` judged: the artifacts its prompt was rendered with,
    and the tree it was claimed against. A reviewer that changed that tree judged its
    own edits no more than anyone did: the tree it left is recorded beside
    (``tree_at_verdict``), and the accept lapses when the job after it is claimed."""
    seen = _seen(tx, row)
    judged: dict[str, Any] = {"artifacts": seen["artifacts"]}
    if judges_tree(tx.wg, row.job_id):
        now = tree_id(Path(tx.run.repo_path), tx.run.artifact_root)
        judged["tree"] = seen.get("tree", now)  # claimed before trees were kept
        if now != judged["tree"]:
            judged["tree_at_verdict"] = now
    return judged


def _now(store: Store, run: RunRow, judged: dict[str, Any], latest: dict[str, str],
         tree: list[str | None]) -> dict[str, Any]:
    """The same judgement made of what the run holds now."""
    found: dict[str, Any] = {"artifacts": {path: latest.get(path)
                                           for path in judged.get("artifacts", {})}}
    if "tree" in judged:
        if not tree:
            tree.append(tree_id(Path(run.repo_path), run.artifact_root))
        found["tree"] = tree[0]
    return found


def _changed(judged: dict[str, Any], now: dict[str, Any]) -> str:
    """In words, what moved between a verdict and now."""
    said = []
    for path, sha in judged.get("artifacts", {}).items():
        current = now["artifacts"].get(path)
        if current is None:
            said.append(f"{path} is no longer published")
        elif current != sha:
            said.append(f"{path} was republished (sha256 {sha[:12]}... judged, "
                        f"{current[:12]}... now)")
    if "tree" in judged and now.get("tree") != judged["tree"]:
        by = " during the review (edits no one judged)" \
            if now.get("tree") == judged.get("tree_at_verdict") else ""
        said.append(f"the repository's tree moved{by} ({str(judged['tree'])[:12]}... "
                    f"judged, {str(now.get('tree'))[:12]}... now)")
    return "; ".join(said)


def bind(store: Store, run: RunRow, row: JobRow, workflow: CompiledWorkflow) -> str | None:
    """Check, for the job just claimed (``row``, leased), every accept it needs against
    what the run holds now: None when all hold (recorded as ``verdict.used``), else the
    lapse's reason, with the job returned to pending and each lapsed review run again
    or handed to a human."""
    wg = workflow.graph
    reviews = [need for need in wg.jobs[row.job_id].needs if wg.jobs[need].kind == "review"]
    if not reviews:
        return None
    accepted = store.execute("accepted_judged", {"run": run.id, "jobs": reviews})
    if not accepted:
        return None  # no accept with digests: recorded before them, or decided by a human
    latest = {str(a[2]): str(a[4]) for a in store.execute("latest_artifacts", {"run": run.id})}
    tree: list[str | None] = []
    uses: dict[str, tuple[int, str]] = {}  # review -> (its pass, the digest found now)
    lapsed: dict[str, str] = {}  # review -> what moved
    for review, iteration, text in accepted:
        judged = json.loads(text)
        now = _now(store, run, judged, latest, tree)
        uses[str(review)] = (int(iteration), digest(now))
        if digest(now) != digest(judged):
            lapsed[str(review)] = _changed(judged, now)
    reason = "; ".join(f"the accept of {review} lapsed: {what}"
                       for review, what in lapsed.items())
    record_binding(store, run.id, row.job_id, row.lease_token or "", uses, lapsed, reason)
    return reason or None


@verb("job bind")
def record_binding(store: Store, run_id: str, job_id: str, token: str,
                   uses: dict[str, tuple[int, str]], lapsed: dict[str, str], reason: str
                   ) -> None:
    """The check's outcome, in one transaction over the run while the job's lease is still
    the claim's: a ``verdict.used`` per accept when none lapsed, else the lapse. Its own
    verb, so the audit tells a claim's lease from what its check then recorded."""
    def change(tx: Transition) -> None:
        held = tx.row(job_id)
        if held is None or held.status != "leased" or held.lease_token != token:
            raise LeaseLost(f"the lease on {run_id}/{job_id} ended before its start")
        if lapsed:
            lapse(tx, job_id, lapsed, reason)
            return
        for review, (iteration, found) in uses.items():
            tx.events.append(Event(USED, run_id, job_id, held.state(), {
                "review": review, "iteration": iteration, "judged": found}))

    transition(store, run_id, change, [job_id, *uses])


def lapse(tx: Transition, job_id: str, lapsed: dict[str, str], reason: str) -> None:
    """The held ``job_id`` does not start on the lapsed accepts: it goes back to pending
    (its pass never began, so it is not counted), and so does every other job that
    needs a lapsed review and had not started; each lapsed review runs again, spending
    one revision of its loop's budget, or, with the budget spent (or a job already
    started on the accept), waits for a human and blocks the run."""
    wg = tx.wg
    dependents = [d for review in lapsed for d in wg.succ[review]]
    tx.load(dependents)
    started = {review: [d for d in wg.succ[review] if d != job_id
                        and tx.jobs[d].status not in ("pending", "ready")]
               for review in lapsed}
    for dependent in dict.fromkeys(dependents):
        row = tx.jobs[dependent]
        if dependent == job_id or row.status == "ready":
            tx.job(dependent, "reset", {"lapsed": list(lapsed), "reason": reason},
                   executions=row.executions - 1)
    for review, what in lapsed.items():
        row = tx.jobs[review]
        spec = wg.jobs[review]
        budget = spec.revise.max if spec.revise else 0
        why = f"its accept lapsed: {what}"
        data = {"lapsed": what, "budget": budget, "revisions_used": row.revisions_used}
        if row.revisions_used < budget and not started[review]:
            tx.job(review, "reset", data, iteration=row.iteration + 1, attempt=0,
                   revisions_used=row.revisions_used + 1, verdict="lapsed", reason=why)
            continue
        tx.job(review, "reset", data, iteration=row.iteration + 1, attempt=0,
               verdict="lapsed", reason=why)
        tx.job(review, "ready")
        tx.job(review, "await_decision")
        if tx.run.status == "running":
            tx.run_to("block", {"job": review, "reason": why}, blocked_on=review)
    advance(tx)


def misbound(rows: Iterable[Sequence[Any]], needs: Callable[[str, str], Sequence[str]]
             ) -> tuple[int, list[str]]:
    """Over the events of ``doctor_verdict_uses`` (in chain order; ``needs(run, job)``:
    what the job needs), how many job starts ran on the digests their accepts name, and
    in words each start that did not: one whose ``verdict.used`` names another digest, or
    one that completed on an accept it never checked."""
    accepted: dict[tuple[str, str], str] = {}  # (run, review) -> digest of its accept
    waiting: dict[tuple[str, str, int], dict[str, str]] = {}  # a claim's accepts to check
    bound, problems = 0, []
    for run, job, kind, seq, text, fence in rows:
        data = json.loads(text) if text else {}
        data = data if isinstance(data, dict) else {}
        held = (str(run), str(job), int(fence) if fence is not None else -1)
        where = f"run {run}: event seq {seq}: {job} (fence {fence})"
        if kind == "job.claim":
            wanted = {r: accepted[(held[0], r)] for r in needs(held[0], held[1])
                      if (held[0], r) in accepted}
            if wanted:
                waiting[held] = wanted
        elif kind == USED:
            review = str(data.get("review"))
            want = waiting.get(held, {}).pop(review, None)
            if want is None:
                problems.append(f"{where} says it used the accept of {review}, which no "
                                "accept with digests stood for at its claim")
            elif want != data.get("judged"):
                problems.append(f"{where} ran on digest {str(data.get('judged'))[:12]}..., "
                                f"but the accept of {review} names {want[:12]}...")
            else:
                bound += 1
        else:
            left = waiting.pop(held, {})
            if left and kind in ("job.complete", "job.escalate"):
                problems.append(f"{where} ran on the accept of {', '.join(sorted(left))} "
                                "without checking its digests")
            # An accept binds, and so does a needs_revision accepted by on_exhausted.
            if (kind == "job.complete" and isinstance(data.get("judged"), dict)
                    and (data.get("verdict") == "accept" or data.get("exhausted"))):
                accepted[(held[0], held[1])] = digest(data["judged"])
            else:
                accepted.pop((held[0], held[1]), None)
    return bound, problems


__all__ = ["USED", "bind", "digest", "judged_paths", "judges_tree", "lapse",
           "misbound", "of_verdict", "record_binding", "remember_seen", "tree_id"]
