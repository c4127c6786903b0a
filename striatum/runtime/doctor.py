"""``striatum doctor``: prove the record is intact, or name the first row that is not.

1. Chains: every repository chain and the audit chain are recomputed row by
   row (streamed with a server-side cursor: memory stays flat on millions of
   rows); seq must run 1..n without a gap, each previous_hash must be the
   prior row_hash, each row_hash must be sha256(previous_hash || payload), the
   payload must be canonical JSON agreeing with its columns, and the head row
   must point at the last row.
2. Replay: folding each run's events (every transition legal by the state
   machine) must reproduce the jobs and runs tables exactly.
3. Guards: the append-only triggers are present and enabled; the runtime
   role cannot change or remove the record.
4. Anchors: with ``--repo``, each run manifest's chain head (seq, hash) must
   still be in the database — a deleted or rewritten tail is found this way.
   A chain no manifest anchors is reported as "unanchored", never as "ok".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..canonical import canonical_json
from .audit import GENESIS, iso, repo_chain, row_hash
from .machine import destination
from .records import REPLAYED_JOB_COLUMNS, REPLAYED_RUN_COLUMNS
from .sql import query
from .store import Store, wrap_errors

BATCH = 5000


@dataclass
class Finding:
    check: str
    message: str
    table: str | None = None
    seq: int | None = None
    ok: bool = False
    unanchored: bool = False  # nothing failed, but nothing vouches for the chain's tail

    @property
    def status(self) -> str:
        return "unanchored" if self.unanchored else ("ok" if self.ok else "fail")

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
            seq: int | None = None, unanchored: bool = False) -> None:
        self.findings.append(Finding(check, message, table, seq, ok or unanchored, unanchored))

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "anchored": self.anchored, "events": self.events,
                "audit_rows": self.audit_rows, "findings": [f.to_json() for f in self.findings]}


def _stream(store: Store, name: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """Rows through a named (server-side) cursor, so memory does not grow with the table."""
    with wrap_errors(), store.conn.transaction(), store.conn.cursor(name="doctor") as cur:
        cur.itersize = BATCH
        cur.execute(query(name), params)
        yield from cur


class _Replay:
    """Fold events into the state they claim, checking each step against the machines."""

    def __init__(self) -> None:
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.granted: dict[str, int] = {}  # run -> passes a human added beyond the plan
        self.problem: str | None = None

    def apply(self, run: str | None, job: str | None, kind: str, body: dict[str, Any]
              ) -> None:
        if self.problem or run is None:
            return
        noun, _, trigger = kind.partition(".")
        state = body.get("state", {})
        if kind == "run.prepare":
            self.runs[run] = dict(state)
            for job_id, job_state in body.get("data", {}).get("jobs", {}).items():
                self.jobs[(run, job_id)] = dict(job_state)
        elif noun == "run":
            self._step("run", self.runs.get(run), trigger, state, run)
            self.runs[run] = dict(state)
        elif noun == "job" and job is not None:
            self._step("job", self.jobs.get((run, job)), trigger, state, f"{run}/{job}")
            self.jobs[(run, job)] = dict(state)
            if trigger == "reset" and body.get("data", {}).get("granted"):
                self.granted[run] = self.granted.get(run, 0) + 1

    def _step(self, kind: str, before: dict[str, Any] | None, trigger: str,
              after: dict[str, Any], name: str) -> None:
        if before is None:
            self.problem = f"{kind} {name} changes before it was prepared"
            return
        dest = destination(kind, trigger, str(before.get("status")))
        if dest is None or dest != after.get("status"):
            self.problem = (f"{kind} {name}: {trigger!r} from {before.get('status')!r} to "
                            f"{after.get('status')!r} is not a transition the machine allows")


def check_chain(store: Store, repo_id: int, report: Report, replay: _Replay) -> None:
    chain, expected_prev, expected_seq = repo_chain(repo_id), GENESIS, 1
    for seq, run, job, kind, payload, previous, stored, created in _stream(
            store, "stream_events", {"repo": repo_id}):
        report.events += 1
        problem = _row_problem(seq, expected_seq, previous, expected_prev, payload, stored)
        body: dict[str, Any] = {}
        if problem is None:
            body = json.loads(payload)
            if (body.get("run"), body.get("job"), body.get("type")) != (run, job, kind):
                problem = "columns run/job/type disagree with the hashed payload"
            elif body.get("at") != iso(created):
                problem = "created_at disagrees with the hashed payload's time"
        if problem:
            report.add("chain", f"{chain}: event seq {seq}: {problem}", table="events", seq=seq)
            return
        replay.apply(run, job, kind, body)
        expected_prev, expected_seq = stored, seq + 1
    _check_head(store, chain, expected_seq - 1, expected_prev, report, "events")


def _row_problem(seq: int, expected_seq: int, previous: str, expected_prev: str,
                 payload: str, stored: str) -> str | None:
    if seq != expected_seq:
        return f"expected seq {expected_seq} (a row is missing or was inserted)"
    if previous != expected_prev:
        return "previous_hash does not match the row before (rows removed, moved or forged)"
    if row_hash(previous, payload) != stored:
        return "row_hash does not match its payload (the row was edited)"
    try:
        canonical = canonical_json(json.loads(payload)).decode("utf-8") == payload
    except (ValueError, TypeError):
        canonical = False
    if not canonical:
        return "payload is not canonical JSON"
    return None


def _check_head(store: Store, chain: str, last_seq: int, last_hash: str, report: Report,
                table: str) -> None:
    rows = store.execute("chain_head", {"chain": chain})
    if not rows:
        report.add("chain", f"{chain}: no head row", table="chain_heads")
    elif (int(rows[0][0]), rows[0][1]) != (last_seq, last_hash):
        report.add("chain", f"{chain}: the head says seq {rows[0][0]}, the table ends at "
                            f"{last_seq} (rows at the end were removed)", table=table,
                   seq=last_seq + 1)
    else:
        report.add("chain", f"{chain}: {last_seq} rows verified", ok=True, table=table)


def check_audit(store: Store, report: Report) -> int | None:
    """Verify the audit chain; its length when intact (the caller reports it, anchored or
    not), None when a problem was reported."""
    expected_prev, expected_seq = GENESIS, 1
    for seq, actor, verb, digest, outcome, payload, previous, stored, created in _stream(
            store, "stream_audit", {}):
        report.audit_rows += 1
        problem = _row_problem(seq, expected_seq, previous, expected_prev, payload, stored)
        if problem is None:
            body = json.loads(payload)
            if (body.get("actor"), body.get("verb"), body.get("args_digest"),
                    body.get("outcome")) != (actor, verb, digest, outcome):
                problem = "columns disagree with the hashed payload"
            elif body.get("at") != iso(created):
                problem = "created_at disagrees with the hashed payload's time"
        if problem:
            report.add("chain", f"audit: row seq {seq}: {problem}", table="audit_log", seq=seq)
            return None
        expected_prev, expected_seq = stored, seq + 1
    rows = store.execute("chain_head", {"chain": "audit"})
    if not rows or (int(rows[0][0]), rows[0][1]) != (expected_seq - 1, expected_prev):
        _check_head(store, "audit", expected_seq - 1, expected_prev, report, "audit_log")
        return None
    return expected_seq - 1


def check_projections(store: Store, replay: _Replay, report: Report) -> None:
    if replay.problem:
        report.add("replay", replay.problem, table="events")
        return
    bad = 0
    for row in store.execute("all_jobs_state"):
        key, actual = (row[0], row[1]), dict(zip(REPLAYED_JOB_COLUMNS, row[2:], strict=True))
        replayed = replay.jobs.get(key)
        if replayed is None or any(replayed.get(c) != actual[c] for c in REPLAYED_JOB_COLUMNS):
            bad += 1
            if bad == 1:
                report.add("replay", f"job {key[0]}/{key[1]}: table says {actual}, events say "
                                     f"{replayed}", table="jobs")
    for run_id, _repo, status, blocked_on, worst, executions in store.execute("all_runs_state"):
        actual = dict(zip(REPLAYED_RUN_COLUMNS, (status, blocked_on), strict=True))
        replayed = replay.runs.get(run_id)
        if replayed is None or any(replayed.get(c) != actual[c] for c in REPLAYED_RUN_COLUMNS):
            bad += 1
            report.add("replay", f"run {run_id}: table says {actual}, events say {replayed}",
                       table="runs")
        allowed = worst + replay.granted.get(run_id, 0)
        if executions > allowed:
            report.add("bound", f"run {run_id}: {executions} job executions exceed the "
                                f"proven worst case {worst} (plus {allowed - worst} granted "
                                "by a human)", table="jobs")
    if not bad:
        report.add("replay", "the events reproduce every job and run", ok=True)


def check_guards(store: Store, report: Report) -> None:
    triggers, role, role_can_change = store.execute("guards")[0]
    if triggers != 4:
        report.add("guards", f"append-only triggers: {triggers} of 4 present and enabled",
                   table="events")
    else:
        report.add("guards", "append-only triggers present and enabled", ok=True)
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


def check_anchors(store: Store, repo: str, report: Report) -> int:
    """Check the manifests of ``repo`` against the chains; returns the highest audit
    seq a manifest vouches for (0 if none)."""
    import os

    from .runs import DEFAULT_ARTIFACT_ROOT

    path = os.path.realpath(repo)
    runs = {r[0]: (r[1], r[2]) for r in store.execute("runs_of_repo", {"path": path})}
    manifests = _manifests(Path(path), {DEFAULT_ARTIFACT_ROOT} | {root for _, root in
                                                                 runs.values()})
    for run_id, (status, root) in runs.items():
        if run_id not in manifests and status in ("completed", "failed", "cancelled"):
            report.add("anchors", f"run {run_id} ended but has no manifest under "
                                  f"{Path(path) / root}")
    repo_rows = [r for r in store.execute("all_repos") if r[1] == path]
    repo_id = int(repo_rows[0][0]) if repo_rows else None
    anchored = 0
    top, audit_top = 0, 0
    for run_id, manifest in manifests.items():
        try:
            document = json.loads(manifest.read_text(encoding="utf-8"))
            chain = document["chain"]
            seq, expected = int(chain["seq"]), str(chain["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            report.add("anchors", f"{manifest} is not a readable manifest")
            continue
        if run_id not in runs:
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
            report.add("anchors", f"run {run_id}: event seq {seq} differs from the hash its "
                                  "manifest recorded (the chain was rewritten)",
                       table="events", seq=seq)
        else:
            anchored += 1
            top = max(top, seq)
            audit_top = max(audit_top, _audit_anchor(store, document, run_id, report))
    head = store.execute("chain_head", {"chain": repo_chain(repo_id)}) if repo_id else []
    last = int(head[0][0]) if head else 0
    if anchored:
        report.add("anchors", f"{anchored} manifest(s) match the chain", ok=True)
        if last > top:
            report.add("anchors", f"unanchored: events {top + 1}..{last} of "
                                  f"{repo_chain(repo_id or 0)} come after the last anchor "
                                  "(runs still under way): no manifest vouches for them yet",
                       unanchored=True, table="events", seq=top + 1)
    elif not manifests and not runs:
        report.add("anchors", f"unanchored: {path} has no runs in this database and no "
                              "manifests, so nothing vouches for any chain", unanchored=True)
    else:
        report.add("anchors", "unanchored: no run manifest vouches for this chain yet, so a "
                              "removed tail could not be seen", unanchored=True)
    return audit_top


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


def doctor(store: Store, repo: str | None = None) -> Report:
    report = Report()
    replay = _Replay()
    for repo_id, _path in store.execute("all_repos"):
        check_chain(store, int(repo_id), report, replay)
    audit_rows = check_audit(store, report)
    check_projections(store, replay, report)
    check_guards(store, report)
    audit_anchor = check_anchors(store, repo, report) if repo is not None else 0
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
