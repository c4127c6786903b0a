"""Helpers shared by the integration tests: the examples, a scripted agent, owner SQL.

The agent drives a run through the same core functions the CLI calls
(``leases.claim`` / ``publish`` / ``complete`` / ``verdict``, ``runs.decide``),
taking its verdicts and checkpoint choices from callables, so a test can
script them or let hypothesis draw them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from striatum.runtime import leases, runs
from striatum.runtime.runs import RunView
from striatum.runtime.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_DIR = REPO_ROOT / "examples"
EXAMPLES = sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/workflow.json"))
ENDED = ("completed", "failed", "cancelled")

Verdict = Callable[[leases.Claim], str]
"""The claim of a review -> accept | needs_revision | reject."""
Choose = Callable[[str, list[str]], str]
"""(checkpoint id, its choices) -> the choice."""


def example(name: str) -> str:
    return str(EXAMPLES_DIR / name / "workflow.json")


def planned_worst_case(workflow_file: str) -> int:
    """The compiler's worst case, computed without the runtime."""
    from striatum.compiler.compile import check, compile_bytes

    comp = check(workflow_file)
    assert comp.ok, [d.to_json() for d in comp.diagnostics]
    data, _ = compile_bytes(comp)
    return int(json.loads(data)["plan"]["worst_case_job_executions"])


def compiled_jobs(store: Store, run_id: str) -> dict[str, dict[str, Any]]:
    row = store._conn.execute(
        "SELECT w.compiled FROM striatum.workflows w JOIN striatum.runs r "
        "ON r.workflow_digest = w.digest WHERE r.id = %s", (run_id,)).fetchone()
    assert row is not None, run_id
    return {job["id"]: job for job in json.loads(row[0])["workflow"]["jobs"]}


def scripted(verdicts: dict[str, list[str]] | None = None) -> Verdict:
    """Each reviewer takes the next verdict of its list, then accepts."""
    queues = {job: list(outcomes) for job, outcomes in (verdicts or {}).items()}

    def verdict(claim: leases.Claim) -> str:
        queue = queues.get(claim.job)
        return queue.pop(0) if queue else "accept"

    return verdict


def choosing(choices: dict[str, str] | None = None) -> Choose:
    """Each checkpoint takes its scripted choice, else "continue" when it has one."""

    def choose(job_id: str, options: list[str]) -> str:
        if choices and job_id in choices:
            return choices[job_id]
        return "continue" if "continue" in options else options[0]

    return choose


def reason_for(claim: leases.Claim, outcome: str) -> str:
    return f"{claim.job} says {outcome} at iteration {claim.iteration} (fence {claim.fence})"


@dataclass
class Step:
    """One thing the agent did: a claimed job and how it ended it, or a decision."""

    job: str
    kind: str
    iteration: int
    attempt: int
    fence: int
    prompt_file: str | None
    outcome: str | None = None
    reason: str | None = None


@dataclass
class Agent:
    """Claims jobs of one run and ends each one: publish, then complete or a verdict."""

    store: Store
    run_id: str
    workdir: Path
    verdict: Verdict = field(default_factory=scripted)
    choose: Choose = field(default_factory=choosing)
    owner: str = "agent"
    steps: list[Step] = field(default_factory=list)

    def write(self, claim: leases.Claim, name: str) -> Path:
        path = self.workdir / f"{claim.job}-{claim.fence}-{name.replace('/', '_')}"
        path.write_text(f"# {name}\n{claim.job} iteration {claim.iteration} fence "
                        f"{claim.fence}\n", encoding="utf-8")
        return path

    def publish_all(self, claim: leases.Claim) -> None:
        for name in claim.produces:
            leases.publish(self.store, self.run_id, claim.job, claim.token,
                           str(self.write(claim, name)), name)

    def act(self, claim: leases.Claim) -> Step:
        step = Step(claim.job, claim.kind, claim.iteration, claim.attempt, claim.fence,
                    claim.prompt_file)
        self.publish_all(claim)
        if claim.kind == "review":
            step.outcome = self.verdict(claim)
            step.reason = reason_for(claim, step.outcome)
            leases.verdict(self.store, self.run_id, claim.job, claim.token, step.outcome,
                           step.reason)
        else:
            leases.complete(self.store, self.run_id, claim.job, claim.token)
        self.steps.append(step)
        return step

    def decide_checkpoints(self, view: RunView) -> bool:
        waiting = [j for j in view.jobs if j.status == "awaiting_decision"
                   and j.kind == "checkpoint"]
        if not waiting:
            return False
        specs = compiled_jobs(self.store, self.run_id)
        for job in waiting:
            choice = self.choose(job.job_id, sorted(specs[job.job_id]["choices"]))
            runs.decide(self.store, self.run_id, job.job_id, choice)
            self.steps.append(Step(job.job_id, "checkpoint", job.iteration, job.attempt,
                                   job.fence, None, choice))
        return True

    def step(self) -> bool:
        """Do one thing; False when the run is no longer running or nothing can be done."""
        view = runs.status(self.store, self.run_id)
        if view.run.status != "running":
            return False
        if self.decide_checkpoints(view):
            return True
        claim = leases.claim(self.store, self.run_id, owner=self.owner)
        if claim is None:
            return False
        self.act(claim)
        return True

    def drive(self, max_steps: int = 500, *, bounded: bool = True) -> RunView:
        """Step until the run stops running; with ``bounded``, the executions stay within
        the run's worst case after every step."""
        for _ in range(max_steps):
            if not self.step():
                break
            view = runs.status(self.store, self.run_id)
            assert not bounded or view.executions <= view.run.worst_case, view.to_json()
        else:
            raise AssertionError(f"run {self.run_id} did not stop in {max_steps} steps")
        return runs.status(self.store, self.run_id)

    def claims_of(self, job_id: str) -> list[Step]:
        return [s for s in self.steps if s.job == job_id and s.prompt_file is not None]


def start_run(store: Store, workflow_file: str, repo: Path) -> str:
    run_id = runs.prepare(store, workflow_file, str(repo), overrides={})
    runs.start(store, run_id)
    return run_id


def to_checkpoint(store: Store, repo: Path, workdir: Path) -> str:
    """A started run of human-checkpoint, worked until its checkpoint waits."""
    run_id = start_run(store, example("human-checkpoint"), repo)
    agent = Agent(store, run_id, workdir)
    while not runs.waiting(store, run_id):
        claim = leases.claim(store, run_id, owner="agent")
        assert claim is not None
        agent.act(claim)
    return run_id


def statuses(view: RunView) -> dict[str, str]:
    return {job.job_id: job.status for job in view.jobs}


def event_types(store: Store, run_id: str, job_id: str | None = None) -> list[str]:
    return [e["type"] for e in runs.events(store, run_id)
            if job_id is None or e["job"] == job_id]


@contextmanager
def owner_connection(dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection as the database owner (not the runtime role), autocommit, closed after."""
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        yield conn
    finally:
        conn.close()


def counted_slices(monkeypatch: Any) -> list[int]:
    """Record the size of every batch ``runtime.batches`` writes (a pytest monkeypatch
    undoes it after the test)."""
    from striatum.runtime import batches

    sliced: list[int] = []
    slices = batches.slices

    def counted(items: Any, size: int = batches.BATCH) -> Any:
        sliced.append(len(items))
        return slices(items, size)

    monkeypatch.setattr(batches, "slices", counted)
    return sliced


@contextmanager
def unproven(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """Lift the constraint that refuses events whose columns disagree with their payload,
    as a forger with the owner's login can; on the way out put it back as such a forger
    must: NOT VALID, then validated only if every row agrees with its payload again."""
    from psycopg import sql

    from striatum.runtime.doctor import PROOF_DEFINITION

    conn.execute("ALTER TABLE striatum.events DROP CONSTRAINT events_columns_hashed")
    try:
        yield
    finally:
        conn.execute(sql.SQL("ALTER TABLE striatum.events ADD CONSTRAINT events_columns_hashed "
                             + PROOF_DEFINITION + " NOT VALID"))
        try:
            with conn.transaction():
                conn.execute("ALTER TABLE striatum.events VALIDATE CONSTRAINT "
                             "events_columns_hashed")
        except (psycopg.errors.CheckViolation, psycopg.DataError):
            pass  # left unvalidated: doctor says so, and checks every row itself


def write_state_columns(conn: psycopg.Connection[Any], repo_id: int, seq: int) -> None:
    """Give a forged event the state columns its payload names, as a careful forger
    would (the runtime reads them from the payload as it appends)."""
    conn.execute("UPDATE striatum.events e SET (status, iteration, attempt, executions, "
                 "revisions_used, fence, lease_owner, chosen, verdict, blocked_on) = "
                 "(SELECT * FROM jsonb_to_record(e.payload::jsonb -> 'state') AS s(status text, "
                 "iteration integer, attempt integer, executions integer, revisions_used "
                 "integer, fence bigint, lease_owner text, chosen text, verdict text, "
                 "blocked_on text)) WHERE repo_id = %s AND seq = %s", (repo_id, seq))


def expire_lease(dsn: str, run_id: str, job_id: str) -> None:
    with owner_connection(dsn) as conn:
        conn.execute("UPDATE striatum.jobs SET lease_expires_at = now() - interval '1 second' "
                     "WHERE run_id = %s AND job_id = %s", (run_id, job_id))


def write_workflow(directory: Path, document: dict[str, Any]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "workflow.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return str(path)


def fan_out_workflow(directory: Path, width: int, *, revise_max: int = 1) -> str:
    """seed -> width parallel tasks -> a gate review that may send seed back."""
    tasks = [f"t{i:02d}" for i in range(width)]
    jobs: list[dict[str, Any]] = [
        {"id": "seed", "lane": "worker", "prompt": {"text": "seed"}, "produces": ["seed.md"]}]
    jobs += [{"id": t, "lane": "worker", "needs": ["seed"], "prompt": {"text": t},
              "produces": [f"{t}.md"], "consumes": ["seed.md"]} for t in tasks]
    jobs.append({"id": "gate", "lane": "reviewer", "kind": "review", "needs": tasks,
                 "prompt": {"text": "gate"}, "consumes": [f"{t}.md" for t in tasks],
                 "revise": {"target": "seed", "max": revise_max}})
    return write_workflow(directory, {
        "name": "fan-out",
        "lanes": {"worker": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
        "jobs": jobs})


def rewind_projections(conn: psycopg.Connection[Any], run_id: str) -> None:
    """Make the jobs and runs tables say what the run's remaining events say (a tamper
    that leaves the database agreeing with itself); a run with no event left is removed."""
    jobs: dict[str, dict[str, Any]] = {}
    run: dict[str, Any] = {}
    for job_id, kind, payload in conn.execute(
            "SELECT job_id, type, payload FROM striatum.events WHERE run_id = %s ORDER BY seq",
            (run_id,)):
        body = json.loads(payload)
        if kind == "run.prepare":
            jobs = {j: dict(state) for j, state in body["data"]["jobs"].items()}
            run = body["state"]
        elif kind.startswith("run."):
            run = body["state"]
        elif kind.startswith("job."):
            jobs[job_id] = body["state"]
    if not run:
        for table in ("verdicts", "artifacts", "leases", "jobs"):
            conn.execute(f"DELETE FROM striatum.{table} WHERE run_id = %s",  # noqa: S608
                         (run_id,))
        conn.execute("DELETE FROM striatum.runs WHERE id = %s", (run_id,))
        return
    for job_id, state in jobs.items():
        conn.execute(
            "UPDATE striatum.jobs SET status = %(status)s, iteration = %(iteration)s, "
            "attempt = %(attempt)s, executions = %(executions)s, "
            "revisions_used = %(revisions_used)s, fence = %(fence)s, "
            "lease_owner = %(lease_owner)s, chosen = %(chosen)s, verdict = %(verdict)s "
            "WHERE run_id = %(run)s AND job_id = %(job)s", {**state, "run": run_id,
                                                            "job": job_id})
    unsettled = sum(s["status"] not in ("succeeded", "skipped") for s in jobs.values())
    conn.execute("UPDATE striatum.runs SET status = %s, blocked_on = %s, unsettled = %s "
                 "WHERE id = %s", (run["status"], run["blocked_on"], unsettled, run_id))
