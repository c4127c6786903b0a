"""A run's manifest: written into the target repository when the run ends.

It records the workflow digest, every artifact's sha256 and the repository
chain's head (seq and hash) right after the run's last event. Since it lives
in the repository, not the database, ``doctor --repo`` can tell when the
database has lost events that the manifest saw (a truncated tail).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .records import RunRow
from .store import Store, fetch, fetch_one

MANIFEST = "manifest.json"


def manifest_path(run: RunRow) -> Path:
    return Path(run.repo_path) / run.artifact_root / run.id / MANIFEST


def write_manifest(store: Store, run_id: str, head: tuple[int, str] | None = None) -> Path:
    def work(cur: Any) -> tuple[RunRow, list[Any], tuple[Any, Any]]:
        run = RunRow.from_row(fetch_one(cur, "get_run", {"run": run_id}))
        artifacts = fetch(cur, "latest_artifacts", {"run": run_id})
        last = fetch_one(cur, "run_last_event", {"run": run_id})
        audit = fetch_one(cur, "chain_head", {"chain": "audit"})
        return run, artifacts, (last, audit)

    run, artifacts, (last, audit) = store.transaction(work)
    seq, row_hash = head if head else (int(last[0]), str(last[1]))
    document = {
        "format": "striatum.manifest/1",
        "run": run.id,
        "workflow": run.workflow_name,
        "workflow_digest": run.workflow_digest,
        "status": run.status,
        "artifacts": [{"job": a[0], "iteration": a[1], "path": a[2], "stored_at": a[3],
                       "sha256": a[4], "bytes": a[5]} for a in artifacts],
        "chain": {"repo_id": run.repo_id, "seq": seq, "hash": row_hash},
        # The global audit chain's head too, so its tail is anchored as well.
        "audit": {"seq": int(audit[0]), "hash": str(audit[1])} if audit else None,
    }
    path = manifest_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # readers never see half a manifest
    return path
