"""Runs: prepare (compile and pin), start, cancel, resume, decide, and reading them back."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from .. import collector
from ..errors import Conflict, NotFound, NotWaiting, UsageError, WorkflowInvalid
from . import audit, batches, budgets, pinned
from .audit import Event, append_events, repo_chain, verb
from .engine import (
    Transition,
    advance,
    block_on_waiting,
    cancel_run,
    fail_run,
    missing_artifacts,
    revise,
)
from .manifest import prepare_manifest, promote, run_artifacts
from .preflight import Finding, preflight
from .records import JobRow, RunRow, initial_job_state
from .store import Store, fetch, fetch_one, fetch_records, send

if TYPE_CHECKING:
    import psycopg

    from ..compiler.compiled import CompiledWorkflow

DEFAULT_ARTIFACT_ROOT = "striatum/runs"
EVENTS_PAGE = 1000


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


LATEST = "latest"


def resolve_run(store: Store, ref: str, repo: str) -> str:
    """The run ``ref`` names: ``latest`` (the repository's newest run), or the one run
    whose id begins or ends with it (the time it started, or its random tail)."""
    if ref == LATEST:
        found = store.execute("latest_run", {"repo": os.path.realpath(repo)})
        if not found:
            raise NotFound(f"no runs of {os.path.realpath(repo)} yet, so none is latest",
                           hint="`striatum run list --all` shows the runs of every repository")
        return str(found[0][0])
    matches = [str(r[0]) for r in store.execute("runs_matching", {"ref": ref})]
    if not matches:
        raise NotFound(f"no run {ref!r}", hint="`striatum run list` shows the runs")
    if len(matches) > 1:
        shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise UsageError(f"{ref!r} names more than one run: {shown}",
                         hint="give more of the run id")
    return matches[0]


def _vars(declared: dict[str, Any], overrides: dict[str, str]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise UsageError(f"the workflow has no variable {unknown[0]!r}",
                         hint="its variables: " + (", ".join(declared) or "none"))
    merged = dict(declared)
    for key, text in overrides.items():
        if "\x00" in text:
            raise UsageError(f"variable {key!r}: the value holds a NUL character, which "
                             "PostgreSQL cannot store", hint="remove it")
        default = declared[key]
        if isinstance(default, bool):
            merged[key] = text.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, int):
            try:
                merged[key] = int(text)
            except ValueError as exc:
                raise UsageError(f"variable {key!r} needs an integer, not {text!r}") from exc
        else:
            merged[key] = text
    return merged


def compile_for_run(workflow_file: str, lanes: dict[str, Any] | None = None
                    ) -> CompiledWorkflow:
    """Compile the workflow (with ``lanes`` replacing lanes of the same name, e.g. to run
    on other agents)."""
    from .. import compiler

    comp = compiler.check(workflow_file)
    if comp.ok and lanes:
        comp = compiler.check(_with_lanes(comp.source, lanes))
        if not comp.ok:
            first = comp.diagnostics[0].message if comp.diagnostics else "invalid"
            raise WorkflowInvalid(f"{workflow_file} with the replaced lanes is not a "
                                  f"valid workflow: {first}",
                                  hint="a lane is an object like the workflow's own lanes, "
                                       "or an argv list",
                                  diagnostics=[d.to_json() for d in comp.diagnostics])
    if not comp.ok:
        errors = sum(d.severity.value == "error" for d in comp.diagnostics)
        raise WorkflowInvalid(f"{workflow_file} is not a valid workflow ({errors} "
                              f"error{'' if errors == 1 else 's'}): no run was prepared",
                              hint="fix what the diagnostics above say; `striatum workflow "
                                   f"validate {workflow_file}` checks it again",
                              diagnostics=[d.to_json() for d in comp.diagnostics])
    return compiler.compile(comp)


def preflight_of(workflow_file: str, repo: str, *, overrides: dict[str, str],
                 lanes: dict[str, Any] | None = None) -> list[Finding]:
    """What ``prepare`` would find wrong with a run of ``workflow_file`` in ``repo``,
    warnings too, without a database (``run prepare --dry-run``, and the warnings
    ``run prepare`` prints)."""
    compiled = compile_for_run(workflow_file, lanes)
    repo_path = os.path.realpath(repo)
    return preflight(compiled, repo_path, _vars(dict(compiled.workflow.vars), overrides),
                     _head_commit(repo_path))


def check(store: Store, run_id: str) -> list[Finding]:
    """The preflight of a run already prepared, against what it pinned and the repository
    as it is now (a program installed or removed since, a repository that stopped being
    one), and, for a run not yet started, the uncommitted changes its start would refuse."""
    run = get_run(store, run_id)
    compiled = pinned.compiled_of(store, run.workflow_digest)
    # The commit it pinned, while the repository can still give a worktree of one.
    now = _head_commit(run.repo_path) if os.path.isdir(run.repo_path) else None
    found = preflight(compiled, run.repo_path, run.vars, run.base_commit if now else None)
    if run.status == "prepared":
        from .changes import listed

        dirty = dirty_in_writes(store, run_id)
        if dirty:
            found.append(Finding("warning", None, "its jobs write where the working tree "
                                 f"has uncommitted changes: {listed(dirty)}",
                                 "commit or stash them, or start with --allow-dirty"))
    return found


def _refuse(findings: list[Finding], workflow_file: str) -> None:
    errors = [f for f in findings if f.severity == "error"]
    if errors:
        raise WorkflowInvalid(f"a run of {workflow_file} would fail: {errors[0].message}",
                              hint=errors[0].hint, preflight=[f.to_json() for f in errors])


@verb("run prepare")
def prepare(store: Store, workflow_file: str, repo: str, *, overrides: dict[str, str],
            artifact_root: str = DEFAULT_ARTIFACT_ROOT,
            lanes: dict[str, Any] | None = None) -> str:
    """Compile the workflow, pin it by digest, and create the run with its jobs."""
    compiled = compile_for_run(workflow_file, lanes)
    data, digest = compiled.data, compiled.digest
    unreadable = compiled.unreadable_prompts
    if unreadable:
        raise WorkflowInvalid(f"prompt file(s) missing or not UTF-8 text: {', '.join(unreadable)}",
                              hint="a run pins its prompts when it is prepared; "
                                   "`striatum workflow lint` finds these (STR307)")
    repo_path = os.path.realpath(repo)
    if not os.path.isdir(repo_path):
        raise NotFound(f"repository {repo} is not a directory",
                       hint="name the target repository's folder")
    workflow = compiled.workflow
    run_id = new_run_id()
    run_vars = _vars(dict(workflow.vars), overrides)
    if any(isinstance(v, str) and "\x00" in v for v in run_vars.values()):
        raise WorkflowInvalid("a variable's default holds a NUL character, which PostgreSQL "
                              "cannot store", hint="remove it from the workflow's vars")
    base_commit = _head_commit(repo_path)
    _refuse(preflight(compiled, repo_path, run_vars, base_commit), workflow_file)

    def work(cur: psycopg.Cursor[Any]) -> None:
        found = (fetch_one(cur, "ensure_repo", {"path": repo_path})
                 or fetch_one(cur, "repo_id", {"path": repo_path}))
        repo_id = found[0]
        fetch(cur, "ensure_chain", {"chain": repo_chain(repo_id)})
        fetch(cur, "store_workflow", {"digest": digest, "name": workflow.name,
                                      "compiled": data.decode("utf-8")})
        fetch(cur, "insert_run", {
            "id": run_id, "repo": repo_id, "digest": digest, "name": workflow.name,
            "vars": json.dumps(run_vars), "artifact_root": artifact_root,
            "base_commit": base_commit, "worst_case": compiled.worst_case,
            "unsettled": len(workflow.jobs)})
        rows = [{"run": run_id, "job": job.id, "position": position, "kind": job.kind,
                 "lane": job.lane, "lane_kind": compiled.lanes[job.lane].kind,
                 "max_attempts": job.max_attempts}
                for position, job in enumerate(workflow.jobs)]
        for batch in batches.slices(rows):
            send(cur, "insert_jobs", {"run": run_id, **batches.columns(batch, _JOB_COLUMNS)})
        now = fetch_one(cur, "now")[0]
        initial = initial_job_state()
        state = {"status": "prepared", "blocked_on": None}
        append_events(cur, repo_id, [Event("run.prepare", run_id, None, state, {
            "workflow": workflow.name, "digest": digest, "vars": run_vars,
            "repo": repo_path, "artifact_root": artifact_root,
            "worst_case": compiled.worst_case,
            "jobs": {row["job"]: initial for row in rows}})], now)
        audit.record(cur, store)

    store.transaction(work)
    return run_id


_JOB_COLUMNS = ("job", "position", "kind", "lane", "lane_kind", "max_attempts")


@verb("repo adopt")
def register_repo(store: Store, repo: str) -> int:
    """Make ``repo`` known to the record (its row and its chain's head), as a run's
    prepare would; its id."""
    path = os.path.realpath(repo)
    if not os.path.isdir(path):
        raise NotFound(f"repository {repo} is not a directory",
                       hint="name the target repository's folder")

    def work(cur: psycopg.Cursor[Any]) -> int:
        found = fetch_one(cur, "ensure_repo", {"path": path}) or \
            fetch_one(cur, "repo_id", {"path": path})
        fetch(cur, "ensure_chain", {"chain": repo_chain(found[0])})
        audit.record(cur, store)
        return int(found[0])

    return store.transaction(work)


def _with_lanes(source: Any, lanes: dict[str, Any]) -> Any:
    import copy
    from dataclasses import replace

    document = copy.deepcopy(source.document)
    for name, lane in lanes.items():
        if name not in document["lanes"]:
            raise UsageError(f"the workflow has no lane {name!r} to replace",
                             hint="its lanes: " + ", ".join(document["lanes"]))
        document["lanes"][name] = lane
    return replace(source, document=document)


def _head_commit(repo: str) -> str | None:
    """The repository's HEAD, if it is a git repository with a commit."""
    import subprocess

    try:
        done = subprocess.run(["git", "-C", repo, "rev-parse", "--verify", "-q", "HEAD"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def transition(store: Store, run_id: str, change: Callable[[Transition], None],
               jobs: Iterable[str] = (), *, dependents: bool = False) -> Transition:
    """Run ``change(tx)`` in one transaction over the run (``jobs``: the ones it is
    known to touch, locked with the run in one round trip, with the jobs that need
    them when ``dependents``), audited in that transaction, then write the manifest if
    the run ended."""

    def work(cur: psycopg.Cursor[Any]) -> Transition:
        tx = Transition.open(cur, run_id, jobs, dependents=dependents)
        change(tx)
        tx.flush()
        if tx.ended:
            # Before the COMMIT, so no crash leaves the run without a manifest; its reads
            # come before the audit row, whose chain head is then held only to the COMMIT.
            artifacts = run_artifacts(tx)
            prepare_manifest(tx, artifacts, audit.record_head(cur, store))
        elif tx.changed:
            audit.record(cur, store)
        return tx

    tx = store.transaction(work, pipelined=True)
    if tx.ended:
        promote(tx.run)
    return tx


def dirty_in_writes(store: Store, run_id: str) -> list[str]:
    """The uncommitted changes of the run's repository that its jobs in the shared
    working tree may write (their ``writes``): what an agent would work on top of, and a
    failed attempt's changes would be mixed with."""
    from pathlib import Path

    from ..globs import matches
    from .changes import snapshot

    run = get_run(store, run_id)
    workflow = pinned.compiled_of(store, run.workflow_digest)
    globs = [g for spec in workflow.jobs.values() if spec.isolation != "worktree"
             for g in spec.writes]
    if not globs:
        return []
    ours = (".striatum", run.artifact_root)
    return sorted(path for path in snapshot(Path(run.repo_path))
                  if not any(path == o or path.startswith(o + "/") for o in ours)
                  and any(matches(g, path) for g in globs))


@verb("run start")
def start(store: Store, run_id: str, *, allow_dirty: bool = False) -> Transition:
    """Start a prepared run, unless the files its jobs write hold uncommitted changes
    (``allow_dirty`` says to start anyway)."""
    dirty = [] if allow_dirty else dirty_in_writes(store, run_id)
    if dirty:
        from .changes import listed

        raise Conflict(f"run {run_id} was not started: its jobs write where the working "
                       f"tree has uncommitted changes: {listed(dirty)}",
                       hint="commit or stash them first (`git stash -u`), or start with "
                            "--allow-dirty to let the agents work on top of them",
                       paths=dirty)

    def change(tx: Transition) -> None:
        tx.run_to("start")
        advance(tx)

    return transition(store, run_id, change)


@verb("run cancel")
def cancel(store: Store, run_id: str, reason: str) -> Transition:
    return transition(store, run_id, lambda tx: cancel_run(tx, reason))


@verb("checkpoint decide")
def decide(store: Store, run_id: str, job_id: str, choice: str) -> Transition:
    def change(tx: Transition) -> None:
        tx.load_all()  # the choice may skip any number of jobs, all reported
        row = _job(tx, job_id)
        spec = tx.wg.jobs[job_id]
        if spec.kind != "checkpoint":
            raise Conflict(f"{job_id!r} is a {spec.kind}, not a checkpoint",
                           hint="`striatum run resume` answers an escalated review")
        if row.chosen is not None and row.status == "succeeded":
            raise Conflict(f"checkpoint {job_id!r} of run {tx.run.id} was already decided: "
                           f"{row.chosen!r}", hint="a decision is final", state=row.status)
        options = [name for name, _ in spec.choices]
        if choice not in options:
            raise UsageError(f"checkpoint {job_id!r} has no choice {choice!r}",
                             hint="choices: " + ", ".join(options))
        tx.job(job_id, "decide", {"choice": choice}, chosen=choice)
        advance(tx)

    return transition(store, run_id, change)


@verb("run resume")
def resume(store: Store, run_id: str, decision: str, reason: str,
           raised: dict[str, int] | None = None, job_id: str | None = None) -> Transition:
    """Answer a blocked run: an escalated job (accept, fail, revise), or a budget that
    stopped it (``raise`` with the ``raised`` limits, or fail). ``job_id`` names which of
    the jobs waiting for ``run resume`` to answer (default: the one the run is blocked
    on); the others go on waiting, the run blocked on the first of them."""
    def change(tx: Transition) -> None:
        if job_id is not None:
            _check_waits(tx, job_id)  # first: what the named job waits for, if anything
        if tx.run.status != "blocked" or tx.run.blocked_on is None:
            raise Conflict(f"run {run_id} is {tx.run.status!r}, not blocked",
                           hint="only a run blocked by an escalation or by its budget can "
                                "be resumed", state=tx.run.status)
        if budgets.stopped(tx.run.blocked_on):
            if job_id is not None:
                key = tx.run.blocked_on[len(budgets.PREFIX):]
                raise Conflict(f"run {run_id} is stopped by its budget ({key}): no job of it "
                               f"can be answered until the limit is raised",
                               hint=f"`striatum run resume {run_id} --raise-budget {key}=N` "
                                    f"first, then `{resume_job(run_id, job_id)}`",
                               state=tx.run.status)
            budgets.resume(tx, decision, reason, raised)
            return
        if decision == "raise" or raised:
            raise Conflict(f"run {run_id} is blocked on {tx.run.blocked_on}, not by its budget",
                           hint=f"`{resume_job(run_id, tx.run.blocked_on)}`",
                           state=tx.run.status)
        answered = tx.run.blocked_on if job_id is None else job_id
        answer(tx, answered, decision, reason)

    return transition(store, run_id, change)


def resume_job(run_id: str, job_id: str) -> str:
    """The `run resume` that answers ``job_id`` of the run, whichever the run is blocked on."""
    return f"striatum run resume {run_id} --job {job_id} --decision accept|fail|revise"


def resume_command(run_id: str, blocked_on: str | None) -> str:
    """The `run resume` that answers what the run is blocked on (a job, or its budget)."""
    if blocked_on is not None and budgets.stopped(blocked_on):
        return f"striatum run resume {run_id} --raise-budget {blocked_on[len(budgets.PREFIX):]}=N"
    if blocked_on is None:
        return f"striatum run resume {run_id} --decision accept|fail|revise"
    return resume_job(run_id, blocked_on)


def _check_waits(tx: Transition, job_id: str) -> None:
    """Refuse to answer ``job_id`` unless it waits for ``run resume``, naming what does."""
    tx.load_all()
    row = tx.row(job_id)
    waits = [j for j in tx.wg.workflow.job_ids if tx.jobs[j].status == "awaiting_decision"
             and tx.jobs[j].kind != "checkpoint"]
    could = ("waiting for `run resume`: " + ", ".join(waits) if waits
             else "no job of it waits for `run resume`")
    if row is None:
        raise NotFound(f"run {tx.run.id} has no job {job_id!r}",
                       hint=f"{could}; `striatum why {tx.run.id}` gives each one's command")
    if row.status == "awaiting_decision" and row.kind == "checkpoint":
        raise NotWaiting(f"{job_id!r} is a checkpoint: a choice answers it, not `run resume`",
                         hint=f"`striatum why {tx.run.id}` gives its `checkpoint decide` "
                              "command", job=job_id, state=row.status, waiting=waits)
    if row.status != "awaiting_decision":
        raise NotWaiting(f"job {job_id!r} of run {tx.run.id} is {row.status!r}: it does not "
                         "wait for a human", hint=f"{could}; `striatum why {tx.run.id}` gives "
                         "each one's command", job=job_id, state=row.status, waiting=waits)


def answer(tx: Transition, job_id: str, decision: str, reason: str) -> None:
    """A human's decision on ``job_id``, waiting for ``run resume`` in the blocked run."""
    tx.load([job_id])
    data = {"decision": decision, "reason": reason, "by": "human"}
    if decision == "fail":
        tx.job(job_id, "fail", data, reason=reason)
        fail_run(tx, f"a human failed the run at {job_id}: {reason}")
        return
    missing = missing_artifacts(tx, job_id) if tx.wg.jobs[job_id].kind == "task" else []
    if decision == "accept" and missing:
        raise Conflict(f"{job_id!r} was escalated before it published "
                       f"{', '.join(missing)}, which the jobs after it consume: it cannot "
                       "be accepted as it stands",
                       hint="grant it another attempt (--decision revise) or fail the run",
                       missing=missing)
    # Which job it answered: several may wait, and any of them can be answered first.
    tx.run_to("resume", {**data, "job": job_id}, blocked_on=None)
    if decision == "accept":
        tx.job(job_id, "decide", data, verdict="accept", reason=reason)
        # Every pending job, not only the review's dependents: a checkpoint decided
        # while the run was blocked has successors to release too.
        advance(tx)
    elif tx.wg.jobs[job_id].kind == "review":
        # One more pass beyond the budget: a human's call, outside plan's bound.
        revise(tx, job_id, reason, granted=True)
    else:
        # A task its agent escalated: run it again with a fresh attempt budget, a
        # pass beyond the plan granted as a revision is.
        tx.job(job_id, "reset", {**data, "granted": True}, attempt=0, reason=None,
               verdict=None)
        advance(tx)
    block_on_waiting(tx)  # another job handed to a human waits its turn


@verb("run retry")
def retry(store: Store, run_id: str, job_id: str | None, reason: str) -> Transition:
    """Run a failed run again from its failed job (``job_id``, when given, must be it), with
    a fresh attempt budget: that job and every job the failure cancelled go back to
    pending, and the run to running. A human's decision, in the chain; each pass it
    adds to one that had begun is granted, as a revision a human grants is."""

    def change(tx: Transition) -> None:
        if tx.run.status != "failed":
            raise Conflict(f"run {run_id} is {tx.run.status!r}, not failed",
                           hint="only a failed run is retried"
                                + ("; a blocked one is resumed: `striatum run resume "
                                   f"{run_id} --decision accept|fail|revise`"
                                   if tx.run.status == "blocked" else ""),
                           state=tx.run.status)
        rows = tx.load_all()
        failed = [j for j in tx.wg.workflow.job_ids if rows[j].status == "failed"]
        if job_id is not None and job_id not in failed:
            raise Conflict(f"job {job_id!r} of run {run_id} is "
                           f"{rows[job_id].status if job_id in rows else 'not a job'}, "
                           "not failed",
                           hint="failed: " + (", ".join(failed) or "none"))
        # A failure fails its run at once, so a failed run has one failed job; naming it
        # (``job_id``) makes sure that is the one a script means to run again.
        chosen = failed
        was = dict(fetch(tx.cur, "cancelled_as", {"run": run_id}))
        data = {"by": "human", "reason": reason}
        tx.run_to("retry", {**data, "jobs": chosen})
        for member in tx.wg.workflow.job_ids:
            row = rows[member]
            if member in chosen or row.status == "cancelled":
                begun = member in chosen or was.get(member) != "pending"
                tx.job(member, "rerun", {**data, "granted": begun}, attempt=0, reason=None,
                       verdict=None)
        advance(tx)

    return transition(store, run_id, change)


def check_workable(store: Store, run_id: str) -> None:
    """Refuse, saying what to do instead, to work a run that no worker can move on."""
    run = get_run(store, run_id)
    hints = {
        "prepared": f"start it: `striatum run start {run_id} --wait`",
        "blocked": f"a human answers it first: `{resume_command(run_id, run.blocked_on)} "
                   "--wait`",
        "failed": f"run it again from its failed job: `striatum run retry {run_id} --wait`",
        "completed": "it is done: `striatum run status` shows it",
        "cancelled": "a cancelled run stays cancelled: prepare a new run of its workflow",
    }
    if run.status in hints:
        raise Conflict(f"run {run_id} is {run.status!r}: there is nothing to work",
                       hint=hints[run.status], state=run.status)


def _job(tx: Transition, job_id: str) -> JobRow:
    row = tx.row(job_id)
    if row is None:
        raise NotFound(f"run {tx.run.id} has no job {job_id!r}",
                       hint="jobs: " + ", ".join(tx.wg.workflow.job_ids))
    return row


@dataclass
class RunView:
    run: RunRow
    jobs: list[JobRow]
    head: tuple[int, str] | None
    granted: int = 0  # passes humans granted beyond the plan (a revision, a retry)
    reason: str | None = None  # why it failed or was cancelled
    logs: dict[str, str] = field(default_factory=dict)  # job -> its newest lane log
    # checkpoint -> (title, choices), for those that wait for a decision
    asks: dict[str, tuple[str | None, list[str]]] = field(default_factory=dict)

    @property
    def executions(self) -> int:
        return sum(job.executions for job in self.jobs)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run.id, "workflow": self.run.workflow_name,
            "digest": self.run.workflow_digest, "status": self.run.status,
            "repo": self.run.repo_path, "artifact_root": self.run.artifact_root,
            "blocked_on": self.run.blocked_on, "reason": self.reason,
            "executions": self.executions, "worst_case": self.run.worst_case,
            "granted": self.granted,
            "jobs": [{"job": j.job_id, "kind": j.kind, "lane": j.lane, "status": j.status,
                      "iteration": j.iteration, "attempt": j.attempt,
                      "executions": j.executions, "fence": j.fence,
                      "lease_owner": j.lease_owner,
                      "lease_expires_at": j.lease_expires_at.isoformat()
                      if j.lease_expires_at else None,
                      "chosen": j.chosen, "verdict": j.verdict, "reason": j.reason,
                      "log": self.logs.get(j.job_id),
                      **({"title": self.asks[j.job_id][0], "choices": self.asks[j.job_id][1]}
                         if j.job_id in self.asks else {})}
                     for j in self.jobs],
            "chain_head": {"seq": self.head[0], "hash": self.head[1]} if self.head else None,
        }


@dataclass(frozen=True)
class Waiting:
    """A job of a run that waits for a human, and the command that answers it."""

    job: str
    iteration: int
    # checkpoint; review: its revision budget is spent; escalation: its agent handed it to
    # a human (`job escalate`)
    kind: str
    command: str


def waiting(store: Store, run_id: str) -> list[Waiting]:
    """The jobs of the run waiting for a human, in file order (one read when none)."""
    found = store.execute("awaiting_decision", {"run": run_id})
    if not found:
        return []
    workflow = pinned.compiled_of(store, get_run(store, run_id).workflow_digest)
    out = []
    for job_id, iteration in found:
        spec = workflow.jobs[job_id]
        if spec.kind == "checkpoint":
            choices = "|".join(name for name, _ in spec.choices)
            out.append(Waiting(job_id, iteration, "checkpoint",
                               f"striatum checkpoint decide {run_id} {job_id} {choices}"))
        else:
            out.append(Waiting(job_id, iteration, "review" if spec.kind == "review"
                               else "escalation", resume_job(run_id, job_id)))
    return out


IDLE_REASONS = ("run_ended", "run_not_started", "no_such_lane", "waiting_for_human",
                "nothing_ready_yet")


@dataclass(frozen=True)
class Idle:
    """Why a claim found nothing, so that an agent's loop knows whether to stop, start
    the run, fix its lane, hand over to a human or wait: one of IDLE_REASONS."""

    run: str
    reason: str
    run_status: str
    detail: str  # one line that says what to do
    waiting: list[Waiting]
    in_flight: list[str]  # jobs leased to someone now
    lanes: list[str]  # the run's lanes
    claimed: ClassVar[bool] = False

    def to_json(self) -> dict[str, Any]:
        return {"claimed": False, "run": self.run, "reason": self.reason,
                "run_status": self.run_status, "detail": self.detail,
                "waiting": [vars(w) for w in self.waiting], "in_flight": self.in_flight,
                "lanes": self.lanes}


def idle(store: Store, run_id: str, lane: str | None) -> Idle:
    """Why nothing of ``run_id`` (for ``lane``, if given) is ready to claim now."""
    view = status(store, run_id)
    run = view.run
    lanes = sorted({job.lane for job in view.jobs if job.lane})
    in_flight = [job.job_id for job in view.jobs if job.status == "leased"]

    def said(reason: str, detail: str, waits: list[Waiting] | None = None) -> Idle:
        return Idle(run_id, reason, run.status, detail, waits or [], in_flight, lanes)

    if run.status in ("completed", "failed", "cancelled"):
        return said("run_ended", f"run {run_id} has ended ({run.status}): stop claiming")
    if run.status == "prepared":
        return said("run_not_started",
                    f"run {run_id} is prepared, not started: `striatum run start {run_id}`")
    if lane is not None and lane not in lanes:
        return said("no_such_lane", f"run {run_id} has no job on lane {lane!r}; its lanes: "
                    + (", ".join(lanes) or "none"))
    if budgets.stopped(run.blocked_on):
        key = (run.blocked_on or "")[len(budgets.PREFIX):]
        return said("waiting_for_human",
                    f"run {run_id} is over budget ({view.reason or key}) and waits for a "
                    f"human: `striatum run resume {run_id} --raise-budget {key}=N`")
    waits = waiting(store, run_id)
    if waits:
        return said("waiting_for_human",
                    f"run {run_id} waits for a human: " + "; ".join(w.command for w in waits),
                    waits)
    busy = f" ({', '.join(in_flight)} in flight)" if in_flight else ""
    return said("nothing_ready_yet",
                f"nothing of run {run_id} is ready yet{busy}: claim again shortly")


def get_run(store: Store, run_id: str) -> RunRow:
    found = store.read(RunRow, "run_record", {"run": run_id})
    if found is None:
        raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
    return found


def status(store: Store, run_id: str) -> RunView:
    with collector.paused():
        return _status(store, run_id)


def status_document(store: Store, run_id: str) -> dict[str, Any]:
    """``run status --json``: the run's view as JSON, made with the collector paused too."""
    with collector.paused():
        return _status(store, run_id).to_json()


def _status(store: Store, run_id: str) -> RunView:
    def work(cur: psycopg.Cursor[Any]) -> RunView:
        found = fetch_records(cur, RunRow, "run_record", {"run": run_id})
        if not found:
            raise NotFound(f"no run {run_id!r}", hint="`striatum run list` shows the runs")
        run = found[0]
        jobs = fetch_records(cur, JobRow, "get_jobs", {"run": run_id})
        head = fetch_one(cur, "chain_head", {"chain": repo_chain(run.repo_id)})
        view = RunView(run, jobs, (int(head[0]), str(head[1])) if head else None)
        granted = fetch_one(cur, "run_granted", {"run": run_id})
        view.granted = int(granted[0]) if granted else 0
        if run.status in ("failed", "cancelled"):
            ending = fetch_one(cur, "run_ending", {"run": run_id})
            view.reason = str(ending[1]) if ending and ending[1] else None
        elif budgets.stopped(run.blocked_on):
            view.reason = budgets.stop_reason(fetch(cur, "budget_stop", {"run": run_id}))
        if any(job.status in ("failed", "leased") or job.attempt for job in jobs):
            view.logs = {str(r[0]): str(r[1]) for r in fetch(cur, "run_logs", {"run": run_id})}
        return view

    view = store.transaction(work)
    waiting_ids = [j.job_id for j in view.jobs
                   if j.status == "awaiting_decision" and j.kind == "checkpoint"]
    if waiting_ids:
        workflow = pinned.compiled_of(store, view.run.workflow_digest)
        view.asks = {j: (workflow.jobs[j].title, [n for n, _ in workflow.jobs[j].choices])
                     for j in waiting_ids}
    return view


def list_runs(store: Store, repo: str | None, limit: int = 20, status: str | None = None
              ) -> list[dict[str, Any]]:
    """The newest runs (of ``repo``, else of every repository; in ``status`` if given)."""
    rows = store.execute("list_runs", {"repo": os.path.realpath(repo) if repo else None,
                                       "limit": limit, "status": status})
    return [{"run": r[0], "workflow": r[1], "status": r[2], "created_at": r[3].isoformat(),
             "updated_at": r[4].isoformat(), "executions": int(r[5]), "worst_case": r[6],
             "repo": r[7]}
            for r in rows]


def events(store: Store, run_id: str, after: int = 0, limit: int = EVENTS_PAGE
           ) -> list[dict[str, Any]]:
    """At most ``limit`` events of the run after seq ``after``, in order (one page:
    ``all_events`` reads them all)."""
    rows = store.execute("run_events", {"run": run_id, "after": after, "limit": limit})
    return [{"seq": r[0], "type": r[1], "job": r[2], "payload": json.loads(r[3]),
             "hash": r[4], "at": r[5].isoformat()} for r in rows]


def all_events(store: Store, run_id: str, after: int = 0) -> Iterable[dict[str, Any]]:
    """Every event of the run after seq ``after``, read a page at a time."""
    while True:
        page = events(store, run_id, after, EVENTS_PAGE)
        yield from page
        if len(page) < EVENTS_PAGE:
            return
        after = page[-1]["seq"]

