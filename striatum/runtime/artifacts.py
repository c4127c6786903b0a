"""Artifacts: files a job publishes into the run's folder of the target repository,
each recorded with its sha256 in the same transaction as its event.

A file is checked (``stage``) before any transaction starts; copying it in
(``store_artifact``) hashes it on the way and replaces the target atomically, so
a reader never sees half an artifact.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Conflict, NotFound, UsageError
from .audit import Event
from .records import JobRow, RunRow
from .store import send

if TYPE_CHECKING:
    import psycopg

    from .store import Store

Staged = tuple[Path, str]  # a file to publish and its artifact name


def artifact_dir(run: RunRow, job_id: str, iteration: int) -> Path:
    return Path(run.repo_path) / run.artifact_root / run.id / job_id / f"i{iteration}"


def _artifact_name(source: Path, name: str | None) -> str:
    chosen = name or source.name
    parts = Path(chosen).parts
    if not chosen or Path(chosen).is_absolute() or ".." in parts or "\x00" in chosen:
        raise UsageError(f"artifact name {chosen!r} must be a relative path inside the run",
                         hint="name it with a relative path, e.g. draft.md")
    return Path(chosen).as_posix()


def stage(source: str, name: str | None = None) -> Staged:
    """Check a file to publish before any transaction starts."""
    src = Path(source)
    try:
        found = src.is_file()
    except OSError as exc:  # a name too long for the filesystem, say
        raise UsageError(f"cannot publish {source[:200]!r}: {exc.strerror}",
                         hint="pass the path of a readable file") from exc
    if not found:
        raise NotFound(f"no file {source} to publish")
    return src, _artifact_name(src, name)


def store_artifact(cur: psycopg.Cursor[Any], run: RunRow, row: JobRow, staged: Staged, *,
                   iteration: int | None = None, fence: int | None = None
                   ) -> tuple[dict[str, Any], Event]:
    """Copy the file into the run's artifacts (hashing it) and queue its record; the
    caller appends the event. ``iteration`` and ``fence``: those of an attempt whose
    lease has ended (the job's own by default)."""
    src, artifact = staged
    iteration = row.iteration if iteration is None else iteration
    fence = row.fence if fence is None else fence
    target = artifact_dir(run, row.job_id, iteration) / artifact
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = _copy_hashing(src, target)
    except OSError as exc:  # a name too long for the filesystem, a full disk
        raise UsageError(f"cannot store the artifact {artifact[:200]!r}: {exc.strerror}",
                         hint="use a shorter artifact name, or free space in the repository"
                         ) from exc
    stored_at = os.path.relpath(target, run.repo_path)
    send(cur, "upsert_artifact", {"run": run.id, "job": row.job_id, "iteration": iteration,
                                  "path": artifact, "stored_at": stored_at,
                                  "sha256": digest, "bytes": size, "fence": fence})
    record = {"path": artifact, "sha256": digest, "bytes": size, "stored_at": stored_at,
              "iteration": iteration}
    return record, Event("artifact.publish", run.id, row.job_id, row.state(), record)


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    tmp = target.with_name(target.name + ".part")
    try:
        with open(source, "rb") as reader, open(tmp, "wb") as writer:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                writer.write(chunk)
                size += len(chunk)
        shutil.copymode(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave half a copy behind
        raise
    return digest.hexdigest(), size


def read_artifact(store: Store, run_id: str, path: str) -> tuple[bytes, dict[str, Any]]:
    """The bytes of the newest published version of artifact ``path`` of the run, and its
    record; refused (Conflict) when the file no longer holds what was published."""
    run = store.read(RunRow, "run_record", {"run": run_id})
    if run is None:
        raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
    found = {row[2]: row for row in store.execute("latest_artifacts", {"run": run_id})}
    if path not in found:
        raise NotFound(f"run {run_id} has no artifact {path!r}",
                       hint="its artifacts: " + (", ".join(sorted(found)) or "none yet"))
    job_id, iteration, _, stored_at, sha256, size = found[path]
    record = {"path": path, "job": job_id, "iteration": iteration, "stored_at": stored_at,
              "sha256": sha256, "bytes": size}
    try:
        data = (Path(run.repo_path) / stored_at).read_bytes()
    except OSError as exc:
        raise NotFound(f"artifact {path!r} of run {run_id} is recorded at {stored_at}, which "
                       f"cannot be read: {exc.strerror}",
                       hint="`striatum doctor` checks the run's record") from exc
    if hashlib.sha256(data).hexdigest() != sha256:
        raise Conflict(f"artifact {path!r} of run {run_id} at {stored_at} no longer holds what "
                       "was published (its sha256 differs from the record's)",
                       hint="something changed the file after it was published", **record)
    return data, record
