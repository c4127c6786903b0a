"""The lease verbs an agent (or a worker) calls: claim, heartbeat, publish, verdict,
complete, release, fail.

Every verb that changes a job presents the lease's token. The token carries
the fence (the lease epoch, bumped by every claim) and a secret; a token
from an earlier epoch, or one whose lease expired by the database clock, is
refused with ``LeaseLost`` (exit 5) and changes nothing. So a worker that
lost its lease can never complete the job a second time.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import EXIT_LEASE_LOST, Conflict, NotFound, StriatumError, UsageError
from .audit import Event, append_events
from .engine import Transition, apply_verdict, attempt_failed, compiled_for
from .prompts import read_artifacts, render, scratch_dir, write_prompt
from .records import JobRow, RunRow
from .runs import artifact_dir, transition
from .store import Store, fetch, fetch_together, send, wrap_errors

DEFAULT_LEASE_SECONDS = 300
VERDICTS = ("accept", "needs_revision", "reject")


class LeaseLost(StriatumError):
    exit_code = EXIT_LEASE_LOST
    code = "lease_lost"


@dataclass
class Claim:
    run: str
    job: str
    kind: str
    lane: str
    token: str
    fence: int
    iteration: int
    attempt: int
    expires_at: datetime
    prompt_file: str
    artifact_dir: str
    produces: list[str]
    # What a worker needs to start the lane, so it reads nothing more (not in the JSON).
    run_row: RunRow = field(repr=False)
    spec: dict[str, Any] = field(repr=False)  # the pinned job
    lane_spec: dict[str, Any] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "job": self.job, "kind": self.kind, "lane": self.lane,
                "lease": self.token, "fence": self.fence, "iteration": self.iteration,
                "attempt": self.attempt, "expires_at": self.expires_at.isoformat(),
                "prompt_file": self.prompt_file, "artifact_dir": self.artifact_dir,
                "produces": self.produces}


def verify(row: JobRow, token: str, where: str) -> None:
    if row.status != "leased" or row.lease_token != token:
        raise LeaseLost(f"the lease on {where} is no longer yours: the job is now "
                        f"{row.status!r} at fence {row.fence}",
                        hint="stop work on this job; `striatum job claim` takes a new one",
                        state=row.status, fence=row.fence)
    if row.lease_expired:
        raise LeaseLost(f"the lease on {where} expired (no heartbeat in time)",
                        hint="heartbeat more often than the lease length; claim again",
                        state=row.status, fence=row.fence)


def sweep_expired(store: Store, run_id: str | None = None) -> int:
    """Return expired leases' jobs to ready (or fail them when attempts are spent)."""
    swept = 0
    for (expired_run,) in store.execute("expired_runs", {"run": run_id}):
        def change(tx: Transition) -> None:
            nonlocal swept
            for job_id, row in tx.load_all().items():
                if row.status == "leased" and row.lease_expired:
                    attempt_failed(tx, job_id, "expire",
                                   f"lease of {row.lease_owner} expired without a heartbeat")
                    swept += 1

        transition(store, expired_run, change)
    return swept


def claim(store: Store, run_id: str | None, *, owner: str, lane: str | None = None,
          lanes: list[str] | None = None, lane_kinds: list[str] | None = None,
          lease_seconds: int = DEFAULT_LEASE_SECONDS, sweep: bool = True,
          check_run: bool = True) -> Claim | None:
    """Lease the first ready job of ``run_id`` (of any running run when None).

    ``check_run``: when nothing is ready, tell a run that does not exist (NotFound) from
    one with nothing to do (None), at the cost of a second round trip."""
    if sweep:
        sweep_expired(store, run_id)
    wanted = lanes if lanes is not None else ([lane] if lane else None)

    # One statement (a function in the database) finds, locks and leases the job,
    # records the lease and appends the event: one round trip, the commit included.
    found = store.call("claim_job", {
        "run": run_id, "lanes": wanted, "lane_kinds": lane_kinds, "owner": owner,
        "secret": secrets.token_hex(16), "lease_seconds": lease_seconds})
    if not found:
        if check_run and run_id is not None and store.execute("get_run", {"run": run_id}) == []:
            raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
        return None
    row = JobRow.from_row(found[0][:19])
    run = RunRow.from_row(found[0][19:-1])
    now = found[0][-1]
    prompt_file, directory, job, lane_spec = _prepare_attempt(store, run, row)
    return Claim(run.id, row.job_id, row.kind, row.lane, row.lease_token or "", row.fence,
                 row.iteration, row.attempt, now + timedelta(seconds=lease_seconds),
                 str(prompt_file), str(directory / "out"), list(job["produces"]), run, job,
                 lane_spec)


def _prepare_attempt(store: Store, run: RunRow, row: JobRow
                     ) -> tuple[Path, Path, dict[str, Any], dict[str, Any]]:
    """Render the attempt's prompt. The pinned workflow is cached by digest, and the
    artifacts and the last verdict are read only when the prompt can use them."""
    with store.conn.cursor() as cur, wrap_errors():
        compiled = compiled_for(cur, run.workflow_digest)
    jobs = compiled["workflow"]["jobs"]
    # A job's position is its index in the pinned workflow (a scan only if it is not).
    job = jobs[row.position] if row.position < len(jobs) else {}
    if job.get("id") != row.job_id:
        job = next(j for j in jobs if j["id"] == row.job_id)
    stored: list[tuple[str, str]] = []
    if job["consumes"]:
        stored = [(a[2], a[3]) for a in store.execute("latest_artifacts", {"run": run.id})
                  if a[2] in job["consumes"]]
    feedback = None
    if row.iteration > 0:
        regions = [j["id"] for j in jobs if j["revise"]]
        last = store.execute("last_verdict", {"run": run.id, "jobs": regions})
        feedback = str(last[0][0]) if last else None
    text = render(run, row, job, artifacts=read_artifacts(run.repo_path, stored),
                  feedback=feedback)
    directory = scratch_dir(run, row)
    lane = compiled["workflow"]["lanes"][job["lane"]]
    return write_prompt(directory, text), directory, job, lane


def heartbeat(store: Store, run_id: str, job_id: str, token: str,
              lease_seconds: int = DEFAULT_LEASE_SECONDS) -> datetime:
    rows = store.execute("heartbeat", {"run": run_id, "job": job_id, "token": token,
                                       "lease_seconds": lease_seconds})
    if not rows:
        state = store.execute("lock_job_unlocked", {"run": run_id, "job": job_id})
        if not state:
            raise NotFound(f"no job {run_id}/{job_id}")
        verify(JobRow.from_row(state[0]), token, f"{run_id}/{job_id}")
        raise LeaseLost(f"the lease on {run_id}/{job_id} is no longer yours")
    expires: datetime = rows[0][0]
    return expires


def _artifact_name(source: Path, name: str | None) -> str:
    chosen = name or source.name
    parts = Path(chosen).parts
    if not chosen or Path(chosen).is_absolute() or ".." in parts or "\x00" in chosen:
        raise UsageError(f"artifact name {chosen!r} must be a relative path inside the run",
                         hint="use --as NAME, e.g. --as draft.md")
    return Path(chosen).as_posix()


Staged = tuple[Path, str]  # a file to publish and its artifact name


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


def _store_artifact(cur: Any, run: RunRow, row: JobRow, staged: Staged
                    ) -> tuple[dict[str, Any], Event]:
    """Copy the file into the run's artifacts (hashing it) and queue its record; the
    caller appends the event."""
    src, artifact = staged
    target = artifact_dir(run, row.job_id, row.iteration) / artifact
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        digest, size = _copy_hashing(src, target)
    except OSError as exc:  # a name too long for the filesystem, a full disk
        raise UsageError(f"cannot store the artifact {artifact[:200]!r}: {exc.strerror}",
                         hint="use a shorter --as name, or free space in the repository"
                         ) from exc
    stored_at = os.path.relpath(target, run.repo_path)
    send(cur, "upsert_artifact", {"run": run.id, "job": row.job_id, "iteration": row.iteration,
                                  "path": artifact, "stored_at": stored_at,
                                  "sha256": digest, "bytes": size, "fence": row.fence})
    record = {"path": artifact, "sha256": digest, "bytes": size, "stored_at": stored_at,
              "iteration": row.iteration}
    return record, Event("artifact.publish", run.id, row.job_id, row.state(), record)


def publish(store: Store, run_id: str, job_id: str, token: str, source: str,
            name: str | None = None) -> dict[str, Any]:
    staged = stage(source, name)
    where = f"{run_id}/{job_id}"

    def work(cur: Any) -> dict[str, Any]:
        # The job (locked), its run and the clock in one round trip; the record and the
        # event travel with the COMMIT.
        jobs, run_rows, clock = fetch_together(
            cur, ("lock_job", {"run": run_id, "job": job_id}), ("get_run", {"run": run_id}),
            ("now", {}))
        if not jobs or not run_rows:
            raise NotFound(f"no job {where}")
        found, run_row, now = jobs[0], run_rows[0], clock[0][0]
        row = JobRow.from_row(found)
        verify(row, token, where)
        run = RunRow.from_row(run_row)
        record, event = _store_artifact(cur, run, row, staged)
        append_events(cur, run.repo_id, [event], now)
        return record

    return store.transaction(work, pipelined=True)


def _publish_in(tx: Transition, row: JobRow, files: Iterable[Staged]) -> None:
    """Publish within a transition, its events before the transition's own."""
    for staged in files:
        tx.events.append(_store_artifact(tx.cur, tx.run, row, staged)[1])


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    tmp = target.with_name(target.name + ".part")
    with open(source, "rb") as reader, open(tmp, "wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            writer.write(chunk)
            size += len(chunk)
    shutil.copymode(source, tmp)
    os.replace(tmp, target)
    return digest.hexdigest(), size


def _missing_artifacts(tx: Transition, job_id: str) -> list[str]:
    produces = tx.wg.jobs[job_id].produces
    if not produces:
        return []
    row = tx.jobs[job_id]
    published = {r[0] for r in fetch(tx.cur, "job_artifacts", {
        "run": tx.run.id, "job": job_id, "iteration": row.iteration})}
    return [p for p in produces if p not in published]


def _leased(tx: Transition, job_id: str, token: str) -> JobRow:
    row = tx.row(job_id)
    if row is None:
        raise NotFound(f"run {tx.run.id} has no job {job_id!r}")
    verify(row, token, f"{tx.run.id}/{job_id}")
    return row


def verdict(store: Store, run_id: str, job_id: str, token: str, outcome: str,
            reason: str, *, files: Iterable[Staged] = ()) -> Transition:
    """Record a review's verdict (publishing ``files`` first, in the same transaction)."""
    if outcome not in VERDICTS:
        raise UsageError(f"verdict {outcome!r} is not one of {', '.join(VERDICTS)}")
    staged = tuple(files)  # a retried transaction publishes them again

    def change(tx: Transition) -> None:
        row = _leased(tx, job_id, token)
        _publish_in(tx, row, staged)
        if row.kind != "review":
            raise Conflict(f"{job_id!r} is a {row.kind}; only a review takes a verdict",
                           hint="use `striatum job complete` for a task")
        missing = _missing_artifacts(tx, job_id) if outcome == "accept" else []
        if missing:
            raise Conflict(f"{job_id!r} must publish {', '.join(missing)} before accepting",
                           hint="`striatum job publish --artifact FILE`")
        send(tx.cur, "insert_verdict", {"run": run_id, "job": job_id,
                                         "iteration": row.iteration, "verdict": outcome,
                                         "reason": reason, "fence": row.fence})
        apply_verdict(tx, job_id, outcome, reason)

    return transition(store, run_id, change, [job_id], dependents=outcome == "accept")


def complete(store: Store, run_id: str, job_id: str, token: str, *,
             files: Iterable[Staged] = ()) -> Transition:
    """Complete a task (publishing ``files`` first, in the same transaction)."""
    from .engine import advance

    staged = tuple(files)  # a retried transaction publishes them again

    def change(tx: Transition) -> None:
        row = _leased(tx, job_id, token)
        _publish_in(tx, row, staged)
        if row.kind == "review":
            raise Conflict(f"{job_id!r} is a review: it ends with a verdict",
                           hint="`striatum job verdict accept|needs_revision|reject`")
        missing = _missing_artifacts(tx, job_id)
        if missing:
            raise Conflict(f"{job_id!r} has not published {', '.join(missing)}",
                           hint="`striatum job publish --artifact FILE` first")
        tx.job(job_id, "complete")
        advance(tx, [job_id])

    return transition(store, run_id, change, [job_id], dependents=True)


def release(store: Store, run_id: str, job_id: str, token: str) -> Transition:
    def change(tx: Transition) -> None:
        _leased(tx, job_id, token)
        tx.job(job_id, "release", {"reason": "handed back by its holder"})

    return transition(store, run_id, change, [job_id])


def fail(store: Store, run_id: str, job_id: str, token: str, reason: str, *,
         files: Iterable[Staged] = ()) -> Transition:
    """Give up this attempt (publishing ``files`` first, in the same transaction)."""
    staged = tuple(files)  # a retried transaction publishes them again

    def change(tx: Transition) -> None:
        row = _leased(tx, job_id, token)
        _publish_in(tx, row, staged)
        attempt_failed(tx, job_id, "retry", reason)

    return transition(store, run_id, change, [job_id])

