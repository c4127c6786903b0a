"""The verb registry: every verb a face offers, declared once, as data.

A verb is its name, a one-line summary, the JSON Schema of its parameters
and of its result, the capability a caller must hold, whether it changes the
record, whether it is a human's decision, and its call: an adapter that binds
validated parameters to a core function (``runtime.runs``, ``runtime.leases``,
``runtime.doctor``, the compiler's public face) and returns the document ``results`` shapes, the one
the CLI's ``--json`` prints for the same verb. Every face (the MCP server
today) is generated from ``VERBS``: a verb added here appears there with the
same checks.

The core audits each change itself, in the transaction that makes it, naming
the actor the store was opened for (``runtime.audit``): nothing here audits.

Importing this module imports neither jsonschema nor the runtime; a call
imports what it needs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from ..errors import UsageError
from ..runtime.actor import MODEL_VARIABLE
from . import results
from . import schemas as s
from .schemas import Schema

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from ..runtime.store import Store

Capability = Literal["viewer", "lease", "principal"]
"""What a caller holds: ``viewer`` reads; ``lease`` acts on the one job whose lease token
it presents; ``principal`` may call every verb."""

# Which verbs' capabilities each capability covers.
COVERS: dict[Capability, frozenset[Capability]] = {
    "viewer": frozenset({"viewer"}),
    "lease": frozenset({"lease"}),
    "principal": frozenset({"viewer", "lease", "principal"}),
}


class Session:
    """What a call runs with: the target repository, a store opened on first use (with
    the caller's actor, whom the audit rows name) and closed by ``close``, and what the
    face serving the call says of itself (``server.status``)."""

    def __init__(self, repo: str, connect: Callable[[], Store],
                 server: Callable[[], dict[str, Any]] | None = None, *,
                 lane_env: Mapping[str, str] | None = None) -> None:
        self.repo = repo
        # The environment of the lane that called, when a worker's lane socket serves the
        # call: what ``job verdict`` and ``job complete`` publish from its artifact folder
        # (``leases.left_by_its_lane``). None: this process's own, when it runs in a lane.
        self.lane_env = lane_env
        self._connect = connect
        self._store: Store | None = None
        self._server = server

    def server(self) -> dict[str, Any]:
        if self._server is None:
            raise UsageError("this face serves no server status",
                             hint="ask the daemon or the MCP server that runs the verbs")
        return self._server()

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = self._connect()
        return self._store

    def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            store.close()


Call = Callable[[Session, dict[str, Any]], dict[str, Any]]

SECRET_PARAMS = frozenset({"lease"})
"""Parameters a face leaves out of what it records of a call (a lease token is a
capability: the audit keeps no copy of it, not even inside a digest)."""


@dataclass(frozen=True)
class Verb:
    name: str  # noun.verb, e.g. "run.status"
    summary: str  # one line
    params: Schema
    result: Schema
    capability: Capability
    mutates: bool  # whether a call may change the record
    call: Call
    # Parameters that name a file: a face serving another process resolves a relative
    # one against that caller's working directory, not its own.
    paths: tuple[str, ...] = ()
    # A decision the workflow leaves to a human (a checkpoint's answer, an escalation's,
    # a retry, a cancel): the agent configs ``striatum adopt`` writes withhold it from
    # the agent, whatever else they allow (docs/agents.md).
    human: bool = False
    # Parameters the caller's session states in its environment (parameter, variable): a
    # face that runs in that session (the MCP server an agent CLI starts) fills one the
    # call leaves out; the CLI reads the same variable as its option's default. A face
    # serving other processes (the daemon) never does: its environment is not theirs.
    environ: tuple[tuple[str, str], ...] = ()

    def permitted(self, held: Capability) -> bool:
        return self.capability in COVERS[held]


def invoke(verb: Verb, arguments: Mapping[str, Any], session: Session) -> dict[str, Any]:
    """Check ``arguments`` against the verb's parameters (a violation is a UsageError,
    before anything runs), fill in the defaults, and call it."""
    return verb.call(session, bind(verb, arguments))


def bind(verb: Verb, arguments: Mapping[str, Any]) -> dict[str, Any]:
    from jsonschema.exceptions import best_match

    error = best_match(_validator(verb.name).iter_errors(dict(arguments)))
    if error is not None:
        where = "/".join(str(part) for part in error.absolute_path)
        said = error.message if len(error.message) <= 300 else error.message[:297] + "..."
        raise UsageError(f"{where + ': ' if where else ''}{said}",
                         hint=f"parameters: {_signature(verb.params)}",
                         verb=verb.name, parameter=where or None)
    defaults = {key: copy.deepcopy(field["default"])
                for key, field in verb.params["properties"].items() if "default" in field}
    return defaults | dict(arguments)


@cache
def _validator(name: str) -> Validator:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(VERBS[name].params)


def _signature(params: Schema) -> str:
    required = set(params["required"])
    names = [key if key in required else f"[{key}]" for key in params["properties"]]
    optional = " ([in brackets]: optional)" if len(required) < len(names) else ""
    return ", ".join(names) + optional if names else "no parameters"


def tool_name(verb: Verb) -> str:
    """The verb's name where a dot cannot be (an MCP tool's name): ``job_claim``."""
    return verb.name.replace(".", "_")


def permitted(held: Capability) -> list[Verb]:
    """The verbs a caller holding ``held`` may call, in the table's order."""
    return [verb for verb in VERBS.values() if verb.permitted(held)]


# -- the calls: bind parameters to the core, shape its result ---------------------------------


def _run_prepare(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    lanes = {lane: {"command": value} if isinstance(value, list) else value
             for lane, value in p["lanes"].items()}
    run_id = runs.prepare(session.store, p["workflow"], session.repo, overrides=p["vars"],
                          artifact_root=p["artifact_root"], lanes=lanes)
    if p["start"]:
        runs.start(session.store, run_id, allow_dirty=p["allow_dirty"])
    return results.prepared(run_id, runs.status(session.store, run_id))


def _run_start(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    runs.start(session.store, p["run"], allow_dirty=p["allow_dirty"])
    return runs.status_document(session.store, p["run"])


def _run_status(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    return runs.status_document(session.store, p["run"])


def _run_resolve(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    return {"run": runs.resolve_run(session.store, p["run"], session.repo)}


def _run_list(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    repo = None if p["all"] else session.repo
    return results.run_list(runs.list_runs(session.store, repo, p["limit"], p["status"]))


def _run_events(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    runs.get_run(session.store, p["run"])  # a missing run is not found, not an empty list
    if p["limit"] is None:
        found = list(runs.all_events(session.store, p["run"], p["after"]))
    else:
        found = runs.events(session.store, p["run"], p["after"], p["limit"])
    return results.run_events(p["run"], found)


def _run_cancel(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    runs.cancel(session.store, p["run"], p["reason"])
    return runs.status_document(session.store, p["run"])


def _run_resume(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    runs.resume(session.store, p["run"], p["decision"],
                p["reason"] or f"human decided {p['decision']}", p.get("budget"),
                p.get("job"))
    return runs.status(session.store, p["run"]).to_json()


def _run_retry(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    runs.retry(session.store, p["run"], p["job"], p["reason"] or "retried by a human")
    return runs.status_document(session.store, p["run"])


def _run_plan(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import pinned, runs

    run = runs.get_run(session.store, p["run"])
    return results.run_plan(run, pinned.compiled_of(session.store, run.workflow_digest))


def _run_waiting(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    runs.get_run(session.store, p["run"])  # waiting() does not tell a missing run apart
    return results.run_waiting(p["run"], runs.waiting(session.store, p["run"]))


def _job_claim(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    return results.claimed(leases.claim_next(
        session.store, p["run"], owner=p["owner"] or results.default_owner(), lane=p["lane"],
        lease_seconds=p["lease_seconds"], model=p["model"]))


def _job_heartbeat(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    expires = leases.heartbeat(session.store, p["run"], p["job"], p["lease"],
                               p["lease_seconds"])
    return results.heartbeat(p["run"], p["job"], expires)


def _job_publish(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    record = leases.publish(session.store, p["run"], p["job"], p["lease"], p["artifact"],
                            p["name"])
    return results.published(p["run"], p["job"], record)


def _job_verdict(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases
    from ..runtime.findings import finding_ids

    tx = leases.verdict(session.store, p["run"], p["job"], p["lease"], p["outcome"],
                        p["reason"], files=leases.left_by_its_lane(p["run"], p["job"],
                                                                  session.lane_env),
                        findings=finding_ids(p.get("findings")))
    return results.job_outcome(tx, p["job"])


def _job_complete(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    files = leases.left_by_its_lane(p["run"], p["job"], session.lane_env)
    return results.job_outcome(leases.complete(session.store, p["run"], p["job"], p["lease"],
                                               files=files), p["job"])


def _job_release(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    return results.job_outcome(leases.release(session.store, p["run"], p["job"], p["lease"]),
                               p["job"])


def _job_fail(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    tx = leases.fail(session.store, p["run"], p["job"], p["lease"], p["reason"])
    return results.job_outcome(tx, p["job"])


def _job_escalate(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    tx = leases.escalate(session.store, p["run"], p["job"], p["lease"], p["reason"],
                         files=leases.left_by_its_lane(p["run"], p["job"], session.lane_env))
    return results.job_outcome(tx, p["job"])


def _run_why(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.why import explain

    return explain(session.store, p["run"])


def _inbox(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.inbox import inbox

    return inbox(session.store, session.repo if p["here"] else None)


def _stats(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.stats import stats

    return stats(session.store, session.repo if p["here"] else None)


def _run_graph(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.views import run_graph

    return run_graph(session.store, p["run"], why=p["why"])


def _run_history(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.views import events_page

    return events_page(session.store, p["run"], p["before"], p["limit"])


def _run_artifact(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.views import artifact_text

    return artifact_text(session.store, p["run"], p["path"])


def _job_show(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.views import job_detail

    return job_detail(session.store, p["run"], p["job"])


def _job_unlease(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import leases

    tx = leases.unlease(session.store, p["run"], p["job"], p["reason"])
    return results.job_outcome(tx, p["job"])


def _checkpoint_decide(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime import runs

    tx = runs.decide(session.store, p["run"], p["job"], p["choice"])
    return results.decided(tx, p["job"], p["choice"])


def _workflow_validate(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from .. import compiler

    return results.validation(p["file"], compiler.check(p["file"], p["syntax"]))


def _workflow_lint(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from .. import compiler

    comp = compiler.check(p["file"], p["syntax"])
    return results.lint_report(p["file"], comp, [*comp.diagnostics, *compiler.lint(comp)])


def _workflow_plan(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from .. import compiler

    # An invalid workflow raises WorkflowInvalid, its diagnostics in the error's details.
    return compiler.plan(compiler.check(p["file"], p["syntax"]), p["verdicts"])


def _doctor(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    from ..runtime.doctor import doctor

    anchors = session.repo if p["anchors"] else None
    return doctor(session.store, anchors, strict=p["strict"]).to_json()


def _server_status(session: Session, p: dict[str, Any]) -> dict[str, Any]:
    return session.server()


# -- the table ---------------------------------------------------------------------------------

_REASON = s.text("Why: kept in the record.")

_DECLARED = [
    Verb("run.prepare", "Compile a workflow, pin it by digest, and create a run of it "
         "(with start, start it too).",
         s.params({
             "workflow": s.FILE,
             "vars": {"type": "object", "additionalProperties": {"type": "string"},
                      "description": "Workflow variables to set, NAME: VALUE.", "default": {}},
             "artifact_root": s.text("Where in the repository the run's artifacts and "
                                     "manifest go.", default="striatum/runs"),
             "lanes": {"type": "object",
                       "additionalProperties": {"anyOf": [{"type": "object"},
                                                          {"type": "array"}]},
                       "description": "Lanes to replace for this run: NAME: a lane object "
                                      "or an argv list (pinned in the digest).",
                       "default": {}},
             "start": s.flag("Start the run right away."),
             "allow_dirty": s.flag("With start: start even where the jobs' writes hold "
                                   "uncommitted changes."),
         }, "workflow"),
         s.PREPARED, "principal", True, _run_prepare, paths=("workflow",)),
    Verb("run.start", "Start a prepared run: its first jobs become ready (refused while "
         "the files its jobs write hold uncommitted changes, unless allow_dirty).",
         s.params({"run": s.RUN,
                   "allow_dirty": s.flag("Start even where the jobs' writes hold "
                                         "uncommitted changes.")}, "run"),
         s.RUN_VIEW, "principal", True, _run_start),
    Verb("run.status", "Show a run and each of its jobs.",
         s.params({"run": s.RUN}, "run"), s.RUN_VIEW, "viewer", False, _run_status),
    Verb("run.resolve", "The run a name stands for: latest (the repository's newest run), "
         "or the one run whose id begins or ends with it (the time it started, or its "
         "random tail).",
         s.params({"run": s.name("The run's id, a unique part of it, or latest.")}, "run"),
         s.document({"run": s.STRING}), "viewer", False, _run_resolve),
    Verb("run.list", "List the newest runs of the repository (with all, of every one; "
         "with status, only those in it).",
         s.params({"all": s.flag("Runs of every repository."),
                   "limit": s.integer("At most this many runs.", 1, 10_000, default=20),
                   "status": s.optional(s.RUN_STATE)}),
         s.RUN_LIST, "viewer", False, _run_list),
    Verb("run.events", "A run's events, in order, after seq `after`.",
         s.params({"run": s.RUN,
                   "after": s.integer("Only events after this seq.", 0, default=0),
                   "limit": s.optional(s.integer("At most this many events (default: all).",
                                                 1))}, "run"),
         s.RUN_EVENTS, "viewer", False, _run_events),
    Verb("run.cancel", "Cancel a run and every job still live in it.",
         s.params({"run": s.RUN, "reason": {**_REASON, "default": "cancelled by a human"}},
                  "run"),
         s.RUN_VIEW, "principal", True, _run_cancel, human=True),
    Verb("run.resume", "Answer a run blocked by an escalation (a review whose revision "
         "budget is spent): accept, fail, or grant one more revision; or a run its budget "
         "stopped: raise the limits, or fail it. With `job`, answer that waiting job, "
         "whichever the run is blocked on.",
         s.params({"run": s.RUN,
                   "decision": s.one_of("The decision.",
                                        ["accept", "fail", "revise", "raise"]),
                   "reason": s.text("Why (default: 'human decided DECISION').", default=""),
                   "budget": s.optional(s.RAISED_BUDGET),
                   "job": s.optional(s.name("The waiting job to answer (default: the one "
                                            "the run is blocked on)."))},
                  "run", "decision"),
         s.RUN_VIEW, "principal", True, _run_resume, human=True),
    Verb("run.retry", "Run a failed run again from its failed job, with a fresh attempt "
         "budget (that job and what its failure cancelled run again); a human's decision.",
         s.params({"run": s.RUN,
                   "job": s.optional(s.name("The failed job: refused if it is not it.")),
                   "reason": s.text("Why (default: 'retried by a human').", default="")},
                  "run"),
         s.RUN_VIEW, "principal", True, _run_retry, human=True),
    Verb("run.plan", "The plan of the workflow a run is pinned to: its waves (each job one "
         "past the latest of its needs), each job's needs, and the worst-case executions.",
         s.params({"run": s.RUN}, "run"), s.RUN_PLAN, "viewer", False, _run_plan),
    Verb("run.waiting", "The jobs of a run that wait for a human, and the command that "
         "answers each.",
         s.params({"run": s.RUN}, "run"), s.RUN_WAITING, "viewer", False, _run_waiting),
    Verb("run.why", "What holds a run, exactly, and the command that moves it: a "
         "checkpoint or escalation waiting for a human, a lease and when it expires by the "
         "database clock, a ready job no worker claimed, a job waiting on its needs.",
         s.params({"run": s.RUN}, "run"), s.RUN_WHY, "viewer", False, _run_why),
    Verb("inbox", "Everything that waits for a human, across runs, oldest first: "
         "checkpoints, reviews that spent their revision budget, leases whose worker went "
         "quiet or expired; each with the command that answers it.",
         s.params({"here": s.flag("Only the runs of this repository.")}), s.INBOX,
         "viewer", False, _inbox),
    Verb("stats", "How each reviewer did, across runs: per author lane → reviewer lane "
         "pair, its verdicts, needs_revision rate, revision depth, and time (and cost, when "
         "known) per accepted review; each checkpoint's decisions.",
         s.params({"here": s.flag("Only the runs of this repository.")}), s.STATS,
         "viewer", False, _stats),
    Verb("run.graph", "A run's status with what a drawing of it needs: the plan's waves, "
         "its needs as edges, its revision loops with the passes left, its verdicts.",
         s.params({"run": s.RUN,
                   "why": s.flag("Also what holds the run (run.why's document, as `why`), "
                                 "from the same read of its status.")}, "run"),
         s.RUN_GRAPH, "viewer", False, _run_graph),
    Verb("run.history", "A page of a run's events, newest first, before seq `before`, "
         "each row's hash and its link to the row before checked.",
         s.params({"run": s.RUN,
                   "before": s.optional(s.integer("Only events before this seq "
                                                  "(default: the newest).", 1)),
                   "limit": s.integer("At most this many events.", 1, 500, default=50)},
                  "run"),
         s.RUN_HISTORY, "viewer", False, _run_history),
    Verb("run.artifact", "The newest published version of an artifact of a run, checked "
         "against its sha256: its record, its kind (markdown, json, diff, text, binary) "
         "and its text.",
         s.params({"run": s.RUN, "path": s.name("The artifact's path (`job.show` lists "
                                                "them).")}, "run", "path"),
         s.RUN_ARTIFACT, "viewer", False, _run_artifact),
    Verb("job.show", "One job in full: its state, the prompt of its current attempt, the "
         "tail of its lane log, its artifacts with sha256, its verdicts, and its leases "
         "(holder, heartbeat age, expiry by the database clock, and the executable and "
         "model each attempt's chained start records).",
         s.params({"run": s.RUN, "job": s.JOB}, "run", "job"),
         s.JOB_SHOW, "viewer", False, _job_show),
    Verb("job.claim", "Lease the next ready job of a run; returns its prompt file, artifact "
         "folder and lease token.",
         s.params({"run": s.RUN,
                   "lane": s.optional(s.name("Only a job of this lane.")),
                   "owner": s.optional(s.name("Who holds the lease (default: "
                                              "user@host:pid).")),
                   "lease_seconds": s.LEASE_SECONDS,
                   "model": s.optional(s.MODEL)}, "run"),
         s.CLAIMED, "principal", True, _job_claim, environ=(("model", MODEL_VARIABLE),)),
    Verb("job.heartbeat", "Extend a held lease.",
         s.params({**s.HELD, "lease_seconds": s.LEASE_SECONDS}, *s.HELD),
         s.HEARTBEAT, "lease", True, _job_heartbeat),
    Verb("job.publish", "Copy a file into the run's folder of the repository as an artifact "
         "of the held job, with its sha256.",
         s.params({**s.HELD,
                   "artifact": s.name("The file to publish, relative to the server's working "
                                      "directory or absolute."),
                   "name": s.optional(s.name("Its artifact name (default: the file's "
                                             "name)."))}, *s.HELD, "artifact"),
         s.PUBLISHED, "lease", True, _job_publish, paths=("artifact",)),
    Verb("job.verdict", "End a held review with a verdict: accept, needs_revision or reject.",
         s.params({**s.HELD, "outcome": s.VERDICT, "reason": _REASON,
                   "findings": s.optional({**s.STRINGS, "description": "The ids of the "
                                           "findings the review names; a needs_revision "
                                           "naming the same ids as the round before is "
                                           "a repeat."})},
                  *s.HELD, "outcome", "reason"),
         s.JOB_OUTCOME, "lease", True, _job_verdict),
    Verb("job.complete", "Finish a held task (its produces artifacts must be published).",
         s.params(dict(s.HELD), *s.HELD), s.JOB_OUTCOME, "lease", True, _job_complete),
    Verb("job.release", "Hand a held job back, unfinished, for another claim.",
         s.params(dict(s.HELD), *s.HELD), s.JOB_OUTCOME, "lease", True, _job_release),
    Verb("job.fail", "Report that this attempt of a held job failed (retried while "
         "attempts remain).",
         s.params({**s.HELD, "reason": s.text("What went wrong.")}, *s.HELD, "reason"),
         s.JOB_OUTCOME, "lease", True, _job_fail),
    Verb("job.escalate", "Hand a held job to a human with the reason: it waits, and its run "
         "is blocked, until `run resume` accepts it as it stands, fails the run, or grants "
         "another attempt.",
         s.params({**s.HELD, "reason": s.text("What the human must decide, and why.")},
                  *s.HELD, "reason"),
         s.JOB_OUTCOME, "lease", True, _job_escalate),
    Verb("checkpoint.decide", "Answer a checkpoint with one of its choices; the branches "
         "not chosen are skipped.",
         s.params({"run": s.RUN, "job": s.JOB, "choice": s.name("The choice.")},
                  "run", "job", "choice"),
         s.DECIDED, "principal", True, _checkpoint_decide, human=True),
    Verb("job.unlease", "End a stuck lease without its token (a worker that died or "
         "hangs): the job is ready for the next claim, no attempt spent; a human's "
         "decision.",
         s.params({"run": s.RUN, "job": s.JOB,
                   "reason": {**_REASON, "default": "lease released by a human"}},
                  "run", "job"),
         s.JOB_OUTCOME, "principal", True, _job_unlease, human=True),
    Verb("workflow.validate", "Check a workflow against the contract and prove it "
         "terminates (no database).",
         s.params({"file": s.FILE, "syntax": s.SYNTAX}, "file"),
         s.VALIDATION, "viewer", False, _workflow_validate,
         paths=("file",)),
    Verb("workflow.lint", "Validate a workflow and report likely mistakes (no database).",
         s.params({"file": s.FILE, "syntax": s.SYNTAX}, "file"),
         s.LINT, "viewer", False, _workflow_lint,
         paths=("file",)),
    Verb("workflow.plan", "Dry-run a workflow: waves, revision loops, worst-case executions, "
         "paths; with verdicts, walk one path (no database).",
         s.params({"file": s.FILE, "syntax": s.SYNTAX,
                   "verdicts": s.optional(s.text("One path to walk, JOB=OUTCOME items, e.g. "
                                                 "'check=needs_revision,check=accept'."))},
                  "file"),
         s.PLAN, "viewer", False, _workflow_plan,
         paths=("file",)),
    Verb("doctor", "Verify the record: recompute the hash chains, replay the events, check "
         "the guards and the run manifests.",
         s.params({"anchors": s.flag("Check the chains against the repository's run "
                                     "manifests.", default=True),
                   "strict": s.flag("Also require every payload to be canonical JSON "
                                    "(slower).")}),
         s.DOCTOR, "viewer", False, _doctor),
    Verb("server.status", "The process serving this call: which face, its pid, version, "
         "uptime, database and address.",
         s.params({}), s.SERVER_STATUS, "viewer", False, _server_status),
]

VERBS: dict[str, Verb] = {verb.name: verb for verb in _DECLARED}


# -- resources: what a face may offer to read by address ---------------------------------------


@dataclass(frozen=True)
class Content:
    data: str | bytes
    mime_type: str


@dataclass(frozen=True)
class Resource:
    name: str
    uri: str  # an RFC 6570 template; {+path} may hold slashes
    summary: str
    mime_type: str  # what a read returns, unless its Content says otherwise
    capability: Capability
    read: Callable[[Session, dict[str, str]], Content]


def _read_run(session: Session, p: dict[str, str]) -> Content:
    import json

    document = _run_status(session, {"run": p["run"]})
    return Content(json.dumps(document, indent=2, ensure_ascii=False), "application/json")


def _read_prompt(session: Session, p: dict[str, str]) -> Content:
    from ..runtime.prompts import current_prompt

    path = current_prompt(session.store, p["run"], p["job"])
    return Content(path.read_text(encoding="utf-8"), "text/markdown")


def _read_artifact(session: Session, p: dict[str, str]) -> Content:
    import mimetypes

    from ..runtime.artifacts import read_artifact

    data, _ = read_artifact(session.store, p["run"], p["path"])
    guessed = mimetypes.guess_type(p["path"], strict=False)[0]
    try:
        return Content(data.decode("utf-8"), guessed or "text/plain")
    except UnicodeDecodeError:
        return Content(data, guessed or "application/octet-stream")


RESOURCES = [
    Resource("run", "striatum://runs/{run}", "A run and each of its jobs (run.status's document).",
             "application/json", "viewer", _read_run),
    Resource("prompt", "striatum://runs/{run}/jobs/{job}/prompt",
             "The prompt of a job's current attempt, as its claim wrote it.", "text/markdown",
             "viewer", _read_prompt),
    Resource("artifact", "striatum://runs/{run}/artifacts/{+path}",
             "The newest published version of an artifact of a run, checked against its "
             "recorded sha256.", "text/plain", "viewer", _read_artifact),
]
