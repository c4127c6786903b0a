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
from .audit import GENESIS, repo_chain, row_hash
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
    for seq, run, job, kind, payload, previous, stored in _stream(
            store, "stream_events", {"repo": repo_id}):
        report.events += 1
        problem = _row_problem(seq, expected_seq, previous, expected_prev, payload, stored)
        body: dict[str, Any] = {}
        if problem is None:
            body = json.loads(payload)
            if (body.get("run"), body.get("job"), body.get("type")) != (run, job, kind):
                problem = "columns run/job/type disagree with the hashed payload"
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


def check_audit(store: Store, report: Report) -> None:
    expected_prev, expected_seq = GENESIS, 1
    for seq, actor, verb, digest, outcome, payload, previous, stored in _stream(
            store, "stream_audit", {}):
        report.audit_rows += 1
        problem = _row_problem(seq, expected_seq, previous, expected_prev, payload, stored)
        if problem is None:
            body = json.loads(payload)
            if (body.get("actor"), body.get("verb"), body.get("args_digest"),
                    body.get("outcome")) != (actor, verb, digest, outcome):
                problem = "columns disagree with the hashed payload"
        if problem:
            report.add("chain", f"audit: row seq {seq}: {problem}", table="audit_log", seq=seq)
            return
        expected_prev, expected_seq = stored, seq + 1
    _check_head(store, "audit", expected_seq - 1, expected_prev, report, "audit_log")


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


def check_anchors(store: Store, repo: str, report: Report) -> None:
    import os

    path = os.path.realpath(repo)
    repo_rows = [r for r in store.execute("all_repos") if r[1] == path]
    if not repo_rows:
        report.add("anchors", f"unanchored: {path} has no runs in this database, so no "
                              "manifest vouches for any chain", unanchored=True)
        return
    repo_id = int(repo_rows[0][0])
    anchored = 0
    for run_id, status, root, repo_path in store.execute("runs_of_repo", {"path": path}):
        manifest = Path(repo_path) / root / run_id / "manifest.json"
        if not manifest.exists():
            if status in ("completed", "failed", "cancelled"):
                report.add("anchors", f"run {run_id} ended but has no manifest at {manifest}")
            continue
        try:
            chain = json.loads(manifest.read_text(encoding="utf-8"))["chain"]
            seq, expected = int(chain["seq"]), str(chain["hash"])
        except (OSError, ValueError, KeyError, TypeError):
            report.add("anchors", f"{manifest} is not a readable manifest")
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
    if anchored:
        report.add("anchors", f"{anchored} manifest(s) match the chain", ok=True)
    else:
        report.add("anchors", "unanchored: no run manifest vouches for this chain yet, so a "
                              "removed tail could not be seen", unanchored=True)


def doctor(store: Store, repo: str | None = None) -> Report:
    report = Report()
    replay = _Replay()
    for repo_id, _path in store.execute("all_repos"):
        check_chain(store, int(repo_id), report, replay)
    check_audit(store, report)
    check_projections(store, replay, report)
    check_guards(store, report)
    if repo is not None:
        check_anchors(store, repo, report)
    return report
