"""Every example workflow (examples/*/workflow.json) and every starter (``striatum workflow
init --style S --syntax dsl``, run in its DSL form) worked to its end by the real CLIs,
each lane replaced by a vendor's preset (``lanes.relane``): on claude, codex and gemini
alone, and with reviewers of another vendor than the authors.

The agents answer ``ByContract``: whatever the prompt's contract asks (the files to
write at the paths it names; for a review, one of the verdict commands it offers),
with their CLI's own tools, and every review that may send the work back does so once
before it accepts. The test does what a human does: it decides checkpoints with
``striatum checkpoint decide`` and works an operator's jobs with ``striatum job
claim/publish/verdict``, through the installed CLI, while the sandbox's worker runs.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from striatum import compiler
from striatum.compiler.ir import Workflow
from striatum.compiler.starters import STYLES
from striatum.runtime import runs
from tests.integration.conftest import scratch_database

from .harness import REPO_ROOT, Bench, Outcome, refusals, verdict_said
from .lanes import ROLES, VENDORS, agent_findings, relane, which
from .script import ByContract, Contract, Script, Shell, Write

# The first case waits for every other one before its doctor runs: the whole matrix.
pytestmark = pytest.mark.timeout(1800)

# (author vendor, reviewer vendor): each vendor alone, then mixed.
ALONE = [(vendor, vendor) for vendor in VENDORS]
MIXED = [("codex", "claude"), ("claude", "gemini"), ("gemini", "codex")]
OPERATOR = "operator"  # who wrote what an operator lane's job produced


def example(style: str, folder: Path) -> Path:
    shutil.copytree(REPO_ROOT / "examples" / style, folder)
    return folder / "workflow.json"


def starter(bench: Bench, style: str, folder: Path) -> Path:
    bench.cli("workflow", "init", "--style", style, "--syntax", "dsl", str(folder))
    return folder / "workflow.stm"


class Human:
    """What a person at the terminal does while the run is worked: decide each checkpoint
    (its first choice that goes on: ``continue``), and work each job of an operator lane
    as its contract asks, through the installed CLI."""

    def __init__(self, bench: Bench, run_id: str, flow: Workflow) -> None:
        self.bench = bench
        self.run_id = run_id
        self.operator_lanes = [lane.name for lane in flow.lanes if lane.kind == "operator"]
        self.checkpoints = {job.id: [name for name, _ in job.choices]
                            for job in flow.jobs if job.kind == "checkpoint"}
        self.decided: list[tuple[str, str]] = []
        self.worked: list[str] = []

    def __call__(self, working: Callable[[], bool]) -> None:
        if not self.operator_lanes and not self.checkpoints:
            return
        while working():
            # Looked at in the record (one query), the CLI run only when there is
            # something to answer: a process a poll would keep the busy CPUs busier.
            jobs = runs.status(self.bench.store, self.run_id).jobs
            acted = 0
            if any(j.job_id in self.checkpoints and j.status == "awaiting_decision"
                   for j in jobs):
                acted += self.decide()
            for lane in {j.lane for j in jobs if j.status == "ready"} & set(
                    self.operator_lanes):
                acted += self.work(lane)
            if not acted:
                time.sleep(0.3)

    def decide(self) -> int:
        waiting = json.loads(self.bench.cli("run", "waiting", self.run_id, "--json").stdout)
        acted = 0
        for entry in waiting["waiting"]:
            if entry["kind"] == "checkpoint":
                choices = self.checkpoints[entry["job"]]
                choice = "continue" if "continue" in choices else choices[0]
                self.bench.cli("checkpoint", "decide", self.run_id, entry["job"], choice,
                               "--json")
                self.decided.append((entry["job"], choice))
                acted += 1
        return acted

    def work(self, lane: str) -> int:
        claimed = json.loads(self.bench.cli("job", "claim", "--run", self.run_id, "--lane",
                                            lane, "--json").stdout)
        if not claimed["claimed"]:
            return 0
        contract = Contract.find(Path(claimed["prompt_file"]).read_text())
        assert contract is not None, claimed
        held = ("--run", self.run_id, "--job", claimed["job"], "--lease", claimed["lease"])
        for turn in ByContract(revise=True).turns(contract, OPERATOR):
            for call in map(contract.resolve, turn.calls):
                if isinstance(call, Write):
                    path = Path(call.path)
                    path.write_text(call.content)
                    self.bench.cli("job", "publish", *held, "--artifact", str(path),
                                   "--as", path.name, "--json")
                else:
                    assert isinstance(call, Shell), call
                    argv = shlex.split(call.command)
                    assert argv[:3] == ["striatum", "job", "verdict"], argv
                    self.bench.cli(*argv[1:], *held, "--json")
        self.worked.append(claimed["job"])
        return 1


def work_to_the_end(bench: Bench, workflow: Path, author: str, reviewer: str) -> None:
    """Prepare ``workflow`` with its lanes relaned to the presets of ``author`` and
    ``reviewer``, work it in the sandbox, and check everything the record holds."""
    comp = compiler.check(str(workflow))
    assert comp.ok, [d.message for d in comp.diagnostics]
    flow = comp.workflow
    lanes = relane(workflow, {"author": author, "reviewer": reviewer})
    assert agent_findings(workflow, lanes) == []
    vendor_of_lane = {name: which(lane)[0] for name, lane in lanes.items()}
    vendor_of = {job.id: vendor_of_lane.get(job.lane, OPERATOR) for job in flow.jobs
                 if job.kind != "checkpoint"}

    run_id = bench.prepare(workflow, lanes)
    human = Human(bench, run_id, flow)
    outcome = bench.work(run_id, Script(by_contract=ByContract(revise=True)), timeout=600,
                         meanwhile=human)
    assert outcome.status == "completed", outcome.explain()
    assert {j.job_id: j.status for j in outcome.view.jobs} == {
        job.id: "succeeded" for job in flow.jobs}, outcome.explain()
    # Every attempt did what it was asked the first time: none failed and was retried.
    assert outcome.of("job.fail") == [], outcome.explain()
    assert [j.job_id for j in outcome.view.jobs if j.attempt] == [], outcome.explain()
    assert human.decided == [(job, "continue") for job in human.checkpoints]
    assert sorted(set(human.worked)) == sorted(j.id for j in flow.jobs
                                               if vendor_of.get(j.id) == OPERATOR)
    check_verdicts(bench, outcome, flow, vendor_of)
    check_artifacts(bench, outcome, flow, vendor_of)
    check_conversations(outcome, flow, vendor_of)


def check_verdicts(bench: Bench, outcome: Outcome, flow: Workflow,
                   vendor_of: dict[str, str]) -> None:
    """Each review's verdicts, recorded by its own lane's agent (the reason names who
    gave it): sent back once where it may send back, then accepted."""
    verdicts = bench.verdicts(outcome)
    reviews = [job for job in flow.jobs if job.kind == "review"]
    assert {v[0] for v in verdicts} == {job.id for job in reviews}
    for job in reviews:
        own = [(iteration, verdict, reason) for j, iteration, verdict, reason in verdicts
               if j == job.id]
        for iteration, _, reason in own:
            by = f"{job.id}, pass {iteration + 1}, by {vendor_of[job.id]}: "
            assert reason.startswith(by), (job.id, reason)
        said = [verdict for _, verdict, _ in own]
        if job.revise:
            assert said[0] == "needs_revision" and said[-1] == "accept", (job.id, own)
            resets = outcome.of("job.reset", job=job.revise.target)
            assert any(e["payload"]["data"]["reason"] == own[0][2] for e in resets), job.id
        else:
            assert said == ["accept"], (job.id, own)
        accepted = verdict_said(outcome.of("job.complete", job=job.id)[-1]["payload"]["data"])
        assert accepted == {"verdict": "accept", "reason": own[-1][2]}


def check_artifacts(bench: Bench, outcome: Outcome, flow: Workflow,
                    vendor_of: dict[str, str]) -> None:
    """What each job published in its last pass (each checked against its sha256 and
    size): every file it produces, written by its own lane's agent on that pass, and the
    lane's log."""
    for job in flow.jobs:
        if job.kind == "checkpoint":
            continue
        iteration = outcome.job(job.id).iteration
        published = bench.artifacts(outcome, job.id, iteration)
        assert set(published) >= set(job.produces), (job.id, sorted(published))
        for name in job.produces:
            text = published[name]
            if name.endswith(".json"):
                assert json.loads(text) == {"artifact": name, "job": job.id,
                                            "pass": iteration + 1, "by": vendor_of[job.id]}
            else:
                assert f"Written by {job.id}, pass {iteration + 1}, by {vendor_of[job.id]}." \
                    in text, (job.id, name, text)
        if vendor_of[job.id] != OPERATOR:
            assert f"Done: {job.id}, pass {iteration + 1}" in published[f"logs/{job.id}.log"]


def check_conversations(outcome: Outcome, flow: Workflow, vendor_of: dict[str, str]) -> None:
    """What the CLIs sent: each job on its lane's vendor, every tool call carried out,
    each consumed artifact (as last published) in the prompt; nothing else tried."""
    record = outcome.record
    assert record.errors() == [], outcome.explain()
    assert record.names == []
    latest: dict[str, str] = {}
    for event in outcome.of("artifact.publish"):
        latest[event["payload"]["data"]["path"]] = event["job"]
    for job in flow.jobs:
        if vendor_of.get(job.id, OPERATOR) == OPERATOR:
            continue
        assert record.vendors(job.id) == {vendor_of[job.id]}, job.id
        last = outcome.job(job.id).iteration + 1
        for on_pass in range(1, last + 1):
            results = record.results(job.id, on_pass)
            assert results and refusals(results) == [], (job.id, on_pass, results)
        prompt = record.prompt(job.id, last)
        for name in job.consumes:
            source = latest[name]
            assert f"Written by {source}" in prompt or f'"job": "{source}"' in prompt, \
                (job.id, name)


@dataclass(frozen=True)
class Case:
    """One run of the matrix: an example (its workflow.json) or a starter (its DSL form,
    as `workflow init` writes it), its authors' and its reviewers' vendor."""

    form: str  # "example" or "starter"
    style: str
    author: str
    reviewer: str

    @property
    def vendors(self) -> set[str]:
        return {self.author, self.reviewer}

    @property
    def name(self) -> str:
        return f"{self.form}-{self.style}-{self.author}-{self.reviewer}"

    def run(self, dsn: str, root: Path) -> None:
        root.mkdir(parents=True)
        (root / "repo").mkdir()
        bench = Bench(dsn, root, root / "repo")
        try:
            workflow = (example(self.style, root / "flow") if self.form == "example"
                        else starter(bench, self.style, root / "flow"))
            work_to_the_end(bench, workflow, self.author, self.reviewer)
        finally:
            bench.close()


CASES = ([Case("example", style, author, reviewer) for style in STYLES
          for author, reviewer in ALONE + MIXED]
         + [Case("starter", style, vendor, vendor) for style in STYLES for vendor in VENDORS])
# Runs worked at once: each spends most of its time in CLIs starting and in round trips.
CONCURRENCY = int(os.environ.get("STRIATUM_AGENT_CONCURRENCY", "3"))


@dataclass
class Matrix:
    """The cases the session selected, worked ``CONCURRENCY`` at a time on one database
    from the first test on; each test waits for its own."""

    dsn: str
    root: Path
    running: dict[str, Future[None]] = field(default_factory=dict)

    def outcome(self, case: Case) -> None:
        self.running[case.name].result()

    def doctor(self, case: Case) -> dict[str, Any]:
        """`striatum doctor` on the record, with the anchors of the case's repository,
        once every case has stopped (a run still working would be read mid-way)."""
        wait(list(self.running.values()))
        bench = Bench(self.dsn, self.root, self.root / case.name / "repo")
        try:
            return dict(json.loads(bench.cli("doctor", "--json", check=False).stdout))
        finally:
            bench.close()


def _selected(session: pytest.Session) -> list[Case]:
    by_name = {case.name: case for case in CASES}
    return [by_name[item.callspec.id] for item in session.items
            if isinstance(item, pytest.Function) and item.module is not None
            and item.module.__name__ == __name__ and item.name.startswith("test_runs_to_its_end[")
            and item.get_closest_marker("skip") is None]


@pytest.fixture(scope="module")
def matrix(request: pytest.FixtureRequest, admin_dsn: str, template_db: str,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    root = tmp_path_factory.mktemp("matrix")
    with scratch_database(admin_dsn, f"striatum_m_{secrets.token_hex(6)}",
                          template_db) as dsn, \
            ThreadPoolExecutor(CONCURRENCY, thread_name_prefix="case") as pool:
        found = Matrix(dsn, root)
        for case in _selected(request.session):
            found.running[case.name] = pool.submit(case.run, dsn, root / case.name)
        try:
            yield found
        finally:
            for future in found.running.values():
                future.cancel()
            wait(list(found.running.values()))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_runs_to_its_end(matrix: Matrix, case: Case) -> None:
    matrix.outcome(case)
    doctor = matrix.doctor(case)
    assert doctor.get("ok") is True, doctor


def test_every_preset_is_exercised() -> None:
    """The matrix runs every (vendor, role) preset on some lane, and reviewers of another
    vendor than their authors."""
    used: set[tuple[str, str]] = set()
    for case in CASES:
        root = REPO_ROOT / "examples" / case.style
        lanes = relane(root / ("workflow.json" if case.form == "example" else "workflow.stm"),
                       {"author": case.author, "reviewer": case.reviewer})
        used |= {which(lane) for lane in lanes.values()}
    assert used == {(vendor, role) for vendor in VENDORS for role in ROLES}
    assert {(c.author, c.reviewer) for c in CASES if c.author != c.reviewer} == set(MIXED)
