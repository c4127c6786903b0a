"""The workflow as a graph, and the checks that prove it can run and ends.

Forward edges are ``needs`` (need -> job) and must form a DAG. Revision edges
(reviewer -> target) are kept apart, each with its budget; they are legal
only back to an ancestor, so every loop is a bounded walk over a DAG region.

Reachability is held as Python ints used as bitsets (one bit per job):
``reach[j]`` has the bits of ``j`` and everything downstream of it. One pass
in reverse topological order builds all of them, which keeps a 10,000-job
workflow with a thousand review loops in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from .diagnostics import Diagnostic, diag
from .ir import Job, Workflow
from .suggest import did_you_mean
from .text import echo

if TYPE_CHECKING:
    import networkx as nx


@dataclass(frozen=True, slots=True)
class Region:
    """What a reviewer's ``needs_revision`` sends back to ``pending``.

    ``loop`` is the region from the target to the reviewer (what a reader
    calls the loop); ``reruns`` adds the side branches hanging off the target
    that may already have run on the old output and so run again too.
    """

    reviewer: str
    target: str
    max: int
    on_exhausted: str
    loop: tuple[str, ...]
    reruns: tuple[str, ...]


@dataclass
class WorkflowGraph:
    """Adjacency, a topological order and reachability: all the runtime needs.

    ``graph`` (networkx) is built by the compiler for the proofs; the runtime
    rebuilds a WorkflowGraph from compiled JSON without importing networkx,
    which keeps the agent-facing verbs fast to start.
    """

    workflow: Workflow
    order: list[str]  # a topological order, ties broken by position in the file; [] if cyclic
    index: dict[str, int]  # job id -> bit number (its position in the file)
    succ: dict[str, list[str]]
    pred: dict[str, list[str]]
    nx_graph: nx.DiGraph | None = field(default=None, repr=False)
    memo: dict[str, Any] = field(default_factory=dict, repr=False)  # derived results

    @property
    def graph(self) -> nx.DiGraph:
        if self.nx_graph is None:
            import networkx as nx

            self.nx_graph = nx.DiGraph()
            self.nx_graph.add_nodes_from(self.workflow.job_ids)
            self.nx_graph.add_edges_from((a, b) for a, succ in self.succ.items() for b in succ)
        return self.nx_graph

    @cached_property
    def jobs(self) -> dict[str, Job]:
        return {job.id: job for job in self.workflow.jobs}

    @cached_property
    def reach(self) -> dict[str, int]:
        """job -> bitset of itself and all its descendants."""
        reach: dict[str, int] = {}
        succ = self.succ
        for node in reversed(self.order):
            bits = 1 << self.index[node]
            for child in succ[node]:
                bits |= reach[child]
            reach[node] = bits
        return reach

    def bit(self, job_id: str) -> int:
        return 1 << self.index[job_id]

    def ids_of(self, bits: int) -> tuple[str, ...]:
        """The job ids in a bitset, in file order."""
        out = []
        jobs = self.workflow.jobs
        while bits:
            low = bits & -bits
            out.append(jobs[low.bit_length() - 1].id)
            bits ^= low
        return tuple(out)

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        # Searched upward from ``descendant``, never past ``ancestor``'s place in
        # the topological order: whole-graph bitsets would cost n²/2 bits on a chain.
        if ancestor == descendant:
            return False
        rank = self.rank
        floor = rank[ancestor]
        if rank[descendant] < floor:
            return False
        if ancestor in self.needs_of[descendant]:
            return True
        seen = {descendant}
        stack = [descendant]
        while stack:
            for parent in self.pred[stack.pop()]:
                if parent == ancestor:
                    return True
                if parent not in seen and rank[parent] > floor:
                    seen.add(parent)
                    stack.append(parent)
        return False

    @cached_property
    def rank(self) -> dict[str, int]:
        """job -> its position in ``order``."""
        return {job_id: i for i, job_id in enumerate(self.order)}

    @cached_property
    def needs_of(self) -> dict[str, frozenset[str]]:
        return {job_id: frozenset(needs) for job_id, needs in self.pred.items()}

    @cached_property
    def ancestors_bits(self) -> dict[str, int]:
        """job -> bitset of itself and everything upstream (built in topological order)."""
        anc: dict[str, int] = {}
        for node in self.order:
            bits = 1 << self.index[node]
            for parent in self.pred[node]:
                bits |= anc[parent]
            anc[node] = bits
        return anc

    def reach_within(self, targets: list[str]) -> dict[str, int]:
        """job -> which of ``targets`` are it or downstream of it, as bits numbered by
        position in ``targets``: the closure over a few jobs, not over all of them."""
        number = {job_id: 1 << k for k, job_id in enumerate(targets)}
        out: dict[str, int] = {}
        succ = self.succ
        for node in reversed(self.order):
            bits = number.get(node, 0)
            for child in succ[node]:
                bits |= out[child]
            out[node] = bits
        return out

    def unrelated(self, members: list[str], *, both_ways: bool = True) -> dict[str, int]:
        """member -> the other members neither upstream nor downstream of it (with
        ``both_ways=False``: only those before it in ``order``), as bits numbered by
        the members' positions in ``order``.

        Built from the complement of the closure: what comes earlier in the order
        and is not an ancestor, through each need, is what was earlier and not an
        ancestor of that need, plus the members between the need and the job. On a
        line it is always empty, so the cost follows the answer's size, not n² bits
        (``reach`` and ``ancestors_bits``)."""
        wanted = set(members)
        after: dict[str, int] = {}  # job -> members at or before it in ``order``
        count = 0
        for node in self.order:
            count += node in wanted
            after[node] = count
        earlier = _unrelated_pass(self.order, self.pred, after, wanted, forward=True)
        if not both_ways:
            return {m: earlier[m] for m in members}
        later = _unrelated_pass(self.order[::-1], self.succ, after, wanted, forward=False)
        return {m: earlier[m] | later[m] for m in members}

    def followed_by(self, members: set[str]) -> dict[str, bool]:
        """job -> whether one of ``members`` is strictly downstream of it (a flag a
        job, where ``reach_within`` would hold a bit per member)."""
        out: dict[str, bool] = {}
        succ = self.succ
        for node in reversed(self.order):
            out[node] = any(child in members or out[child] for child in succ[node])
        return out

    def _loop_and_reruns(self, target: str, reviewer: str) -> tuple[list[str], list[str]]:
        """Jobs on a path from ``target`` to ``reviewer``, and jobs below ``target``
        but not strictly below ``reviewer``; both in topological order."""
        rank, pred = self.rank, self.pred
        floor = rank[target]
        upstream = {reviewer}  # the reviewer and its ancestors not above the target
        stack = [reviewer]
        while stack:
            for parent in pred[stack.pop()]:
                if parent not in upstream and rank[parent] >= floor:
                    upstream.add(parent)
                    stack.append(parent)
        loop = self._below(target, lambda job: job in upstream)
        top = rank[reviewer]
        # Whatever is strictly below the reviewer has all its descendants there too,
        # so the walk stops at the first such job on every path.
        reruns = self._below(target, lambda job: rank[job] <= top
                             or not self.is_ancestor(reviewer, job))
        return loop, reruns

    def _below(self, start: str, keep: Callable[[str], bool]) -> list[str]:
        """``start`` and the jobs reached from it through jobs that ``keep`` accepts."""
        found = [start]
        seen = {start}
        stack = [start]
        succ = self.succ
        while stack:
            for child in succ[stack.pop()]:
                if child not in seen:
                    seen.add(child)
                    if keep(child):
                        found.append(child)
                        stack.append(child)
        return found

    def _in_file_order(self, job_ids: list[str]) -> tuple[str, ...]:
        index = self.index
        return tuple(sorted(job_ids, key=index.__getitem__))

    @cached_property
    def regions(self) -> dict[str, Region]:
        regions = {}
        for job in self.workflow.jobs:
            if job.revise is None:
                continue
            target, reviewer = job.revise.target, job.id
            loop, reruns = self._loop_and_reruns(target, reviewer)
            regions[reviewer] = Region(
                reviewer=reviewer, target=target, max=job.revise.max,
                on_exhausted=job.revise.on_exhausted, loop=self._in_file_order(loop),
                reruns=self._in_file_order(reruns))
        return regions

    def region_bits(self, reviewer: str) -> int:
        """The bitset of ``regions[reviewer].reruns``."""
        memo = self.memo.setdefault("region_bits", {})
        if reviewer not in memo:
            positions = [self.index[job_id] for job_id in self.regions[reviewer].reruns]
            low = positions[0]
            bits = 0
            for position in positions:
                bits |= 1 << (position - low)
            memo[reviewer] = bits << low
        return cast(int, memo[reviewer])

    def reruns_left(self, reviewer: str, skipped: int) -> tuple[str, ...]:
        """``regions[reviewer].reruns`` less the jobs in ``skipped``, in file order."""
        if not skipped:
            # The region's bitset is as long as the file up to it: with nothing
            # skipped, thousands of reviewers would each build and scan one.
            return self.regions[reviewer].reruns
        return self.ids_of(self.region_bits(reviewer) & ~skipped)

    def among(self, job_id: str, bits: int) -> bool:
        """Whether ``job_id``'s bit is set in ``bits``."""
        return bool(bits) and bool(bits >> self.index[job_id] & 1)

    @cached_property
    def sinks(self) -> tuple[str, ...]:
        return tuple(j.id for j in self.workflow.jobs if not self.succ[j.id])


def _span(lo: int, hi: int) -> int:
    return ((1 << (hi - lo)) - 1) << lo if hi > lo else 0


def _unrelated_pass(order: list[str], links: dict[str, list[str]], after: dict[str, int],
                    wanted: set[str], *, forward: bool) -> dict[str, int]:
    """job -> the members on its side of it in ``order`` (before it when ``forward``,
    after it otherwise) that ``links`` (needs, or successors) do not connect it to.
    Positions: ``after[job]`` members are at or before ``job``."""
    total = len(wanted)
    found: dict[str, int] = {}
    for node in order:
        linked = links[node]
        if len(linked) == 1:  # most jobs: one need, or one job that needs them
            other = linked[0]
            if forward:
                found[node] = found[other] | _span(after[other], after[node] - (node in wanted))
            else:
                found[node] = found[other] | _span(after[node],
                                                   after[other] - (other in wanted))
            continue
        # The members strictly between ``node`` and a linked job ``other`` are
        # positions [start(other), end) going forward, [start, end(other)) back.
        if forward:
            end = after[node] - (node in wanted)
            bounds = {other: (after[other], end) for other in links[node]}
            nearest = max(bounds, key=lambda o: bounds[o][0], default=None)
            everything = (0, end)
        else:
            start = after[node]
            bounds = {other: (start, after[other] - (other in wanted))
                      for other in links[node]}
            nearest = min(bounds, key=lambda o: bounds[o][1], default=None)
            everything = (start, total)
        if nearest is None:
            found[node] = _span(*everything)
            continue
        bits = found[nearest] | _span(*bounds[nearest])
        for other, (lo, hi) in bounds.items():
            if not bits:
                break
            if other != nearest:
                # keep the bits ``other`` leaves unrelated, and those between it and node
                between = (bits >> lo << lo) if forward else bits ^ (bits >> hi << hi)
                bits = (bits & found[other]) | between
        found[node] = bits
    return found


def check_references(workflow: Workflow) -> list[Diagnostic]:
    """Ids unique, lanes and needs resolve: what must hold before a graph exists."""
    out: list[Diagnostic] = []
    seen: dict[str, int] = {}
    lanes = [lane.name for lane in workflow.lanes]
    ids = list(workflow.job_ids)
    for job in workflow.jobs:
        i = job.index
        if job.id in seen:
            out.append(diag("STR200", f"job id {job.id!r} is used twice (first by job "
                                      f"#{seen[job.id] + 1})", ("jobs", i, "id"),
                            hint="give each job its own id"))
        else:
            seen[job.id] = i
        if job.lane not in lanes:
            out.append(diag("STR201", f"job {job.id!r} runs on lane {job.lane!r}, which is not "
                                      "declared", ("jobs", i, "lane"),
                            hint=did_you_mean(job.lane, lanes)
                            or f"declared lanes: {', '.join(lanes)}"))
        for k, need in enumerate(job.needs):
            if need == job.id:
                out.append(diag("STR203", f"job {job.id!r} needs itself", ("jobs", i, "needs", k),
                                hint="remove it from its own needs"))
            elif need not in seen and need not in ids:
                out.append(diag("STR202", f"job {job.id!r} needs {need!r}, which is not a job",
                                ("jobs", i, "needs", k), hint=did_you_mean(need, ids)))
    return out


def build_graph(workflow: Workflow, *, with_networkx: bool = False) -> WorkflowGraph:
    """The forward graph; call only when ``check_references`` found nothing.

    Kahn's algorithm gives the order and, by finishing, proves the graph
    acyclic in linear time; the networkx graph (``wg.graph``) is built when a
    cycle must be named or a caller wants it."""
    index = {job.id: job.index for job in workflow.jobs}
    succ: dict[str, list[str]] = {job.id: [] for job in workflow.jobs}
    pred: dict[str, list[str]] = {job.id: list(job.needs) for job in workflow.jobs}
    for job in workflow.jobs:
        for need in job.needs:
            succ[need].append(job.id)
    wg = WorkflowGraph(workflow, _order(succ, pred, index), index, succ, pred)
    if with_networkx:
        wg.graph  # noqa: B018 - built now for callers that will use it
    return wg


def _order(succ: dict[str, list[str]], pred: dict[str, list[str]], index: dict[str, int]
           ) -> list[str]:
    """Kahn's algorithm taking the earliest-written ready job first; [] on a cycle."""
    import heapq

    waiting = {job: len(needs) for job, needs in pred.items()}
    heap = [(index[job], job) for job, n in waiting.items() if n == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        _, job = heapq.heappop(heap)
        order.append(job)
        for child in succ[job]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(heap, (index[child], child))
    return order if len(order) == len(pred) else []


def check_cycles(wg: WorkflowGraph) -> list[Diagnostic]:
    if wg.order:
        return []
    import networkx as nx

    cycle = nx.find_cycle(wg.graph)
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    # Report at the need that closes the loop: the last edge, in the job that has it.
    closing_need, closing_job = cycle[-1][0], cycle[-1][1]
    job = wg.jobs[closing_job]
    k = job.needs.index(closing_need)
    return [diag("STR204", "the needs form a cycle: " + " → ".join(names),
                 ("jobs", job.index, "needs", k),
                 hint="needs must only point upstream; to send work back, use a review job "
                      "with `revise`")]


def check_structure(wg: WorkflowGraph) -> list[Diagnostic]:
    """Revisions, choices, artifacts and final jobs, on an acyclic graph."""
    out: list[Diagnostic] = []
    ids = list(wg.workflow.job_ids)
    producers: dict[str, str] = {}
    for job in wg.workflow.jobs:
        i = job.index
        if job.revise is not None:
            target = job.revise.target
            if target not in wg.jobs:
                out.append(diag("STR205", f"review {job.id!r} revises {target!r}, which is not "
                                          "a job", ("jobs", i, "revise", "target"),
                                hint=did_you_mean(target, ids)))
            elif not wg.is_ancestor(target, job.id):
                out.append(_not_upstream(wg, job, target))
        for choice, successors in job.choices:
            for k, succ in enumerate(successors):
                if succ not in wg.jobs or job.id not in wg.jobs[succ].needs:
                    near = None if succ in wg.jobs else did_you_mean(succ, ids)
                    out.append(diag(
                        "STR207", f"choice {choice!r} of checkpoint {job.id!r} names {succ!r}, "
                                  f"which does not need {job.id!r}",
                        ("jobs", i, "choices", choice, k),
                        hint=f"a choice lists jobs that have {job.id!r} in their needs"
                             + (f"; {near}" if near else "")))
        for k, artifact in enumerate(job.produces):
            if artifact in producers:
                out.append(diag("STR208", f"artifact {echo(artifact)} is produced by both "
                                          f"{producers[artifact]!r} and {job.id!r}",
                                ("jobs", i, "produces", k),
                                hint="artifact paths are per run; give each its own name"))
            else:
                producers[artifact] = job.id
    for job in wg.workflow.jobs:
        for k, artifact in enumerate(job.consumes):
            source = producers.get(artifact)
            if source is None or not wg.is_ancestor(source, job.id):
                where = (f"it is produced by {source!r}, which is not upstream" if source
                         else "no job produces it")
                out.append(diag("STR209", f"job {job.id!r} consumes {echo(artifact)}, but {where}",
                                ("jobs", job.index, "consumes", k),
                                hint="add the producing job to its needs" if source else None))
    for k, final in enumerate(wg.workflow.final):
        if final not in wg.jobs:
            out.append(diag("STR212", f"final job {final!r} is not a job", ("final", k),
                            hint=did_you_mean(final, ids)))
    if not any(d.code in ("STR205", "STR206") for d in out):
        out.extend(_check_checkpoints_outside_loops(wg))
    return out


def _not_upstream(wg: WorkflowGraph, review: Job, target: str) -> Diagnostic:
    """STR206, with a hint that does not lead to another error: adding a job that
    runs after the review (or the review itself) to its needs would make a cycle."""
    where = ("jobs", review.index, "revise", "target")
    instead = (f"revise a job it needs, such as {review.needs[0]!r}" if review.needs
               else "add the job it reviews to its needs and revise that job")
    if target == review.id:
        return diag("STR206", f"review {review.id!r} revises itself", where,
                    hint=f"a review sends work back to the job it reviews: {instead}")
    if wg.is_ancestor(review.id, target):
        return diag("STR206", f"review {review.id!r} revises {target!r}, which runs after it",
                    where, hint=f"{target!r} needs {review.id!r}, directly or through others, "
                                f"and work can only go back upstream: {instead}")
    return diag("STR206", f"review {review.id!r} revises {target!r}, which is not upstream of "
                          "it", where,
                hint=f"a reviewer can only send work back to a job it needs, directly or "
                     f"through others; add {target!r} to the needs chain of {review.id!r}")


def _check_checkpoints_outside_loops(wg: WorkflowGraph) -> list[Diagnostic]:
    # A checkpoint that a revision sends back would be decided again: the
    # worst case could no longer be bounded by one choice per checkpoint.
    out: list[Diagnostic] = []
    checkpoints = [j for j in wg.workflow.jobs if j.kind == "checkpoint"]
    if not checkpoints:
        return out
    for reviewer in wg.regions:
        bits = wg.region_bits(reviewer)
        for cp in checkpoints:
            if bits & wg.bit(cp.id):
                out.append(diag(
                    "STR210", f"checkpoint {cp.id!r} is inside the revision loop of "
                              f"{reviewer!r} and would be decided again on every revision",
                    ("jobs", cp.index),
                    hint=f"move the checkpoint after {reviewer!r}, or revise a job after it"))
    return out
