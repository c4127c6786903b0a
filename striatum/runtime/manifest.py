"""A run's manifest: written into the target repository when the run ends.

It records the workflow digest, every artifact's sha256 and the repository
chain's head (seq and hash) right after the run's last event. Since it lives
in the repository, not the database, ``doctor --repo`` can tell when the
database has lost events that the manifest saw (a truncated tail).

It is written in two steps so that no crash can leave an ended run without
one: the transaction that ends the run writes ``manifest.json.pending`` from
what it is about to commit (the chain head it appended), and after the COMMIT
the file is renamed to ``manifest.json``. A process that dies in between
leaves the pending file; the next worker's sweep promotes it once it has
checked that the database holds exactly that head. A manifest is never
rebuilt from the database alone: that would vouch for whatever the database
holds by then, tampered or not.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .records import RunRow
from .store import Store, fetch

if TYPE_CHECKING:
    from .engine import Transition

MANIFEST = "manifest.json"
PENDING = "manifest.json.pending"


def manifest_path(run: RunRow) -> Path:
    return Path(run.repo_path) / run.artifact_root / run.id / MANIFEST


def run_artifacts(tx: Transition) -> list[Any]:
    """The newest version of every artifact of the run, for its manifest (read before
    the transaction takes the audit chain's head, which it then holds to the COMMIT)."""
    return fetch(tx.cur, "latest_artifacts", {"run": tx.run.id})


def prepare_manifest(tx: Transition, artifacts: list[Any], audit: tuple[int, str]) -> None:
    """Inside the transaction that ends the run, before its COMMIT: write the pending
    manifest with the heads this transaction appended (its last event, its audit row)."""
    assert tx.head is not None, "the ending transition appended no event"
    run = tx.run
    document = {
        "format": "striatum.manifest/1",
        "run": run.id,
        "workflow": run.workflow_name,
        "workflow_digest": run.workflow_digest,
        "status": run.status,
        # Which database holds the record the chain heads below are in (doctor, run
        # against another, says so once rather than calling this run lost).
        "database": fetch(tx.cur, "database_identity")[0][0],
        "artifacts": [{"job": a[0], "iteration": a[1], "path": a[2], "stored_at": a[3],
                       "sha256": a[4], "bytes": a[5]} for a in artifacts],
        "chain": {"repo_id": run.repo_id, "seq": tx.head[0], "hash": tx.head[1]},
        # The global audit chain's head too, so its tail is anchored as well.
        "audit": {"seq": audit[0], "hash": audit[1]},
    }
    pending = manifest_path(run).with_name(PENDING)
    pending.parent.mkdir(parents=True, exist_ok=True)
    tmp = pending.with_name(PENDING + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, pending)  # readers never see half a manifest


def promote(run: RunRow) -> Path:
    """After the COMMIT: the pending manifest becomes the manifest (unless a worker's
    sweep promoted it first)."""
    path = manifest_path(run)
    _rename(path.with_name(PENDING), path)
    return path


def _rename(pending: Path, manifest: Path) -> None:
    try:
        os.replace(pending, manifest)
    except FileNotFoundError:
        if not manifest.exists():  # promoted meanwhile by the other side: nothing to do
            raise


def backfill(store: Store, run_id: str | None = None, within_seconds: int = 3600) -> int:
    """Promote the pending manifest of every run that ended lately without a manifest,
    when the database holds exactly the head it recorded as the run's last event."""
    promoted = 0
    for found, root, repo in store.execute("recently_ended_runs", {
            "run": run_id, "seconds": within_seconds}):
        folder = Path(repo) / root / found
        pending = folder / PENDING
        if (folder / MANIFEST).exists() or not pending.exists():
            continue
        try:
            document: Any = json.loads(pending.read_text(encoding="utf-8"))
            chain = document["chain"]
            seq, digest = int(chain["seq"]), str(chain["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # unreadable: left for doctor to report
        last = store.execute("run_last_event", {"run": found})
        if last and (int(last[0][0]), str(last[0][1])) == (seq, digest):
            _rename(pending, folder / MANIFEST)
            promoted += 1
    return promoted
