"""The run semantics, executed one job at a time with no database.

This is the reference the runtime follows and ``plan --verdicts`` walks:

* a job is *ready* when each need has succeeded or been skipped; it is
  *skipped* instead when every need was skipped, or when a need is a decided
  checkpoint whose chosen choice does not list it;
* a review ends in ``accept`` (succeeded), ``reject`` (the run fails) or
  ``needs_revision``: while its budget lasts, its region (the target and
  everything downstream of it that is not downstream of the reviewer) goes
  back to pending; once spent, ``on_exhausted`` decides (escalate blocks the
  run for a human, fail fails it, accept accepts);
* a checkpoint's decision names one of its choices;
* budgets are per run: a reviewer sends work back at most ``max`` times.

Ready jobs run in topological order, ties broken by position in the file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .graph import WorkflowGraph

PENDING, SUCCEEDED, SKIPPED = "pending", "succeeded", "skipped"


@dataclass
class Step:
    job: str
    kind: str
    outcome: str | None  # a verdict or a choice; None for a task
    execution: int  # 1 for the job's first run, 2 for its second, ...
    note: str = ""


@dataclass
class Outcome:
    status: str  # completed | failed | blocked
    steps: list[Step] = field(default_factory=list)
    executions: int = 0


Decide = Callable[[str, str, tuple[str, ...]], str]
"""(job id, job kind, possible outcomes) -> the outcome to take."""


def resolve(wg: WorkflowGraph, job_id: str, status: Mapping[str, str],
            chosen: Mapping[str, str]) -> str | None:
    """The readiness rule for a pending job: "ready", "skipped", or None (still waiting).

    The runtime's engine calls this same function, so ``plan`` and a real run
    can never disagree on what runs next.
    """
    job = wg.jobs[job_id]
    if not job.needs:
        return "ready"
    states = [status[n] for n in job.needs]
    if any(s != SUCCEEDED and s != SKIPPED for s in states):
        return None
    for need in job.needs:
        if status[need] == SUCCEEDED and need in chosen:
            allowed = dict(wg.jobs[need].choices)[chosen[need]]
            if job_id not in allowed:
                return "skipped"
    if all(s == SKIPPED for s in states):
        return "skipped"
    return "ready"


class Simulation:
    def __init__(self, wg: WorkflowGraph) -> None:
        self.wg = wg
        self.status = {job_id: PENDING for job_id in wg.order}
        self.chosen: dict[str, str] = {}
        self.used = {reviewer: 0 for reviewer in wg.regions}
        self.runs = {job_id: 0 for job_id in wg.order}
        self.position = {job_id: i for i, job_id in enumerate(wg.order)}
        # Every job before ``cursor`` in ``wg.order`` is settled (not pending):
        # scanning starts there, so a run of n jobs costs O(n), not O(n^2).
        self.cursor = 0

    def _resolve(self, job_id: str) -> str | None:
        return resolve(self.wg, job_id, self.status, self.chosen)

    def next_ready(self) -> str | None:
        order = self.wg.order
        while self.cursor < len(order) and self.status[order[self.cursor]] != PENDING:
            self.cursor += 1
        for index in range(self.cursor, len(order)):
            job_id = order[index]
            if self.status[job_id] != PENDING:
                continue
            state = self._resolve(job_id)
            if state == "skipped":
                self.status[job_id] = SKIPPED
            elif state == "ready":
                return job_id
        return None

    def apply(self, job_id: str, outcome: str | None) -> tuple[str | None, str]:
        """Run ``job_id`` with ``outcome``; returns (run status if it ended, note)."""
        job = self.wg.jobs[job_id]
        self.runs[job_id] += 1
        if job.kind == "checkpoint":
            assert outcome is not None
            self.chosen[job_id] = outcome
            self.status[job_id] = SUCCEEDED
            return None, ""
        if job.kind != "review" or outcome == "accept":
            self.status[job_id] = SUCCEEDED
            return None, ""
        if outcome == "reject":
            return "failed", "rejected"
        region = self.wg.regions[job_id]
        if self.used[job_id] < region.max:
            self.used[job_id] += 1
            for member in region.reruns:
                self.status[member] = PENDING
                self.cursor = min(self.cursor, self.position[member])
            return None, f"revision {self.used[job_id]} of {region.max}: back to {region.target}"
        if region.on_exhausted == "accept":
            self.status[job_id] = SUCCEEDED
            return None, "budget spent: accepted (on_exhausted: accept)"
        if region.on_exhausted == "fail":
            return "failed", "budget spent: the run fails (on_exhausted: fail)"
        return "blocked", "budget spent: escalated to a human (on_exhausted: escalate)"


def run(wg: WorkflowGraph, decide: Decide, max_steps: int = 1_000_000) -> Outcome:
    sim = Simulation(wg)
    outcome = Outcome("completed")
    while True:
        job_id = sim.next_ready()
        if job_id is None:
            return outcome
        job = wg.jobs[job_id]
        options = job.outcomes
        choice = decide(job_id, job.kind, options) if options else None
        ended, note = sim.apply(job_id, choice)
        outcome.executions += 1
        outcome.steps.append(Step(job_id, job.kind, choice, sim.runs[job_id], note))
        if ended is not None:
            outcome.status = ended
            return outcome
        if outcome.executions >= max_steps:  # pragma: no cover - the proof forbids it
            raise RuntimeError("simulation did not end: the termination proof is wrong")


PATHS_WORK = 2_000_000  # job states copied or scanned before counting gives up
PATHS_STEPS = (1_000, 50_000)  # the fewest and the most steps counting may take


def count_paths(wg: WorkflowGraph, limit: int | None = None) -> int | None:
    """Distinct outcome sequences (verdicts and choices) of a run, or None past ``limit`` steps.

    Depth-first over the decision tree with an explicit stack (a workflow
    may hold thousands of decisions along one path). One run's state is
    shared by every branch: each write is logged, and going back to a
    decision undoes the writes made since, so a branch costs what it changes,
    not a copy of every job's state. The default budget still shrinks as the
    workflow grows: the count is exact or absent.
    """
    if limit is None:
        fewest, most = PATHS_STEPS
        limit = min(most, max(fewest, PATHS_WORK // max(1, len(wg.order))))
    count = 0
    steps = 0
    sim = Simulation(wg)
    log: list[tuple[dict[str, Any], str, Any]] = []
    sim.status, sim.chosen, sim.used = (_Logged(log, d) for d in (sim.status, sim.chosen,
                                                                  sim.used))
    # A decision still to branch on: the log's length and the cursor before it,
    # the job, and the options not yet tried.
    decisions: list[tuple[int, int, str, list[str]]] = []
    while True:
        steps += 1
        if steps > limit:
            return None
        job_id = sim.next_ready()
        if job_id is not None:
            options = wg.jobs[job_id].outcomes
            if not options:
                sim.apply(job_id, None)
                continue
            decisions.append((len(log), sim.cursor, job_id, list(options)))
        else:
            count += 1
        while decisions:  # the next option to try, the latest decision first
            mark, cursor, job_id, left = decisions[-1]
            _undo(log, mark)
            sim.cursor = cursor
            if not left:
                decisions.pop()
                continue
            ended, _ = sim.apply(job_id, left.pop(0))
            if ended is None:
                break
            count += 1
        else:
            return count


_ABSENT = object()


class _Logged(dict[str, Any]):
    """A dict that logs the value each write replaced, for ``_undo``."""

    __slots__ = ("log",)

    def __init__(self, log: list[tuple[dict[str, Any], str, Any]], items: dict[str, Any]
                 ) -> None:
        super().__init__(items)
        self.log = log

    def __setitem__(self, key: str, value: Any) -> None:
        self.log.append((self, key, self.get(key, _ABSENT)))
        super().__setitem__(key, value)


def _undo(log: list[tuple[dict[str, Any], str, Any]], mark: int) -> None:
    while len(log) > mark:
        target, key, old = log.pop()
        if old is _ABSENT:
            dict.__delitem__(target, key)
        else:
            dict.__setitem__(target, key, old)


def _copy(sim: Simulation, *, share_runs: bool = False) -> Simulation:
    new = Simulation.__new__(Simulation)
    new.wg = sim.wg
    new.status = dict(sim.status)
    new.chosen = dict(sim.chosen)
    new.used = dict(sim.used)
    new.runs = sim.runs if share_runs else dict(sim.runs)
    new.position = sim.position
    new.cursor = sim.cursor
    return new
