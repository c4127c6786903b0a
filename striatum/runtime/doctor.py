"""``striatum doctor``: prove the record is intact, or name the first row that is not.

1. Chains, in the server (sql/doctor.sql), for every repository chain and the
   audit chain: seq runs 1..n without a gap and each previous_hash is the prior
   row_hash (a window over those columns alone); each row_hash is
   sha256(previous_hash || payload); the payload parses (jsonb) to an object
   whose run/job/type (audit: actor/verb/args_digest/outcome) agree with the
   columns and whose time agrees with created_at; the head row points at the
   last row. The queries return only what is wrong, so on an intact record no
   payload crosses to Python and memory stays flat however long the chains.
2. Replay, in the same pass over the events: every step of a run or a job must
   be a transition the machines allow, the jobs and runs tables must hold the
   state of each one's last event, and no run may exceed its proven bound
   (plus the passes a human granted).
3. Guards: the append-only triggers are present and enabled; the runtime
   role cannot change or remove the record.
4. The RPC log: the audit rows a face (the daemon) wrote name a verb of the
   registry or the core (an unknown method only as refused), an outcome that is
   ``ok`` or a stable error code, an actor of the form ``... daemon:<capability>``
   that could have made the call; and every event since the first such row shares
   its transaction with an audit row (the core's, written with the change).
5. Anchors: with ``--repo``, each run manifest's chain head (seq, hash) must
   still be in the database — a deleted or rewritten tail is found this way.
   A chain no manifest anchors is reported as "unanchored", never as "ok".

The replay reads the state each event left (typed columns written with it, migration
0013) rather than parsing every payload: the constraint ``events_columns_hashed``
refuses any row whose columns (run, job, type, time, state) disagree with its hashed
payload, and once validated it holds for every row. Doctor verifies that it is in force
(present, validated, its function as the migration wrote it); when it is not, or with
``strict``, doctor parses every payload and checks each row's columns itself.

``strict`` also re-encodes every payload in Python and requires it to be
canonical JSON. It is off by default: the hash binds the exact bytes, and the
manifests anchor the hashes, so a payload that is not canonical was written so
by whoever could also recompute the hashes — which the anchors catch.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from contextlib import closing
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, LiteralString

from ..canonical import canonical_json
from ..errors import StoreError
from .audit import GENESIS, repo_chain
from .machine import JOB_TRANSITIONS, RUN_TERMINAL, RUN_TRANSITIONS
from .records import REPLAYED_JOB_COLUMNS, REPLAYED_RUN_COLUMNS
from .sql import migrations
from .store import Store, sqlstate

BATCH = 5000

# What a problem code (sql/doctor.sql) means. A chain's first problem is the
# lowest seq; on one row, the first in this order: the order in which the
# checks of a row build on each other.
PROBLEMS = {
    "seq": "expected seq {expected} (a row is missing or was inserted)",
    "previous": "previous_hash does not match the row before (rows removed, moved or forged)",
    "hash": "row_hash does not match its payload (the row was edited)",
    "json": "payload is not a JSON object",
    "canonical": "payload is not canonical JSON",
    "columns": "columns {columns}disagree with the hashed payload",
    "time": "created_at disagrees with the hashed payload's time",
}
RANK = {code: rank for rank, code in enumerate(PROBLEMS)}


@dataclass
class Finding:
    check: str
    message: str
    table: str | None = None
    seq: int | None = None
    ok: bool = False
    unanchored: bool = False  # nothing failed, but nothing vouches for the chain's tail
    stale: bool = False  # nothing failed, but something outside the record wants updating

    @property
    def status(self) -> str:
        if self.unanchored:
            return "unanchored"
        if self.stale:
            return "stale"
        return "ok" if self.ok else "fail"

    def to_json(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "ok": self.ok,
                "message": self.message, "table": self.table, "seq": self.seq}


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    events: int = 0
    audit_rows: int = 0

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    @property
    def anchored(self) -> bool:
        return not any(f.unanchored for f in self.findings)

    def add(self, check: str, message: str, *, ok: bool = False, table: str | None = None,
            seq: int | None = None, unanchored: bool = False, stale: bool = False) -> None:
        self.findings.append(Finding(check, message, table, seq, ok or unanchored or stale,
                                     unanchored, stale))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "anchored": self.anchored, "events": self.events,
                "audit_rows": self.audit_rows, "findings": [f.to_json() for f in self.findings]}


@dataclass(frozen=True)
class _Chain:
    """One hash chain and the names of its queries (``<prefix>_tail``, ``_links``, ...)."""

    name: str  # repo:<id> or audit
    table: str
    row: str  # how a finding names a row: "event" or "row"
    prefix: str
    columns: str  # which columns the "columns" problem means
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Replay:
    """What the replay found wrong, over every repository: the first illegal step, the
    first job the events do not reproduce, and each run that is wrong."""

    step: Finding | None = None
    job: Finding | None = None
    runs: list[Finding] = field(default_factory=list)
    wrong: int = 0  # jobs and runs whose table row the events do not reproduce

    def add(self, chain: str, kind: str, seq: int | None, run: str, job: str | None,
            facts: dict[str, Any]) -> None:
        if kind == "transition":
            if self.step is None:
                self.step = Finding("replay", f"{chain}: event seq {seq}: {_step(run, job, facts)}",
                                    "events", seq)
        elif kind == "job":
            self.wrong += int(facts["count"])
            if self.job is None:
                table = {c: facts["table"][c] for c in REPLAYED_JOB_COLUMNS}
                self.job = Finding("replay", f"job {run}/{job}: table says {table}, events say "
                                             f"{facts['events']}", "jobs")
        elif kind == "run":
            if not facts["matches"]:
                self.wrong += 1
                table = {c: facts["table"][c] for c in REPLAYED_RUN_COLUMNS}
                self.runs.append(Finding("replay", f"run {run}: table says {table}, events say "
                                                   f"{facts['events']}", "runs"))
            worst, granted = int(facts["worst_case"]), int(facts["granted"])
            if int(facts["executions"]) > worst + granted:
                self.runs.append(Finding("bound", f"run {run}: {facts['executions']} job "
                                                  f"executions exceed the proven worst case "
                                                  f"{worst} (plus {granted} granted by a human)",
                                         "jobs"))
            if int(facts["unsettled"]) != int(facts["counted"]):
                self.wrong += 1
                self.runs.append(Finding("replay", f"run {run}: the run row counts "
                                                   f"{facts['unsettled']} unsettled jobs, its "
                                                   f"jobs say {facts['counted']}", "runs"))


def _step(run: str, job: str | None, facts: dict[str, Any]) -> str:
    noun, _, trigger = str(facts["type"]).partition(".")
    name = run if job is None else f"{run}/{job}"
    if not facts["known"]:
        return f"{noun} {name} changes before it was prepared"
    return (f"{noun} {name}: {trigger!r} from {facts['from']!r} to {facts['to']!r} is not a "
            "transition the machine allows")


@cache
def legal_transitions() -> dict[str, list[str]]:
    """Every (type, from, to) the machines allow: the arrays doctor_event_contents binds."""
    rows = [(f"{kind}.{t['trigger']}", source, str(t["dest"]))
            for kind, table in (("job", JOB_TRANSITIONS), ("run", RUN_TRANSITIONS))
            for t in table
            for source in ([t["source"]] if isinstance(t["source"], str) else t["source"])]
    return {"legal_types": [r[0] for r in rows], "legal_from": [r[1] for r in rows],
            "legal_to": [r[2] for r in rows]}


# The constraint that proves every event's columns against its payload, as PostgreSQL
# prints it (doctor's search path is pg_catalog alone, so every name is qualified); the
# function it calls is bound by the md5 of its source in migration 0013, and by the
# attributes that decide what the constraint accepts.
PROOF = "events_columns_hashed"
PROOF_DEFINITION: LiteralString = (
    "CHECK (COALESCE(striatum.event_agrees(payload, run_id, job_id, type, created_at, "
    "status, iteration, attempt, executions, revisions_used, fence, lease_owner, chosen, "
    "verdict, blocked_on), false))")
PROOF_CONFIG = ["search_path=pg_catalog, pg_temp"]


@cache
def _proof_source_md5() -> str:
    text = next(sql for version, _, sql in migrations() if version == 13)
    found = re.search(r"CREATE FUNCTION striatum\.event_agrees\(.*?\bAS \$\$(.*?)\$\$", text,
                      re.DOTALL)
    assert found is not None, "migration 0013 defines striatum.event_agrees"
    return hashlib.md5(found.group(1).encode("utf-8"), usedforsecurity=False).hexdigest()


def columns_unproven(store: Store) -> str | None:
    """None when the database itself guarantees that every event's columns say what its
    hashed payload says (``events_columns_hashed`` in force and validated, calling
    ``striatum.event_agrees`` as migration 0013 wrote it); otherwise why not."""
    rows = store.execute("doctor_columns_proven", {"definition": PROOF_DEFINITION,
                                                   "source_md5": _proof_source_md5(),
                                                   "config": PROOF_CONFIG})
    if not rows:
        return "dropped"
    (validated, written, namesakes, called, named, not_strict, plpgsql, boolean, source,
     path, invoker) = rows[0]
    function = "striatum.event_agrees"
    calls = called == 1 and named
    why = [reason for wrong, reason in (
        (not validated, "not validated"),
        (not written, "its definition changed"),
        (not calls, f"it does not call {function} alone"),
        (namesakes != 1, f"{namesakes} functions are named {function}"),
        # Its attributes count only when it is the function the constraint calls.
        (calls and not not_strict, f"{function} is STRICT"),
        (calls and not plpgsql, f"{function} is not PL/pgSQL"),
        (calls and not boolean, f"{function} does not return boolean"),
        (calls and not source, f"{function}'s body changed"),
        (calls and not path, f"{function}'s search path changed"),
        (calls and not invoker, f"{function} is SECURITY DEFINER")) if wrong]
    return "; ".join(why) or None


def columns_proven(store: Store) -> bool:
    """True when ``columns_unproven`` finds nothing wrong."""
    return columns_unproven(store) is None


def _unparsable(exc: StoreError) -> bool:
    # Class 22 (data exception): invalid JSON text, a \u0000 jsonb refuses, an array or
    # a scalar where an object must be.
    return (sqlstate(exc) or "").startswith("22")


def _parses(store: Store, name: str, params: dict[str, Any], low: int, high: int) -> bool:
    try:
        store.rows(name, {**params, "low": low, "high": high})
    except StoreError as exc:
        if not _unparsable(exc):
            raise
        return False
    return True


def _checked(store: Store, chain: _Chain, low: int, high: int) -> list[Any]:
    """The chain's contents query; when a payload does not parse, found by bisection on
    seq, the query runs again with that seq as its cut."""
    params = {**chain.params, "cut": None}
    try:
        return store.rows(f"{chain.prefix}_contents", params)
    except StoreError as exc:
        parses = f"{chain.prefix}_parses"
        if not _unparsable(exc) or _parses(store, parses, chain.params, low, high):
            raise
    while low < high:
        middle = (low + high) // 2
        if _parses(store, parses, chain.params, low, middle):
            low = middle + 1
        else:
            high = middle
    return store.rows(f"{chain.prefix}_contents", {**params, "cut": low})


def _not_canonical(store: Store, chain: _Chain, before: int | None) -> int | None:
    """The first seq (below ``before``) whose payload is not canonical JSON, streamed
    through a server-side cursor so memory does not grow with the chain."""
    with closing(store.stream(f"{chain.prefix}_payloads", chain.params, BATCH)) as rows:
        for seq, payload in rows:
            if before is not None and seq >= before:
                return None
            try:
                canonical = canonical_json(json.loads(payload)).decode("utf-8") == payload
            except (ValueError, TypeError):
                canonical = False
            if not canonical:
                return int(seq)
    return None


def _verify(store: Store, chain: _Chain, report: Report, strict: bool, tail: tuple[Any, ...],
            contents: list[tuple[int, str]]) -> tuple[int, str] | None:
    """Report the chain's first problem (its links, then ``contents``: the problems its
    contents query found); the last (seq, hash) when there is none."""
    _, _, last_seq, last_hash = tail
    problems: list[tuple[int, int, str]] = []
    links = store.execute(f"{chain.prefix}_links", {**chain.params, "genesis": GENESIS})
    if links:
        seq, expected, linked = links[0]
        code = "seq" if seq != expected else "hash" if linked else "previous"
        problems.append((int(seq), RANK[code], PROBLEMS[code].format(expected=expected)))
    for seq, code in contents:
        problems.append((seq, RANK[code], PROBLEMS[code].format(columns=chain.columns)))
    if strict:
        # Rows after a known problem cannot be the first one: no need to read them.
        seq = _not_canonical(store, chain, min(problems)[0] + 1 if problems else None)
        if seq is not None:
            problems.append((seq, RANK["canonical"], PROBLEMS["canonical"]))
    if problems:
        seq, _, message = min(problems)
        report.add("chain", f"{chain.name}: {chain.row} seq {seq}: {message}", table=chain.table,
                   seq=seq)
        return None
    return int(last_seq), str(last_hash) if last_hash else GENESIS


def _check_head(store: Store, chain: str, last_seq: int, last_hash: str, report: Report,
                table: str) -> bool:
    """True when the chain's head row points at its last row; otherwise says why."""
    rows = store.execute("chain_head", {"chain": chain})
    if rows and (int(rows[0][0]), rows[0][1]) == (last_seq, last_hash):
        return True
    if not rows:
        report.add("chain", f"{chain}: no head row", table="chain_heads")
    else:
        report.add("chain", f"{chain}: the head says seq {rows[0][0]}, the table ends at "
                            f"{last_seq} (rows at the end were removed)", table=table,
                   seq=last_seq + 1)
    return False


def check_chain(store: Store, repo_id: int, report: Report, replay: _Replay,
                strict: bool = False, proven: bool = False) -> None:
    """``proven``: the columns are proven against the payloads (``columns_proven``), so
    the replay reads them and no payload is parsed but the few it needs the data of."""
    columns = proven and not strict
    chain = _Chain(repo_chain(repo_id), "events", "event", "doctor_event",
                   "run/job/type/state ",
                   {"repo": repo_id, "hashes": columns, **legal_transitions()})
    tail = store.execute("doctor_event_tail", chain.params)[0]
    report.events += int(tail[0])
    contents: list[tuple[int, str]] = []
    found = (store.rows("doctor_event_columns", chain.params) if columns
             else _checked(store, chain, int(tail[1]), int(tail[2])))
    for kind, seq, run, job, facts in found:
        if kind == "payload":
            contents.append((int(seq), str(facts["problem"])))
        else:
            replay.add(chain.name, kind, seq, run, job, facts)
    last = _verify(store, chain, report, strict, tail, contents)
    if last is not None and _check_head(store, chain.name, *last, report, "events"):
        report.add("chain", f"{chain.name}: {last[0]} rows verified", ok=True, table="events")


def check_audit(store: Store, report: Report, strict: bool = False) -> int | None:
    """Verify the audit chain; its length when intact (the caller reports it, anchored or
    not), None when a problem was reported."""
    chain = _Chain("audit", "audit_log", "row", "doctor_audit", "")
    tail = store.execute("doctor_audit_tail")[0]
    report.audit_rows += int(tail[0])
    contents = [(int(seq), str(code))
                for seq, code in _checked(store, chain, int(tail[1]), int(tail[2]))]
    last = _verify(store, chain, report, strict, tail, contents)
    if last is None or not _check_head(store, "audit", *last, report, "audit_log"):
        return None
    return last[0]


RPC_PROBLEMS = {
    "actor": "its actor is not of the form `... daemon:principal|viewer|lease|none`",
    "verb": "names no verb of the registry or the core, yet was not refused as unknown",
    "outcome": "its outcome is neither ok nor a stable error code",
    "capability": "records a call its capability could not have made",
}


def rpc_vocabulary() -> dict[str, list[str]]:
    """What the daemon's rows may say: the verbs (the registry's names, and the core's,
    which it writes for a change), the error codes, and the verbs a viewer or a lease
    may call."""
    from .. import errors
    from ..server import registry
    from . import leases, runs, starts  # noqa: F401 - their verbs declare themselves on import
    from .audit import DECLARED

    codes = {value.code for value in vars(errors).values()
             if isinstance(value, type) and issubclass(value, errors.StriatumError)}
    return {"verbs": sorted({*registry.VERBS, *DECLARED}), "codes": sorted(codes),
            "reads": [v.name for v in registry.permitted("viewer")],
            "lease_verbs": [v.name for v in registry.permitted("lease")]}


def check_rpc(store: Store, report: Report) -> None:
    faced, wrong, seq, actor, verb, outcome, problem = store.execute(
        "doctor_rpc_rows", rpc_vocabulary())[0]
    if not faced:
        report.add("rpc", "no audit row was written through the daemon", ok=True)
        return
    if wrong:
        more = f" ({wrong - 1} more such rows)" if wrong > 1 else ""
        report.add("rpc", f"audit row seq {seq} ({actor!r}, {verb!r}, {outcome!r}) "
                          f"{RPC_PROBLEMS[problem]}{more}", table="audit_log", seq=seq)
    changes = store.execute("doctor_rpc_changes")
    if changes:
        count, repo_id, event, run, job, kind = changes[0]
        more = f" ({count - 1} more such events)" if count > 1 else ""
        report.add("rpc", f"{repo_chain(repo_id)}: event seq {event} ({kind} of "
                          f"{run}/{job or '-'}) shares its transaction with no audit row: "
                          f"the row of the change was removed, or the change was written "
                          f"past the core{more}", table="events", seq=event)
    if not wrong and not changes:
        report.add("rpc", f"the daemon's {faced} audit rows name a verb, an outcome and an "
                          "actor of the forms it writes; every change since its first has its "
                          "audit row", ok=True)


def check_projections(replay: _Replay, report: Report) -> None:
    if replay.step:
        report.findings.append(replay.step)
        return
    if replay.job:
        report.findings.append(replay.job)
    report.findings.extend(replay.runs)
    if not replay.wrong:
        report.add("replay", "the events reproduce every job and run", ok=True)


def _parsed_rows(store: Store, report: Report, check: str, name: str,
                 params: dict[str, Any]) -> list[Any] | None:
    """The rows of a check's query over event payloads, or None (said in the report) when
    a payload does not parse: the chain check names that one."""
    try:
        return store.rows(name, params)
    except StoreError as exc:
        if not _unparsable(exc):
            raise
        report.add(check, "not checked: an event's payload does not parse (the chain check "
                          "names it)", table="events")
        return None


def check_verdicts(store: Store, report: Report) -> None:
    """Every job that needs an accepted review ran on the digests the verdict names
    (``runtime.judged``); verdicts recorded before digests were are not checked."""
    from . import pinned
    from .judged import misbound

    found = store.execute("doctor_verdict_runs")
    if not found:
        report.add("verdicts", "no verdict records digests: nothing to check", ok=True)
        return
    graphs = {str(run): pinned.compiled_of(store, str(digest)).graph for run, digest in found}
    rows = _parsed_rows(store, report, "verdicts", "doctor_verdict_uses",
                        {"runs": list(graphs)})
    if rows is None:
        return
    bound, problems = misbound(rows, lambda run, job: graphs[run].jobs[job].needs)
    for problem in problems:
        report.add("verdicts", problem, table="events")
    if not problems:
        report.add("verdicts", f"{bound} job start(s) ran on the digests their accepts name",
                   ok=True)


def check_spent(store: Store, report: Report) -> None:
    """Each run's ``spent_cost`` (what a budget check reads) is the sum of the cost its
    ``budget.usage`` events recorded."""
    wrong = _parsed_rows(store, report, "spent", "doctor_spent_cost", {})
    if wrong is None:
        return
    for run, kept, recorded, _ in wrong:
        report.add("spent", f"run {run}: spent_cost says {kept}, its budget.usage events sum "
                            f"to {recorded}; the budget reads the row, so it stops the run "
                            "at the wrong cost", table="runs")
    if wrong and int(wrong[0][3]) > len(wrong):
        report.add("spent", f"{int(wrong[0][3]) - len(wrong)} more run(s) alike", table="runs")
    if not wrong:
        report.add("spent", "every run's spent cost is the sum of its usage events", ok=True)


def check_guards(store: Store, report: Report, unproven: str | None) -> None:
    triggers, role, role_can_change = store.execute("guards")[0]
    if triggers != 4:
        report.add("guards", f"append-only triggers: {triggers} of 4 present and enabled",
                   table="events")
    else:
        report.add("guards", "append-only triggers present and enabled", ok=True)
    if unproven is None:
        report.add("guards", f"{PROOF} refuses events whose columns disagree with their "
                             "payload", ok=True)
    else:
        report.add("guards", f"{PROOF} is not in force ({unproven}): an event whose "
                             "columns disagree with its payload could be appended; doctor "
                             "checked each row itself", table="events")
    if not role:
        report.add("guards", "no striatum_runtime role: only the triggers guard the record "
                             "(the database refused to create roles)", ok=True)
    elif role_can_change:
        report.add("guards", "striatum_runtime may UPDATE, DELETE or TRUNCATE the record")
    else:
        report.add("guards", "striatum_runtime can only read and append the record", ok=True)


def _manifests(repo: Path, roots: set[str]) -> dict[str, Path]:
    """run id -> manifest file, for every manifest under the repository's artifact roots
    (found on disk, so a run the database has lost is still seen)."""
    found: dict[str, Path] = {}
    for root in sorted(roots):
        for manifest in sorted((repo / root).glob("*/manifest.json")):
            found.setdefault(manifest.parent.name, manifest)
    return found


@dataclass(frozen=True)
class _Repo:
    """A repository as doctor's checks of it read it, once: its runs in this database
    (id -> (status, artifact root)) and the run manifests found on disk."""

    path: str
    runs: dict[str, tuple[str, str]]
    manifests: dict[str, Path]


def _repo_of(store: Store, repo: str) -> _Repo:
    from .runs import DEFAULT_ARTIFACT_ROOT

    path = os.path.realpath(repo)
    runs = {str(r[0]): (str(r[1]), str(r[2]))
            for r in store.execute("runs_of_repo", {"path": path})}
    roots = {DEFAULT_ARTIFACT_ROOT} | {root for _, root in runs.values()}
    return _Repo(path, runs, _manifests(Path(path), roots))


def check_anchors(store: Store, found: _Repo, report: Report) -> int:
    """Check the repository's manifests against the chains; returns the highest audit
    seq a manifest vouches for (0 if none)."""
    path, runs, manifests = found.path, found.runs, found.manifests
    for run_id, (status, root) in runs.items():
        if run_id not in manifests and status in RUN_TERMINAL:
            report.add("anchors", f"run {run_id} ended but has no manifest under "
                                  f"{Path(path) / root}")
    repo_rows = [r for r in store.execute("all_repos") if r[1] == path]
    repo_id = int(repo_rows[0][0]) if repo_rows else None
    anchored = 0
    top, audit_top = 0, 0
    differing: list[tuple[str, int]] = []
    this_database = str(store.execute("database_identity")[0][0])
    elsewhere: dict[str, list[str]] = {}
    for run_id, manifest in manifests.items():
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
            chain = document["chain"]
            seq, expected = int(chain["seq"]), str(chain["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            report.add("anchors", f"{manifest} is not a readable manifest")
            continue
        if run_id not in runs:
            recorded_in = document.get("database")
            if recorded_in != this_database and (recorded_in is not None or not runs):
                # Recorded by another database (a teammate's, a previous embedded server):
                # nothing to check its chain against here, and nothing lost.
                elsewhere.setdefault(str(recorded_in or "unnamed"), []).append(run_id)
                continue
            report.add("anchors", f"run {run_id} has a manifest in the repository but the "
                                  "database has no such run (restored from an older backup, "
                                  "or replaced)", table="runs")
            continue
        rows = store.execute("event_at", {"repo": repo_id, "seq": seq})
        if not rows:
            report.add("anchors", f"run {run_id}: its manifest anchors seq {seq}, which the "
                                  "database no longer has (the tail was removed)",
                       table="events", seq=seq)
        elif rows[0][0] != expected:
            differing.append((run_id, seq))
        else:
            anchored += 1
            top = max(top, seq)
            audit_top = max(audit_top, _audit_anchor(store, document, run_id, report))
    for run_id, seq in differing:
        report.add("anchors", _differs(run_id, seq, top), table="events", seq=seq)
    for database, run_ids in sorted(elsewhere.items()):
        which = ("a database that did not name itself" if database == "unnamed"
                 else f"database {database}")
        report.add("anchors", f"{len(run_ids)} run(s) in the repository were recorded by "
                              f"{which}, not this one ({this_database}): their chains are "
                              "checked there; their files are checked here", ok=True)
    head = store.execute("chain_head", {"chain": repo_chain(repo_id)}) if repo_id else []
    last = int(head[0][0]) if head else 0
    if anchored:
        report.add("anchors", f"{anchored} manifest(s) match the chain", ok=True)
        if last > top:
            report.add("anchors", f"unanchored: events {top + 1}..{last} of "
                                  f"{repo_chain(repo_id or 0)} come after the last anchor "
                                  "(runs still under way): no manifest vouches for them yet",
                       unanchored=True, table="events", seq=top + 1)
    elif not runs:
        if not manifests:
            report.add("anchors", f"unanchored: {path} has no runs in this database and no "
                                  "manifests, so nothing vouches for any chain",
                       unanchored=True)
        # else: every manifest is another database's, and this one has no chain here
    else:
        report.add("anchors", "unanchored: no run manifest vouches for this chain yet (a run "
                              "in progress has none until it ends), so a removed tail could "
                              "not be seen", unanchored=True)
    return audit_top


def _differs(run_id: str, seq: int, vouched: int) -> str:
    """Why a manifest's hash of event ``seq`` differs from the database's. A chain
    rewritten at or before ``seq`` changes every later hash too, so a manifest that
    matches at ``vouched >= seq`` clears the chain: the differing manifest was edited.
    Without one, either could be what changed."""
    said = f"run {run_id}: its manifest's hash of event seq {seq} is not the database's"
    if vouched >= seq:
        return (f"{said}: the manifest was edited (another run's manifest vouches for the "
                f"chain through seq {vouched})")
    return f"{said}: the manifest was edited, or the chain was rewritten at or before it"


def _audit_anchor(store: Store, document: dict[str, Any], run_id: str, report: Report) -> int:
    audit = document.get("audit")
    if not isinstance(audit, dict):
        return 0
    seq, expected = int(audit.get("seq", 0)), str(audit.get("hash"))
    if seq == 0:
        return 0
    rows = store.execute("audit_at", {"seq": seq})
    if not rows or rows[0][0] != expected:
        report.add("anchors", f"run {run_id}: its manifest anchors audit row {seq}, which the "
                              "database no longer has as recorded (the audit log was cut or "
                              "rewritten)", table="audit_log", seq=seq)
        return 0
    return seq


def check_artifacts(store: Store, found: _Repo, report: Report) -> None:
    """Every artifact file a run of the repository published still holds the bytes whose
    sha256 was recorded (a file edited after publishing, e.g. by an agent or a merge,
    would let a later reader trust what nobody reviewed). The database's record for its
    own runs, the manifest's for runs it does not have."""
    path = found.path
    expected = [(str(r[0]), str(r[1]), int(r[2]), str(r[3]), str(r[4]), str(r[5]))
                for r in store.execute("repo_artifacts", {"path": path})]
    for run_id, manifest in found.manifests.items():
        if run_id in found.runs:
            continue
        try:
            listed = json.loads(manifest.read_text(encoding="utf-8"))["artifacts"]
            expected += [(run_id, str(a["job"]), int(a["iteration"]), str(a["path"]),
                          str(a["stored_at"]), str(a["sha256"])) for a in listed]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # check_anchors says the manifest is unreadable
    bad = 0
    for run_id, job_id, iteration, name, stored_at, sha256 in expected:
        where = f"run {run_id}: artifact {name} of {job_id} (iteration {iteration})"
        try:
            now = _sha256_of(Path(path) / stored_at)
        except FileNotFoundError:
            report.add("files", f"{where} is gone from {stored_at}")
            bad += 1
            continue
        except OSError as exc:
            report.add("files", f"{where}: {stored_at} cannot be read: {exc.strerror}")
            bad += 1
            continue
        if now != sha256:
            report.add("files", f"{where}: {stored_at} changed since it was published "
                                f"(sha256 {sha256[:12]}... recorded, {now[:12]}... now)")
            bad += 1
    if expected and not bad:
        report.add("files", f"{len(expected)} artifact file(s) hold what was published",
                   ok=True)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as reader:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_skills(repo: str, report: Report) -> None:
    """The striatum skills installed in ``repo``: current, or flagged with the command
    that brings them up to date (an agent would follow an outdated playbook)."""
    from ..agents.skills import check

    root = Path(repo)
    for found in check(root):
        where = found.path.relative_to(root)
        if found.state == "current":
            report.add("skills", f"{where} is this striatum's skill", ok=True)
        else:
            why = ("was edited since it was installed" if found.state == "edited"
                   else "is from another striatum")
            report.add("skills", f"{where} {why}: `{found.fix(root)}` installs the current "
                                 "one", stale=True)


def doctor(store: Store, repo: str | None = None, *, strict: bool = False) -> Report:
    report = Report()
    replay = _Replay()
    with store.snapshot("doctor_snapshot", "doctor_catalog_path", "doctor_no_jit",
                        "doctor_leader_merges"):
        unproven = columns_unproven(store)
        for repo_id, _path in store.execute("all_repos"):
            check_chain(store, int(repo_id), report, replay, strict, unproven is None)
        audit_rows = check_audit(store, report, strict)
        check_projections(replay, report)
        check_rpc(store, report)
        check_verdicts(store, report)
        check_spent(store, report)
        check_guards(store, report, unproven)
        audit_anchor = 0
        if repo is not None:
            found = _repo_of(store, repo)
            audit_anchor = check_anchors(store, found, report)
            check_artifacts(store, found, report)
    if repo is not None:
        check_skills(repo, report)
    if audit_rows is not None:
        if audit_rows == 0 or audit_anchor >= audit_rows:
            report.add("chain", f"audit: {audit_rows} rows verified", ok=True,
                       table="audit_log")
        else:
            report.add("chain", f"audit: {audit_rows} rows verified; rows "
                                f"{audit_anchor + 1}..{audit_rows} are vouched for by no run "
                                "manifest, so a rewritten audit tail could not be seen",
                       unanchored=True, table="audit_log", seq=audit_anchor + 1)
    return report
