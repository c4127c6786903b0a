"""An independent oracle for the compiler's termination proof and plan.

The oracle below implements the run semantics from their written definition
(not from striatum.compiler.simulate) and explores them by brute force:

* a job is pending, succeeded or skipped; a pending job whose needs are all
  settled is skipped when every need is skipped, or when a need is a
  checkpoint that succeeded with a choice not listing it; otherwise it is ready;
* running a ready job is one execution: a task succeeds, a checkpoint picks any
  choice, a review says accept / reject (the run fails) / needs_revision (only
  with ``revise``): within budget the region {target} + descendants(target) -
  strict descendants(reviewer) goes back to pending, else ``on_exhausted``
  (escalate: blocked, fail: failed, accept: the reviewer succeeds);
* budgets are per run and never reset; the run completes when nothing is pending.

``max_executions`` maximises over every interleaving (any ready job may run
next) and every outcome, memoised on the whole state; ``canonical=True`` runs
the first ready job in ``wg.order`` instead.  ``paths`` counts the leaves of
the canonical decision tree (completed runs and runs ended early).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from striatum.compiler.compile import check
from striatum.compiler.plan import parse_verdicts, plan_document, walk, worst_case
from tests.unit.strategies import descendants, valid_workflows, workflow_file

PENDING, SUCCEEDED, SKIPPED = 0, 1, 2

# statuses per job, chosen choice per job (-1: none), revisions used per job
State = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
# (label, next state or None when the run ended, how it ended: None | "failed" | "blocked")
Outcome = tuple[str, State | None, str | None]


@dataclass(frozen=True)
class Oracle:
    ids: tuple[str, ...]  # file order
    kinds: tuple[str, ...]
    needs: tuple[tuple[int, ...], ...]
    choice_names: tuple[tuple[str, ...], ...]
    choice_sets: tuple[tuple[frozenset[int], ...], ...]
    revise: tuple[tuple[int, int, str] | None, ...]  # (target, max, on_exhausted)
    regions: tuple[frozenset[int], ...]
    priority: tuple[int, ...]  # job -> position in the canonical order

    @classmethod
    def from_document(cls, doc: dict[str, Any], order: list[str] | None = None) -> Oracle:
        jobs = doc["jobs"]
        ids = tuple(j["id"] for j in jobs)
        pos = {jid: i for i, jid in enumerate(ids)}
        needs = tuple(tuple(pos[n] for n in j.get("needs", [])) for j in jobs)
        children: list[list[int]] = [[] for _ in ids]
        for j, ns in enumerate(needs):
            for n in ns:
                children[n].append(j)
        revise: list[tuple[int, int, str] | None] = []
        regions: list[frozenset[int]] = []
        for j, job in enumerate(jobs):
            spec = job.get("revise")
            if spec is None:
                revise.append(None)
                regions.append(frozenset())
                continue
            t = pos[spec["target"]]
            revise.append((t, spec["max"], spec.get("on_exhausted", "escalate")))
            regions.append(frozenset(({t} | descendants(children, t))
                                     - descendants(children, j)))
        order = order or topological_order(doc)
        priority = [0] * len(ids)
        for k, jid in enumerate(order):
            priority[pos[jid]] = k
        return cls(
            ids=ids,
            kinds=tuple(j.get("kind", "task") for j in jobs),
            needs=needs,
            choice_names=tuple(tuple(j.get("choices", {})) for j in jobs),
            choice_sets=tuple(tuple(frozenset(pos[s] for s in succ)
                                    for succ in j.get("choices", {}).values()) for j in jobs),
            revise=tuple(revise),
            regions=tuple(regions),
            priority=tuple(priority),
        )

    # -- the semantics -------------------------------------------------------

    def settle(self, status: list[int], chosen: tuple[int, ...]) -> None:
        """Skip, to a fixpoint, every pending job whose settled needs say so."""
        changed = True
        while changed:
            changed = False
            for j, s in enumerate(status):
                if s != PENDING or not self.needs[j]:
                    continue
                needs = self.needs[j]
                if any(status[n] == PENDING for n in needs):
                    continue
                if all(status[n] == SKIPPED for n in needs) or any(
                        self.kinds[n] == "checkpoint" and status[n] == SUCCEEDED
                        and j not in self.choice_sets[n][chosen[n]] for n in needs):
                    status[j] = SKIPPED
                    changed = True

    def initial(self) -> State:
        n = len(self.ids)
        status = [PENDING] * n
        chosen = (-1,) * n
        self.settle(status, chosen)
        return tuple(status), chosen, (0,) * n

    def ready(self, state: State) -> list[int]:
        status = state[0]
        return [j for j, s in enumerate(status)
                if s == PENDING and all(status[n] != PENDING for n in self.needs[j])]

    def outcomes(self, state: State, j: int) -> list[Outcome]:
        status, chosen, used = state

        def succeed(choice: int = -1) -> State:
            st_ = list(status)
            st_[j] = SUCCEEDED
            ch = chosen if choice < 0 else (*chosen[:j], choice, *chosen[j + 1:])
            self.settle(st_, ch)
            return tuple(st_), ch, used

        kind = self.kinds[j]
        if kind == "task":
            return [("succeeded", succeed(), None)]
        if kind == "checkpoint":
            return [(name, succeed(c), None) for c, name in enumerate(self.choice_names[j])]
        out: list[Outcome] = [("accept", succeed(), None), ("reject", None, "failed")]
        spec = self.revise[j]
        if spec is None:
            return out
        _target, budget, on_exhausted = spec
        if used[j] < budget:
            st_ = list(status)
            for r in self.regions[j]:
                st_[r] = PENDING
            self.settle(st_, chosen)
            u = (*used[:j], used[j] + 1, *used[j + 1:])
            out.append(("needs_revision", (tuple(st_), chosen, u), None))
        elif on_exhausted == "accept":
            out.append(("needs_revision", succeed(), None))
        else:
            out.append(("needs_revision", None, "blocked" if on_exhausted == "escalate"
                        else "failed"))
        return out

    # -- exploration ---------------------------------------------------------

    def max_executions(self, *, canonical: bool = False) -> int:
        @cache
        def best(state: State) -> int:
            ready = self.ready(state)
            if not ready:
                assert all(s != PENDING for s in state[0]), f"stuck in {state}"
                return 0
            if canonical:
                ready = [min(ready, key=self.priority.__getitem__)]
            return max(1 + (best(nxt) if nxt is not None else 0)
                       for j in ready for _label, nxt, _end in self.outcomes(state, j))

        return best(self.initial())

    def paths(self) -> int:
        @cache
        def count(state: State) -> int:
            ready = self.ready(state)
            if not ready:
                return 1
            j = min(ready, key=self.priority.__getitem__)
            return sum(count(nxt) if nxt is not None else 1
                       for _label, nxt, _end in self.outcomes(state, j))

        return count(self.initial())

    def run(self, script: dict[str, list[str]]) -> tuple[str, list[tuple[str, str]]]:
        """Canonical run with per-job scripted outcomes: (status, [(job, label)])."""
        queues = {k: deque(v) for k, v in script.items()}
        state = self.initial()
        steps: list[tuple[str, str]] = []
        while True:
            ready = self.ready(state)
            if not ready:
                return "completed", steps
            j = min(ready, key=self.priority.__getitem__)
            options = {label: (nxt, end) for label, nxt, end in self.outcomes(state, j)}
            label = "succeeded" if self.kinds[j] == "task" else queues[self.ids[j]].popleft()
            steps.append((self.ids[j], label))
            nxt, end = options[label]
            if nxt is None:
                assert end is not None
                return end, steps
            state = nxt


def topological_order(doc: dict[str, Any]) -> list[str]:
    """Kahn's algorithm, ties broken by position in the file."""
    jobs = doc["jobs"]
    ids = [j["id"] for j in jobs]
    indeg = {jid: len(j.get("needs", [])) for jid, j in zip(ids, jobs, strict=True)}
    users: dict[str, list[str]] = {jid: [] for jid in ids}
    for j in jobs:
        for n in j.get("needs", []):
            users[n].append(j["id"])
    pos = {jid: i for i, jid in enumerate(ids)}
    order: list[str] = []
    frontier = sorted((jid for jid in ids if indeg[jid] == 0), key=pos.__getitem__)
    while frontier:
        jid = frontier.pop(0)
        order.append(jid)
        for u in users[jid]:
            indeg[u] -= 1
            if indeg[u] == 0:
                frontier.append(u)
        frontier.sort(key=pos.__getitem__)
    return order


def compile_valid(doc: dict[str, Any]) -> Any:
    with workflow_file(doc) as path:
        comp = check(path)
    assert comp.ok, [(d.code, d.message) for d in comp.diagnostics]
    return comp.graph


# --------------------------------------------------------------------------
# The oracle against the compiler

ORACLE_SETTINGS = {"deadline": None,
                   "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


# The smallest workflow whose worst case depends on the schedule: s is a side
# branch off r's target, so a schedule that runs s before r reruns it on revision
# (a s r(nr) a s r(accept) = 6) while the canonical order a, r, s runs it once, after
# the loop (a r(nr) a r(accept) s = 5).
SIDE_BRANCH_AFTER_REVIEWER = {
    "name": "w", "lanes": {"a": {"command": ["x"]}},
    "jobs": [{"id": "a", "lane": "a"},
             {"id": "r", "lane": "a", "kind": "review", "needs": ["a"],
              "revise": {"target": "a", "max": 1}},
             {"id": "s", "lane": "a", "needs": ["a"]}],
}


def check_plan_against_oracle(doc: dict[str, Any]) -> None:
    wg = compile_valid(doc)
    assert wg.order == topological_order(doc)
    oracle = Oracle.from_document(doc, wg.order)
    expected = oracle.max_executions()
    worst = worst_case(wg)
    assert (worst.executions, worst.exact) == (expected, True), doc
    assert plan_document(wg)["paths"] == oracle.paths(), doc


def check_canonical_order_within_bound(doc: dict[str, Any]) -> None:
    # The bound is a maximum over every order parallel workers may take: a
    # side branch that runs before its reviewer's verdict runs again after a
    # revision. The one-at-a-time order of `plan --verdicts` can only fall short.
    oracle = Oracle.from_document(doc)
    assert oracle.max_executions(canonical=True) <= oracle.max_executions(), doc


def test_side_branch_shows_why_the_bound_counts_every_order() -> None:
    oracle = Oracle.from_document(SIDE_BRANCH_AFTER_REVIEWER)
    assert oracle.max_executions() == 6
    assert oracle.max_executions(canonical=True) == 5


@settings(max_examples=300, **ORACLE_SETTINGS)
@given(valid_workflows())
@example(SIDE_BRANCH_AFTER_REVIEWER)
def test_worst_case_and_paths_match_the_oracle(doc: dict[str, Any]) -> None:
    check_plan_against_oracle(doc)


@settings(max_examples=300, **ORACLE_SETTINGS)
@given(valid_workflows())
@example(SIDE_BRANCH_AFTER_REVIEWER)
def test_canonical_order_stays_within_the_bound(doc: dict[str, Any]) -> None:
    check_canonical_order_within_bound(doc)


@pytest.mark.soak
@settings(max_examples=3000, **ORACLE_SETTINGS)
@given(valid_workflows())
def test_soak_worst_case_and_paths_match_the_oracle(doc: dict[str, Any]) -> None:
    check_plan_against_oracle(doc)


@pytest.mark.soak
@settings(max_examples=3000, **ORACLE_SETTINGS)
@given(valid_workflows())
def test_soak_canonical_order_stays_within_the_bound(doc: dict[str, Any]) -> None:
    check_canonical_order_within_bound(doc)


# --------------------------------------------------------------------------
# Every run terminates within the plan's bound

REVIEW_VERDICTS = ("accept", "needs_revision", "needs_revision", "needs_revision", "reject")


@st.composite
def scripted_runs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, list[str]]]:
    doc = draw(valid_workflows())
    script: dict[str, list[str]] = {}
    # Long enough that no job ever runs out of scripted outcomes.
    length = Oracle.from_document(doc).max_executions() + 1
    for job in doc["jobs"]:
        kind = job.get("kind", "task")
        if kind == "review":
            pool = REVIEW_VERDICTS if "revise" in job else ("accept", "accept", "reject")
        elif kind == "checkpoint":
            pool = tuple(job["choices"])
        else:
            continue
        script[job["id"]] = draw(st.lists(st.sampled_from(pool), min_size=length,
                                          max_size=length))
    return doc, script


def interleave(script: dict[str, list[str]]) -> str:
    """The script as parse_verdicts text; per-job order is what matters."""
    items: list[str] = []
    queues = {k: deque(v) for k, v in script.items()}
    while any(queues.values()):
        for job, q in queues.items():
            if q:
                items.append(f"{job}={q.popleft()}")
    return ",".join(items)


def check_walk(doc: dict[str, Any], script: dict[str, list[str]]) -> None:
    wg = compile_valid(doc)
    oracle = Oracle.from_document(doc, wg.order)
    outcome, unused = walk(wg, parse_verdicts(interleave(script), wg))
    assert outcome.executions <= worst_case(wg).executions
    status, steps = oracle.run(script)
    ran = [(s.job, s.outcome) for s in outcome.steps]
    executed = [s for s in ran if s[1] != "skipped"]
    assert len(executed) == outcome.executions
    assert [job for job, _ in executed] == [job for job, _ in steps], (doc, script)
    for (job, got), (_, want) in zip(executed, steps, strict=True):
        if want != "succeeded":  # a task's step label is the walker's own word
            assert got == want, (job, doc, script)
    assert outcome.status == status, (doc, script)
    assert len(unused) == sum(len(v) for v in script.values()) - sum(
        1 for job, _ in steps if job in script)


@settings(max_examples=300, **ORACLE_SETTINGS)
@given(scripted_runs())
def test_every_walk_terminates_within_the_bound(
        run: tuple[dict[str, Any], dict[str, list[str]]]) -> None:
    check_walk(*run)


@pytest.mark.soak
@settings(max_examples=3000, **ORACLE_SETTINGS)
@given(scripted_runs())
def test_soak_every_walk_terminates_within_the_bound(
        run: tuple[dict[str, Any], dict[str, list[str]]]) -> None:
    check_walk(*run)



# --------------------------------------------------------------------------
# The oracle itself agrees with the hand-worked cases of test_proofs


def test_oracle_agrees_with_the_hand_worked_cases() -> None:
    from tests.unit.test_proofs import CHECKPOINTED, CODE_CHANGE, NESTED

    for doc, worst, canonical, paths in ((CODE_CHANGE, 5, 5, 5), (NESTED, 11, 11, 21),
                                         (CHECKPOINTED, 9, 9, 8),
                                         (SIDE_BRANCH_AFTER_REVIEWER, 6, 5, 5)):
        oracle = Oracle.from_document(doc)
        assert oracle.max_executions() == worst, doc
        assert oracle.max_executions(canonical=True) == canonical, doc
        assert oracle.paths() == paths, doc
    oracle = Oracle.from_document(CODE_CHANGE)
    assert oracle.run({"check": ["needs_revision", "accept"]}) == ("completed", [
        ("draft", "succeeded"), ("check", "needs_revision"), ("draft", "succeeded"),
        ("check", "accept"), ("apply", "succeeded")])
    assert oracle.run({"check": ["needs_revision", "needs_revision"]})[0] == "blocked"
