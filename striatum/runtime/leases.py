"""The lease verbs an agent (or a worker) calls: claim, heartbeat, publish, verdict,
complete, release, fail; and the sweep that returns expired leases.

Every verb that changes a job presents the lease's token. The token carries
the fence (the lease epoch, bumped by every claim) and a secret; a token
from an earlier epoch, or one whose lease expired by the database clock, is
refused with ``LeaseLost`` (exit 5) and changes nothing. So a worker that
lost its lease can never complete the job a second time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..compiler.ir import VERDICTS
from ..errors import (
    AttemptNotPrepared,
    Conflict,
    LeaseLost,
    NotFound,
    PromptError,
    StoreError,
    StoreUnavailable,
    UsageError,
)
from . import audit, budgets, changes, judged, pinned
from .artifacts import Staged, stage, store_artifact
from .audit import append_events, verb
from .completion import Completed, complete_in_one
from .engine import (
    Transition,
    advance,
    apply_verdict,
    attempt_failed,
    block_on,
    missing_artifacts,
)
from .findings import finding_ids
from .prompts import make_out, prepare_prompt, scratch, scratch_of
from .records import JobRow, RunRow, from_json
from .runs import Idle, idle, transition
from .store import Store, fetch, fetch_together, send

if TYPE_CHECKING:
    from datetime import datetime

    import psycopg

    from ..compiler.compiled import CompiledWorkflow

DEFAULT_LEASE_SECONDS = 300
_TOKEN = re.compile(r"(\d+)-[0-9a-f]{32}")


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
    pinned: CompiledWorkflow = field(repr=False)
    # The attempt.start data the claim's statement chained with it (``starts.known_starts``),
    # or None: the worker chains the start itself before the lane runs.
    started: str | None = field(default=None, repr=False)
    claimed: ClassVar[bool] = True  # an Idle is the other answer to a claim

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run, "job": self.job, "kind": self.kind, "lane": self.lane,
                "lease": self.token, "fence": self.fence, "iteration": self.iteration,
                "attempt": self.attempt, "expires_at": self.expires_at.isoformat(),
                "prompt_file": self.prompt_file, "artifact_dir": self.artifact_dir,
                "produces": self.produces}


@dataclass
class Unprepared:
    """A job that was leased, but whose attempt could not be prepared: the attempt was
    failed with ``reason``. ``final``: its prompt cannot render with what the run has,
    so the job failed without a retry; otherwise (its scratch folder could not be
    written, say) the job is retried, by this claimer once it has waited or by another.
    ``status`` "lapsed": an accept it needs lapsed, so it went back to pending unstarted
    (``final`` then: the claimer may take another job at once)."""

    run: str
    job: str
    reason: str
    final: bool
    status: str = "failed"


def verify(row: JobRow, token: str, where: str) -> None:
    """Refuse anything but the job's current, live lease, saying which case it is."""
    if row.status != "leased" or row.lease_token != token:
        shape = _TOKEN.fullmatch(token)
        if shape is None:
            raise LeaseLost(f"{token[:40]!r} is not a lease token of {where} (a lease token "
                            "is what `striatum job claim` printed, e.g. '3-5f0c...')",
                            hint="pass the token of your claim (STRIATUM_LEASE in a lane)",
                            state=row.status, fence=row.fence)
        fence = int(shape.group(1))
        # No claim gives fence 0 or one the job has not reached; a token of the current
        # fence whose secret differs is not the lease either.
        if fence == 0 or fence > row.fence or (fence == row.fence and row.status == "leased"):
            raise LeaseLost(f"the token is not a lease of {where}: no claim of this job "
                            "gave it", hint="check --run, --job and --lease belong together",
                            state=row.status, fence=row.fence)
        raise LeaseLost(f"the lease on {where} is no longer yours: the job is now "
                        f"{row.status!r} at fence {row.fence}",
                        hint="stop work on this job; `striatum job claim` takes a new one",
                        state=row.status, fence=row.fence)
    if row.lease_expired:
        raise LeaseLost(f"the lease on {where} expired (no heartbeat in time)",
                        hint="heartbeat more often than the lease length; claim again",
                        state=row.status, fence=row.fence)


def check_held(store: Store, run_id: str, job_id: str, token: str) -> None:
    """Refuse (``LeaseLost``, ``NotFound``) unless ``token`` is the job's current, live
    lease: what a lease capability is checked by before its call runs (the call's own
    transaction checks it again, so a lease that ends meanwhile still fences it)."""
    row = store.read(JobRow, "job_record", {"run": run_id, "job": job_id})
    if row is None:
        raise NotFound(f"no job {run_id}/{job_id}", hint="check --run and --job")
    verify(row, token, f"{run_id}/{job_id}")


@verb("lease sweep")
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
          check_run: bool = True, artifact_folder: bool = True, operator: bool = False,
          model: str | None = None) -> Claim | None:
    """Lease the first ready job of ``run_id`` (of any running run when None) whose
    attempt can be prepared; a job whose attempt cannot is failed with the reason and
    the claim moves on.

    ``check_run``: when nothing is ready, tell a run that does not exist (NotFound) from
    one with nothing to do (None), at the cost of a second round trip.
    ``artifact_folder``: make the attempt's artifact folder before answering, as an agent
    told of it needs; False for a caller that makes it itself when the lane starts (a
    worker), which saves the claim a ``mkdir``.
    ``operator``: the claimer works the attempt itself; the claim's statement chains its
    start (``take``), ``model`` as it stated it."""
    if sweep:
        sweep_expired(store, run_id)
        budgets.sweep(store, run_id)
    while True:
        taken = take(store, run_id, owner=owner,
                     lanes=lanes if lanes is not None else ([lane] if lane else None),
                     lane_kinds=lane_kinds, lease_seconds=lease_seconds, check_run=check_run,
                     artifact_folder=artifact_folder, operator=operator, model=model)
        if not isinstance(taken, Unprepared):
            return taken
        if not taken.final:
            # Claiming again now would take the same job and meet the same trouble.
            raise AttemptNotPrepared(
                f"claimed {taken.job} of run {taken.run} but could not prepare its attempt: "
                f"{taken.reason}; the attempt was failed, and the job is retried",
                hint="fix what stopped it (a full disk, a folder striatum cannot write), "
                     "then claim again", run=taken.run, job=taken.job)


def claim_next(store: Store, run_id: str, *, owner: str, lane: str | None,
               lease_seconds: int = DEFAULT_LEASE_SECONDS, model: str | None = None
               ) -> Claim | Idle:
    """An operator's claim: the job leased, or why there is none (the run ended, waits
    for a human, ...), read after the claim so that a sweep it made is seen. The attempt
    chains who works it (``starts.operator_start_data``; ``model``: as the operator
    stated it), as a worker's attempt chains its lane's program: in the claim's own
    statement, so no claim is ever made whose start is missing, nor a start whose
    claim is (a start recorded on its own, after the claim, could fail and leave the
    job leased to no one who knows its token)."""
    found = claim(store, run_id, owner=owner, lane=lane, lease_seconds=lease_seconds,
                  operator=True, model=model)
    if found is None:
        return idle(store, run_id, lane)
    return found


@verb("job claim")
def take(store: Store, run_id: str | None, *, owner: str, lanes: list[str] | None,
         lane_kinds: list[str] | None, lease_seconds: int, check_run: bool,
         artifact_folder: bool = False, starts: Mapping[str, str] | None = None,
         operator: bool = False, model: str | None = None) -> Claim | Unprepared | None:
    """One claim statement and the attempt's preparation (the claim loop's step): a Claim,
    an Unprepared job (already failed), or None when nothing is ready. The attempt's
    artifact folder is made only when ``artifact_folder`` (``claim``'s): a worker makes it
    as the lane starts. ``starts``: the attempt.start data of lanes known before the
    claim (lane -> its canonical JSON); a job on one of them has its start chained by
    the claim's statement. ``operator``: the claimer works the attempt itself, and the
    claim's statement chains its start whatever the job's lane
    (``starts.operator_start_data``, ``model`` as the operator stated it)."""
    # One statement (a function in the database) finds, locks and leases the job,
    # records the lease, appends the event and the audit row: one round trip.
    params = {"run": run_id, "lanes": lanes, "lane_kinds": lane_kinds, "owner": owner,
              "secret": secrets.token_hex(16), "lease_seconds": lease_seconds,
              **audit.claim_params(store)}
    if starts or operator:
        found = store.call("claim_job_started", {**params, "starts": json.dumps(starts or {}),
                                                 "operator": operator, "model": model or None})
    else:
        found = store.call("claim_job", params)
    if not found:
        if check_run and run_id is not None and not store.execute("run_record",
                                                                   {"run": run_id}):
            raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
        return None
    store.audited += 1  # the claim statement wrote its audit row
    row = from_json(JobRow, found[0][0])
    run = from_json(RunRow, found[0][1])
    token = row.lease_token or ""
    workflow = pinned.compiled_of(store, run.workflow_digest)
    if workflow.workflow.budget is not None and budgets.hand_back(store, run.id, row.job_id,
                                                                  token):
        # Its run reached its budget and is blocked now: claim from the others.
        return take(store, run_id, owner=owner, lanes=lanes, lane_kinds=lane_kinds,
                    lease_seconds=lease_seconds, check_run=False,
                    artifact_folder=artifact_folder, starts=starts, operator=operator,
                    model=model)
    try:
        pinned.remember_run(run.id, run.workflow_digest)  # its completion needs the graph
        lapsed = judged.bind(store, run, row, workflow)
        if lapsed is not None:
            return Unprepared(run.id, row.job_id, lapsed, final=True, status="lapsed")
        prompt_file = prepare_prompt(store, run, row, workflow)
        if artifact_folder:
            make_out(str(scratch_of(prompt_file).out))
        spec = workflow.jobs[row.job_id]
        if spec.writes and spec.isolation != "worktree":
            # The repository as this pass found it, before anyone works on it: what the
            # job's end checks its changes against, whoever ends it (_stray).
            changes.baseline(Path(run.repo_path), prompt_file.parent, row.iteration)
    except PromptError as exc:
        # The same template and the same run render the same way on every attempt.
        return _unprepared(store, row, token, exc.message, final=True)
    except (StoreError, StoreUnavailable):
        raise  # the database is in trouble: the lease expires, and fencing keeps it safe
    except Exception as exc:  # noqa: BLE001 - whatever it was, the lease must not be kept
        where = f": {exc.filename}" if isinstance(exc, OSError) and exc.filename else ""
        said = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            f"{type(exc).__name__}: {exc}"
        return _unprepared(store, row, token,
                           f"could not write the attempt's prompt: {said}{where}")
    assert row.lease_expires_at is not None
    spec = workflow.jobs[row.job_id]
    started = None
    if (starts or operator) and found[0][2]:  # claim_job_started: and a start chained
        if starts and row.lane in starts:
            started = starts[row.lane]
        else:
            from .starts import operator_start_data, start_text

            started = start_text(operator_start_data(row.lane, owner, model))
    return Claim(run.id, row.job_id, row.kind, row.lane, token, row.fence, row.iteration,
                 row.attempt, row.lease_expires_at, str(prompt_file),
                 str(scratch_of(prompt_file).out), list(spec.produces), run, workflow,
                 started=started)


def _unprepared(store: Store, row: JobRow, token: str, reason: str, *, final: bool = False
                ) -> Unprepared:
    # LeaseLost: swept meanwhile; the expiry has ended the attempt already.
    with contextlib.suppress(LeaseLost):
        fail(store, row.run_id, row.job_id, token, reason, final=final)
    return Unprepared(row.run_id, row.job_id, reason, final)


@verb("job heartbeat")
def heartbeat(store: Store, run_id: str, job_id: str, token: str,
              lease_seconds: int = DEFAULT_LEASE_SECONDS) -> datetime:
    def work(cur: psycopg.Cursor[Any]) -> list[Any]:
        extended = fetch(cur, "heartbeat", {"run": run_id, "job": job_id, "token": token,
                                            "lease_seconds": lease_seconds})
        if extended:
            audit.record(cur, store)
        return extended

    rows = store.transaction(work, pipelined=True)
    if not rows:
        row = store.read(JobRow, "job_record", {"run": run_id, "job": job_id})
        if row is None:
            raise NotFound(f"no job {run_id}/{job_id}")
        verify(row, token, f"{run_id}/{job_id}")
        raise LeaseLost(f"the lease on {run_id}/{job_id} is no longer yours")
    expires: datetime = rows[0][0]
    return expires


@verb("job publish")
def publish(store: Store, run_id: str, job_id: str, token: str, source: str,
            name: str | None = None) -> dict[str, Any]:
    """Publish one file while the job is held (the lease verbs lock no run row)."""
    staged = stage(source, name)

    def work(cur: psycopg.Cursor[Any]) -> dict[str, Any]:
        row, run, at = held(cur, run_id, job_id, token)
        artifact, event = store_artifact(cur, run, row, staged)
        append_events(cur, run.repo_id, [event], at)
        audit.record(cur, store)
        return artifact

    return store.transaction(work, pipelined=True)


def held(cur: psycopg.Cursor[Any], run_id: str, job_id: str, token: str
         ) -> tuple[JobRow, RunRow, datetime]:
    """The held job (locked: its lease is checked), its run and the database clock, in one
    round trip; what the caller then writes (a record, an event, the audit row) travels
    with the COMMIT."""
    where = f"{run_id}/{job_id}"
    jobs, found, clock = fetch_together(
        cur, ("lock_job", {"run": run_id, "job": job_id}, JobRow),
        ("run_record", {"run": run_id}, RunRow), ("now", {}))
    if not jobs or not found:
        raise NotFound(f"no job {where}")
    verify(jobs[0], token, where)
    at: datetime = clock[0][0]
    return jobs[0], found[0], at


@verb("job publish log")
def publish_log(store: Store, run_id: str, job_id: str, token: str, source: str
                ) -> dict[str, Any] | None:
    """Publish an attempt's log (``logs/<job>.log``) after its lease ended by its holder's
    own verb (a verdict the agent recorded, a completion, a failure it reported): the
    token proves the attempt was this holder's. Nothing is published over the log of a
    later attempt of the same pass (None then); a lease that expired is not an end the
    holder made, and is refused."""
    staged = stage(source, f"logs/{job_id}.log")
    where = f"{run_id}/{job_id}"
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()

    def work(cur: psycopg.Cursor[Any]) -> dict[str, Any] | None:
        jobs, found, ended, clock = fetch_together(
            cur, ("lock_job", {"run": run_id, "job": job_id}, JobRow),
            ("run_record", {"run": run_id}, RunRow),
            ("lease_of_token", {"run": run_id, "job": job_id, "digest": digest}), ("now", {}))
        if not jobs or not found:
            raise NotFound(f"no job {where}")
        if not ended:
            raise LeaseLost(f"the token is not a lease of {where}: no claim of this job gave it",
                            hint="pass the token of the attempt whose log it is")
        fence, iteration, over, outcome = ended[0]
        if not over or outcome == "expire":
            raise LeaseLost(f"the lease on {where} at fence {fence} "
                            + ("is still held: publish the log with `job publish`" if not over
                               else "expired: its attempt did not end by its holder's verb"))
        later = fetch(cur, "artifact_fence", {"run": run_id, "job": job_id,
                                              "iteration": iteration, "path": staged[1]})
        if later and int(later[0][0]) > fence:
            return None
        record, event = store_artifact(cur, found[0], jobs[0], staged, iteration=iteration,
                                       fence=fence)
        append_events(cur, found[0].repo_id, [event], clock[0][0])
        audit.record(cur, store)
        return record

    return store.transaction(work, pipelined=True)


def _publish_in(tx: Transition, row: JobRow, files: Iterable[Staged]) -> None:
    """Publish within a transition, its events before the transition's own."""
    for staged in files:
        tx.events.append(store_artifact(tx.cur, tx.run, row, staged)[1])



def _leased(tx: Transition, job_id: str, token: str) -> JobRow:
    row = tx.row(job_id)
    if row is None:
        raise NotFound(f"run {tx.run.id} has no job {job_id!r}")
    verify(row, token, f"{tx.run.id}/{job_id}")
    return row


def left_by_its_lane(run_id: str, job_id: str, env: Mapping[str, str] | None = None
                     ) -> list[Staged]:
    """Called from inside the lane that runs ``job_id`` (its STRIATUM_RUN, STRIATUM_JOB
    and STRIATUM_ARTIFACT_DIR), the files the job produces that its agent wrote to the
    artifact directory; none from anywhere else. A command lane's contract tells its
    agent to write them there, for the worker to publish when the lane exits: an agent
    that ends the job itself (its verdict) publishes them first with these, or an accept
    would be refused for files it was told to write, not to publish."""
    env = os.environ if env is None else env
    out = env.get("STRIATUM_ARTIFACT_DIR")
    if not out or env.get("STRIATUM_RUN") != run_id or env.get("STRIATUM_JOB") != job_id:
        return []
    names = [n for n in env.get("STRIATUM_PRODUCES", "").splitlines() if n]
    return [stage(os.path.join(out, name), name) for name in names
            if os.path.isfile(os.path.join(out, name))]


@verb("job verdict")
def verdict(store: Store, run_id: str, job_id: str, token: str, outcome: str,
            reason: str, *, files: Iterable[Staged] = (),
            findings: tuple[str, ...] | None = None) -> Transition:
    """Record a review's verdict (publishing ``files`` first, in the same transaction),
    with the ids of the findings it names, when it names them (``runtime.findings``)."""
    if outcome not in VERDICTS:
        raise UsageError(f"verdict {outcome!r} is not one of {', '.join(VERDICTS)}")
    staged = tuple(files)  # a retried transaction publishes them again
    findings = finding_ids(findings)  # sorted, each once: a round compares as a set

    def change(tx: Transition) -> None:
        row = _leased(tx, job_id, token)
        _publish_in(tx, row, staged)
        if row.kind != "review":
            raise Conflict(f"{job_id!r} is a {row.kind}; only a review takes a verdict",
                           hint="use `striatum job complete` for a task")
        missing = missing_artifacts(tx, job_id) if outcome == "accept" else []
        if missing:
            raise Conflict(f"{job_id!r} must publish {', '.join(missing)} before accepting",
                           hint="`striatum job publish --artifact FILE`")
        seen = judged.of_verdict(tx, row)
        send(tx.cur, "insert_verdict", {"run": run_id, "job": job_id,
                                         "iteration": row.iteration, "verdict": outcome,
                                         "reason": reason, "fence": row.fence,
                                         "judged": json.dumps(seen, sort_keys=True)})
        apply_verdict(tx, job_id, outcome, reason, findings, seen)

    return transition(store, run_id, change, [job_id], dependents=outcome == "accept")


def _stray(tx: Transition, row: JobRow) -> None:
    """Refuse to end a job that changed files its ``writes`` globs do not allow, in the
    shared working tree, against the baseline its claim took: what a worker checks
    after a lane, checked for an operator (or an agent) that ends the job itself."""
    spec = tx.wg.jobs[row.job_id]
    if not spec.writes or spec.isolation == "worktree":
        return  # a worktree's changes are its diff, which the worker takes and checks
    repo = Path(tx.run.repo_path)
    before = changes.baseline(repo, scratch(tx.run, row).folder, row.iteration)
    touched = changes.changed(before, changes.snapshot(repo),
                              (".striatum", tx.run.artifact_root))
    stray = changes.outside(touched, spec.writes)
    if stray:
        raise Conflict(f"{row.job_id!r} changed files outside its writes globs "
                       f"({', '.join(spec.writes)}): {changes.listed(stray, 20)}",
                       hint="undo those changes (or widen the job's writes), then complete "
                            "again", paths=stray)


@verb("job complete")
def complete(store: Store, run_id: str, job_id: str, token: str, *,
             files: Iterable[Staged] = (), check_writes: bool = True
             ) -> Transition | Completed:
    """Complete a task (publishing ``files`` first, in the same transaction).
    ``check_writes``: refuse changes outside its ``writes`` (a worker, which checked
    them itself against the same baseline, passes False)."""
    staged = tuple(files)  # a retried transaction publishes them again
    if not staged:
        done = complete_in_one(store, run_id, job_id, token, data={},
                               check_writes=check_writes)
        if done is not None:
            return done

    def change(tx: Transition) -> None:
        row = _leased(tx, job_id, token)
        if check_writes:
            _stray(tx, row)
        _publish_in(tx, row, staged)
        if row.kind == "review":
            raise Conflict(f"{job_id!r} is a review: it ends with a verdict",
                           hint="`striatum job verdict accept|needs_revision|reject`")
        missing = missing_artifacts(tx, job_id)
        if missing:
            raise Conflict(f"{job_id!r} has not published {', '.join(missing)}",
                           hint="`striatum job publish --artifact FILE` first")
        tx.job(job_id, "complete")
        advance(tx, [job_id])

    return transition(store, run_id, change, [job_id], dependents=True)


@verb("job escalate")
def escalate(store: Store, run_id: str, job_id: str, token: str, reason: str, *,
             files: Iterable[Staged] = ()) -> Transition:
    """Hand a held job to a human (publishing ``files`` first): it waits for a decision
    and its run is blocked, the agent's reason in the record, until `run resume`
    accepts the job as it stands, fails the run, or grants it another attempt."""
    staged = tuple(files)

    def change(tx: Transition) -> None:
        row = _leased(tx, job_id, token)
        _publish_in(tx, row, staged)
        if tx.run.status != "running" and not budgets.stopped(tx.run.blocked_on):
            raise Conflict(f"run {run_id} is {tx.run.status} (on {tx.run.blocked_on}): it "
                           "already waits for a human, who answers one escalation at a time",
                           hint="say what needs a human in an artifact and `job release` the "
                                "job, or `job fail` it", state=tx.run.status)
        data = {"reason": reason, "by": "agent"}
        tx.job(job_id, "escalate", data, reason=reason)
        block_on(tx, job_id, reason, {"job": job_id, **data})

    return transition(store, run_id, change, [job_id])


@verb("job release")
def release(store: Store, run_id: str, job_id: str, token: str) -> Transition:
    def change(tx: Transition) -> None:
        _leased(tx, job_id, token)
        tx.job(job_id, "release", {"reason": "handed back by its holder"})

    return transition(store, run_id, change, [job_id])


@verb("job unlease")
def unlease(store: Store, run_id: str, job_id: str, reason: str) -> Transition:
    """A human ends a stuck lease without its token: the job goes back to ready for the
    next claim (no attempt spent, as for a release), and the holder's token is fenced."""
    def change(tx: Transition) -> None:
        row = tx.row(job_id)
        if row is None:
            raise NotFound(f"run {run_id} has no job {job_id!r}",
                           hint=f"`striatum run status {run_id}` lists its jobs")
        if row.status != "leased":
            raise Conflict(f"job {job_id} of run {run_id} holds no lease: it is {row.status}",
                           hint="only a leased job's lease can be released",
                           state=row.status)
        tx.job(job_id, "release", {"reason": reason, "holder": row.lease_owner})

    return transition(store, run_id, change, [job_id])


@verb("job fail")
def fail(store: Store, run_id: str, job_id: str, token: str, reason: str, *,
         files: Iterable[Staged] = (), final: bool = False) -> Transition:
    """Give up this attempt (publishing ``files`` first, in the same transaction); it is
    retried while attempts remain, unless ``final`` (it would fail alike every time)."""
    staged = tuple(files)  # a retried transaction publishes them again

    def change(tx: Transition) -> None:
        row = _leased(tx, job_id, token)
        _publish_in(tx, row, staged)
        attempt_failed(tx, job_id, "retry", reason, final=final)

    return transition(store, run_id, change, [job_id])


__all__ = ["DEFAULT_LEASE_SECONDS", "Claim", "LeaseLost", "Unprepared",
           "claim", "complete", "escalate", "fail", "heartbeat", "publish", "release", "stage",
           "sweep_expired", "take", "unlease", "verdict", "verify"]
