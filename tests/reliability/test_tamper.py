"""Scenario 6, the tamper matrix: every kind of edit the owner of the tables (or a
superuser) can make with the append-only triggers off, on a chain of real runs, must be
found by ``doctor`` — by the chains, the replay, or the run manifests in the repository.

Each tamper runs in a transaction as the owner (triggers disabled for the edit and enabled
again), ``doctor`` runs inside that transaction, and the transaction is rolled back: one
chain serves every case. An edit the database itself refuses (a foreign key, a primary
key) is counted as prevented, not as detected.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from striatum.canonical import canonical_json
from striatum.runtime.audit import append_audit, row_hash
from striatum.runtime.doctor import Report, doctor
from striatum.runtime.store import Store
from tests.integration.helpers import (
    Agent,
    example,
    rewind_projections,
    scripted,
    start_run,
    unproven,
)

from .conftest import LONG, Conn, Record, assert_doctor_ok, owner

EVENT_COLUMNS = ["repo_id", "seq", "run_id", "job_id", "type", "payload", "previous_hash",
                 "row_hash", "created_at"]
AUDIT_COLUMNS = ["seq", "actor", "verb", "args_digest", "outcome", "payload",
                 "previous_hash", "row_hash", "created_at"]
# Runs of 7 to 30 events, so a truncated tail of up to 50 crosses run boundaries.
RUN_MIX = [("code-change", {"check": ["needs_revision"]}), ("minimal", {}),
           ("multi-review", {}), ("review", {}), ("code-change", {})]


@dataclass
class Chain:
    dsn: str
    repo: Path
    repo_id: int
    events: int
    audit: int
    runs: list[str]
    run_sizes: list[int]
    audit_anchored: int = 0  # audit rows the last run's manifest vouches for

    @property
    def chain(self) -> str:
        return f"repo:{self.repo_id}"


def build_chain(store: Store, dsn: str, repo: Path, workdir: Path, events: int,
                audit: int) -> Chain:
    run_ids: list[str] = []
    sizes: list[int] = []
    total = 0
    i = 0
    audited = 0

    def add_audit(count: int) -> None:
        nonlocal audited
        for n in range(audited, audited + count):
            store.transaction(lambda cur, n=n: append_audit(
                cur, actor=f"tester{n % 3}", verb=f"verb {n}", args={"n": n}, outcome="ok"))
        audited += count

    while total < events:
        name, verdicts = RUN_MIX[i % len(RUN_MIX)]
        i += 1
        # Audit rows between the runs: each run's manifest anchors the audit head too.
        add_audit(min(3, max(0, audit - 4 - audited)))
        run_id = start_run(store, example(name), repo)
        view = Agent(store, run_id, workdir, verdict=scripted(verdicts)).drive()
        assert view.run.status == "completed", view.to_json()
        assert view.head is not None
        run_ids.append(run_id)
        sizes.append(view.head[0] - total)
        total = view.head[0]
    # Every change of the runs is audited too: the last manifest anchors the audit head
    # as it was when that run ended.
    anchored = audit_rows(store)
    add_audit(max(3, audit - audited))  # and a tail no manifest vouches for yet
    repo_id = runs_repo_id(store, run_ids[0])
    assert_doctor_ok(store, repo)
    return Chain(dsn, repo, repo_id, total, audit_rows(store), run_ids, sizes, anchored)


def audit_rows(store: Store) -> int:
    row = store._conn.execute("SELECT count(*) FROM striatum.audit_log").fetchone()
    assert row is not None
    return int(row[0])


def runs_repo_id(store: Store, run_id: str) -> int:
    row = store._conn.execute("SELECT repo_id FROM striatum.runs WHERE id = %s",
                             (run_id,)).fetchone()
    assert row is not None
    return int(row[0])


# -- running one tamper ------------------------------------------------------------------------


Tamper = Callable[[Conn, Chain], None]


@dataclass
class Case:
    name: str
    tamper: Tamper
    by_anchor: bool = False  # the database stays self-consistent: only a manifest can tell


@dataclass
class Outcome:
    case: str
    result: str  # detected | prevented | undetected
    finding: dict[str, Any] | None = None
    report: Report | None = None


def attempt(chain: Chain, case: Case) -> Outcome:
    with owner(chain.dsn) as conn, conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE striatum.audit_log DISABLE TRIGGER USER")
        # The owner can lift the events' columns constraint too; put back, it is validated
        # only if every row still agrees with its payload (else doctor checks each row).
        with unproven(conn):
            try:
                with conn.transaction():
                    case.tamper(conn, chain)
            except (psycopg.IntegrityError, psycopg.DataError):
                return Outcome(case.name, "prevented")
        conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")
        conn.execute("ALTER TABLE striatum.audit_log ENABLE TRIGGER USER")
        as_owner = Store(chain.dsn, conn)
        report = doctor(as_owner, str(chain.repo))
        if case.by_anchor:
            # The forgery must leave the database agreeing with itself (else the case
            # would prove nothing about the anchors).
            alone = doctor(as_owner)
            assert alone.ok, (case.name, _first(alone))
    if report.ok:
        return Outcome(case.name, "undetected", report=report)
    return Outcome(case.name, "detected", _first(report), report)


def _first(report: Report) -> dict[str, Any]:
    return next(f.to_json() for f in report.findings if not f.ok)


@dataclass
class Matrix:
    outcomes: list[Outcome] = field(default_factory=list)

    def run(self, chain: Chain, cases: list[Case]) -> None:
        for case in cases:
            self.outcomes.append(attempt(chain, case))

    @property
    def counts(self) -> Counter[str]:
        return Counter(o.result for o in self.outcomes)

    def undetected(self) -> list[str]:
        return [o.case for o in self.outcomes if o.result == "undetected"]

    def describe(self) -> str:
        counts = self.counts
        tried = counts["detected"] + counts["undetected"]
        share = 100.0 * counts["detected"] / tried if tried else 100.0
        text = f"detected {counts['detected']} / {tried} ({share:.1f}%)"
        if counts["prevented"]:
            text += f", {counts['prevented']} refused by constraints"
        return text


# -- the edits -----------------------------------------------------------------------------------


def _row(conn: Conn, table: str, chain: Chain, seq: int) -> dict[str, Any]:
    where, params = _where(table, chain, seq)
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT * FROM striatum.{table} WHERE {where}", params)  # noqa: S608
        found = cur.fetchone()
    assert found is not None, (table, seq)
    return found


def _where(table: str, chain: Chain, seq: int) -> tuple[str, tuple[Any, ...]]:
    if table == "events":
        return "repo_id = %s AND seq = %s", (chain.repo_id, seq)
    return "seq = %s", (seq,)


def _scope(table: str, chain: Chain) -> tuple[str, tuple[Any, ...]]:
    return ("repo_id = %s", (chain.repo_id,)) if table == "events" else ("true", ())


def _length(table: str, chain: Chain) -> int:
    return chain.events if table == "events" else chain.audit


def flipped_text(value: str, position: int) -> str:
    """The string with the lowest bit of one character flipped (ASCII stays ASCII)."""
    i = position % len(value)
    return value[:i] + chr(ord(value[i]) ^ 1) + value[i + 1:]


def flip_bit(table: str, column: str, seq: int) -> Case:
    def tamper(conn: Conn, chain: Chain) -> None:
        scope, scoped = _scope(table, chain)
        # The nearest row where the column has a value (a run's events have no job).
        found = conn.execute(f"SELECT seq FROM striatum.{table} WHERE {scope} AND "  # noqa: S608
                             f"{column} IS NOT NULL ORDER BY abs(seq - %s), seq LIMIT 1",
                             (*scoped, seq)).fetchone()
        assert found is not None, (table, column)
        row = _row(conn, table, chain, int(found[0]))
        value = row[column]
        where, params = _where(table, chain, int(found[0]))
        update = f"UPDATE striatum.{table} SET {column} = %s WHERE {where}"  # noqa: S608
        if isinstance(value, int):
            # The lowest bit whose flip the keys allow; none: the database refuses them all.
            for bit in range(62):
                try:
                    with conn.transaction():
                        conn.execute(update, (value ^ (1 << bit), *params))
                    return
                except psycopg.IntegrityError:
                    continue
            raise psycopg.IntegrityError(f"every flip of {table}.{column} is refused")
        if isinstance(value, str):
            conn.execute(update, (flipped_text(value, len(value) // 2 + seq), *params))
        else:  # a timestamp: flip the lowest bit of its microseconds
            delta = timedelta(microseconds=-1 if value.microsecond % 2 else 1)
            conn.execute(update, (value + delta, *params))

    return Case(f"flip {table}.{column} @{seq}", tamper)


def _shift_up(conn: Conn, table: str, chain: Chain, first: int) -> None:
    """Move rows seq >= first one place up (through negatives: the key is unique)."""
    scope, params = _scope(table, chain)
    conn.execute(f"UPDATE striatum.{table} SET seq = -seq WHERE {scope} AND seq >= %s",  # noqa: S608
                 (*params, first))
    conn.execute(f"UPDATE striatum.{table} SET seq = 1 - seq WHERE {scope} AND seq < 0",  # noqa: S608
                 params)


def _fix_head(conn: Conn, table: str, chain: Chain, seq: int) -> None:
    """Point the chain's head at row ``seq``, as a careful forger would."""
    row = _row(conn, table, chain, seq)
    conn.execute("UPDATE striatum.chain_heads SET seq = %s, hash = %s, previous = %s "
                 "WHERE chain = %s", (seq, row["row_hash"], row["previous_hash"],
                                      chain.chain if table == "events" else "audit"))


def delete_row(table: str, seq: int) -> Case:
    def tamper(conn: Conn, chain: Chain) -> None:
        where, params = _where(table, chain, seq)
        conn.execute(f"DELETE FROM striatum.{table} WHERE {where}", params)  # noqa: S608

    return Case(f"delete {table} @{seq}", tamper)


def swap_rows(table: str, seq: int) -> Case:
    def tamper(conn: Conn, chain: Chain) -> None:
        scope, params = _scope(table, chain)
        statement = f"UPDATE striatum.{table} SET seq = %s WHERE {scope} AND seq = %s"  # noqa: S608
        conn.execute(statement, (-1, *params, seq))
        conn.execute(statement, (seq, *params, seq + 1))
        conn.execute(statement, (seq + 1, *params, -1))

    return Case(f"swap {table} @{seq},{seq + 1}", tamper)


def _insert(conn: Conn, table: str, chain: Chain, row: dict[str, Any]) -> None:
    columns = [c for c in (EVENT_COLUMNS if table == "events" else AUDIT_COLUMNS)
               if c != "created_at"]
    conn.execute(f"INSERT INTO striatum.{table} ({', '.join(columns)}) "  # noqa: S608
                 f"VALUES ({', '.join(['%s'] * len(columns))})", [row[c] for c in columns])


def forge_row(table: str, seq: int) -> Case:
    """A new row at ``seq`` whose own hash is right (payload copied from the row before,
    with another time); later rows move up one; the head is fixed."""

    def tamper(conn: Conn, chain: Chain) -> None:
        before = _row(conn, table, chain, seq - 1)
        body = json.loads(before["payload"])
        body["at"] = "2001-01-01T00:00:00.000000+00:00"
        payload = canonical_json(body).decode("utf-8")
        _shift_up(conn, table, chain, seq)
        _insert(conn, table, chain, {**before, "seq": seq, "payload": payload,
                                     "previous_hash": before["row_hash"],
                                     "row_hash": row_hash(before["row_hash"], payload)})
        _fix_head(conn, table, chain, _length(table, chain) + 1)

    return Case(f"forge {table} @{seq}", tamper)


def duplicate_row(table: str, seq: int) -> Case:
    def tamper(conn: Conn, chain: Chain) -> None:
        row = _row(conn, table, chain, seq)
        _shift_up(conn, table, chain, seq + 1)
        _insert(conn, table, chain, {**row, "seq": seq + 1})
        _fix_head(conn, table, chain, _length(table, chain) + 1)

    return Case(f"duplicate {table} @{seq}", tamper)


def truncate_tail(k: int) -> Case:
    """Delete the last k events, fix the head and the projections: the database agrees
    with itself, and only the manifests in the repository can tell."""

    def tamper(conn: Conn, chain: Chain) -> None:
        keep = chain.events - k
        touched = [r[0] for r in conn.execute(
            "SELECT DISTINCT run_id FROM striatum.events WHERE repo_id = %s AND seq > %s",
            (chain.repo_id, keep))]
        conn.execute("DELETE FROM striatum.events WHERE repo_id = %s AND seq > %s",
                     (chain.repo_id, keep))
        _fix_head(conn, "events", chain, keep)
        for run_id in touched:
            rewind_projections(conn, run_id)

    return Case(f"truncate tail k={k}", tamper, by_anchor=True)


def rewrite_suffix(start: int) -> Case:
    """Edit event ``start`` (its time, and created_at to match) and re-hash every row after
    it: the chain is valid again, the replay unchanged; only a manifest that anchored a
    later row can tell."""

    def tamper(conn: Conn, chain: Chain) -> None:
        previous = _row(conn, "events", chain, start)["previous_hash"]
        for seq in range(start, chain.events + 1):
            row = _row(conn, "events", chain, seq)
            payload = row["payload"]
            if seq == start:
                body = json.loads(payload)
                body["at"] = "2001-01-01T00:00:00.000000+00:00"
                payload = canonical_json(body).decode("utf-8")
                conn.execute("UPDATE striatum.events SET created_at = %s::timestamptz "
                             "WHERE repo_id = %s AND seq = %s",
                             (body["at"], chain.repo_id, seq))
            digest = row_hash(previous, payload)
            conn.execute("UPDATE striatum.events SET payload = %s, previous_hash = %s, "
                         "row_hash = %s WHERE repo_id = %s AND seq = %s",
                         (payload, previous, digest, chain.repo_id, seq))
            previous = digest
        _fix_head(conn, "events", chain, chain.events)

    return Case(f"rewrite suffix from {start}", tamper, by_anchor=True)


def truncate_audit(k: int) -> Case:
    """Cut the audit log back to k rows before the last anchored one, head fixed."""

    def tamper(conn: Conn, chain: Chain) -> None:
        keep = chain.audit_anchored - k
        conn.execute("DELETE FROM striatum.audit_log WHERE seq > %s", (keep,))
        _fix_head(conn, "audit_log", chain, keep)

    return Case(f"truncate audit log to {k} before its anchor", tamper, by_anchor=True)


def rewrite_audit_suffix(start: int) -> Case:
    """Change one audit row's outcome (column and hashed payload alike) and re-hash every
    row after it, head fixed: the audit chain is valid again."""

    def tamper(conn: Conn, chain: Chain) -> None:
        previous = _row(conn, "audit_log", chain, start)["previous_hash"]
        for seq in range(start, chain.audit + 1):
            row = _row(conn, "audit_log", chain, seq)
            payload = row["payload"]
            if seq == start:
                body = json.loads(payload)
                body["outcome"] = "conflict"
                payload = canonical_json(body).decode("utf-8")
                conn.execute("UPDATE striatum.audit_log SET outcome = 'conflict' WHERE seq = %s",
                             (seq,))
            digest = row_hash(previous, payload)
            conn.execute("UPDATE striatum.audit_log SET payload = %s, previous_hash = %s, "
                         "row_hash = %s WHERE seq = %s", (payload, previous, digest, seq))
            previous = digest
        _fix_head(conn, "audit_log", chain, chain.audit)

    return Case(f"rewrite audit suffix from {start}", tamper, by_anchor=True)


# -- the matrices --------------------------------------------------------------------------------


def positions(length: int, sample: int | None, rng: random.Random, low: int = 1,
              high: int | None = None) -> list[int]:
    """Every position in [low, high], or ``sample`` of them always including the ends."""
    top = length if high is None else high
    everything = list(range(low, top + 1))
    if sample is None or sample >= len(everything):
        return everything
    return sorted({low, top, *rng.sample(everything, sample - 2)})


@dataclass
class Size:
    events: int
    audit: int
    flip_rows: int | None  # rows whose every column is flipped (None: all)
    rows: int | None  # rows deleted / swapped (None: every one)
    forged: int | None
    suffixes: int | None


SHORT = Size(events=200, audit=40, flip_rows=3, rows=25, forged=10, suffixes=15)
SOAK = Size(events=1000, audit=200, flip_rows=30, rows=None, forged=100, suffixes=100)


@pytest.fixture
def built(request: pytest.FixtureRequest, store: Store, dsn: str, repo: Path,
          tmp_path: Path) -> tuple[Chain, Size]:
    size: Size = request.param
    workdir = tmp_path / "agent"
    workdir.mkdir()
    return build_chain(store, dsn, repo, workdir, size.events, size.audit), size


SIZES = [pytest.param(SHORT, id="short"),
         pytest.param(SOAK, id="soak", marks=LONG)]


def _report(figure: Record, scenario: str, matrix: Matrix, started: float) -> None:
    figure(scenario, len(matrix.outcomes), matrix.describe(), time.monotonic() - started)


@pytest.mark.parametrize("built", SIZES, indirect=True)
def test_a_flipped_bit_in_any_column_is_detected(built: tuple[Chain, Size],
                                                 figure: Record) -> None:
    chain, size = built
    rng = random.Random(61)
    cases = []
    for table, columns in (("events", EVENT_COLUMNS), ("audit_log", AUDIT_COLUMNS)):
        length = _length(table, chain)
        rows = positions(length, size.flip_rows, rng)
        if size.flip_rows is not None and size.flip_rows >= 3:
            rows = sorted({1, length // 2, length, *rows})
        cases += [flip_bit(table, column, seq) for seq in rows for column in columns]
    started = time.monotonic()
    matrix = Matrix()
    matrix.run(chain, cases)
    _report(figure, f"6 tamper: bit flips ({chain.events} events)", matrix, started)
    assert not matrix.undetected(), (
        f"{len(matrix.undetected())} flipped bits went unnoticed: {matrix.undetected()}")


@pytest.mark.parametrize("built", SIZES, indirect=True)
def test_deleted_swapped_forged_and_duplicated_rows_are_detected(
        built: tuple[Chain, Size], figure: Record) -> None:
    chain, size = built
    rng = random.Random(62)
    cases: list[Case] = []
    for table in ("events", "audit_log"):
        length = _length(table, chain)
        cases += [delete_row(table, seq) for seq in positions(length, size.rows, rng)]
        cases += [swap_rows(table, seq)
                  for seq in positions(length, size.rows, rng, high=length - 1)]
        cases += [forge_row(table, seq)
                  for seq in positions(length, size.forged, rng, low=2)]
        cases += [duplicate_row(table, seq) for seq in positions(length, size.forged, rng)]
    started = time.monotonic()
    matrix = Matrix()
    matrix.run(chain, cases)
    _report(figure, f"6 tamper: rows deleted/swapped/forged/duplicated ({chain.events} events)",
            matrix, started)
    assert not matrix.undetected(), matrix.undetected()
    assert matrix.counts["prevented"] == 0, [o.case for o in matrix.outcomes
                                            if o.result == "prevented"]


@pytest.mark.parametrize("built", SIZES, indirect=True)
def test_a_truncated_tail_with_a_fixed_head_is_detected_through_the_manifests(
        built: tuple[Chain, Size], figure: Record) -> None:
    chain, _ = built
    started = time.monotonic()
    matrix = Matrix()
    matrix.run(chain, [truncate_tail(k) for k in range(1, 51)])
    _report(figure, f"6 tamper: tail truncated k=1..50 ({chain.events} events)", matrix,
            started)
    found = {o.case: (o.finding or {}).get("check") for o in matrix.outcomes}
    assert not matrix.undetected(), (
        f"truncations doctor did not see (the last runs had {chain.run_sizes[-3:]} events): "
        f"{matrix.undetected()}")
    assert set(found.values()) == {"anchors"}, found


@pytest.mark.parametrize("built", SIZES, indirect=True)
def test_a_suffix_rewritten_with_recomputed_hashes_is_detected_through_the_manifests(
        built: tuple[Chain, Size], figure: Record) -> None:
    chain, size = built
    rng = random.Random(66)
    starts = positions(chain.events, size.suffixes, rng)
    started = time.monotonic()
    matrix = Matrix()
    matrix.run(chain, [rewrite_suffix(s) for s in starts])
    _report(figure, f"6 tamper: suffix rewritten and re-hashed ({chain.events} events)", matrix,
            started)
    assert not matrix.undetected(), matrix.undetected()
    assert {(o.finding or {}).get("check") for o in matrix.outcomes} == {"anchors"}


@pytest.mark.parametrize("built", SIZES, indirect=True)
def test_a_cut_or_rewritten_audit_log_is_detected_through_the_manifests(
        built: tuple[Chain, Size], figure: Record) -> None:
    """Run manifests anchor the audit chain's head too: cutting it back or rewriting it
    (re-hashed, head fixed) below an anchor is found; a rewrite of only the rows after the
    last anchor cannot be, and doctor says that tail is unanchored instead of ok."""
    chain, size = built
    assert chain.audit_anchored > 10, chain
    rng = random.Random(67)
    cases = [truncate_audit(k) for k in range(1, min(20, chain.audit_anchored - 1) + 1)]
    cases += [rewrite_audit_suffix(s)
              for s in positions(chain.audit_anchored, size.suffixes, rng)]
    started = time.monotonic()
    matrix = Matrix()
    matrix.run(chain, cases)
    _report(figure, f"6 tamper: audit log cut or rewritten ({chain.audit} rows)", matrix,
            started)
    assert not matrix.undetected(), matrix.undetected()
    assert {(o.finding or {}).get("check") for o in matrix.outcomes} == {"anchors"}
    beyond = attempt(chain, rewrite_audit_suffix(chain.audit_anchored + 1))
    assert beyond.result == "undetected" and beyond.report is not None
    statuses = [f.status for f in beyond.report.findings if f.table == "audit_log"]
    assert statuses == ["unanchored"], statuses


# -- without an anchor -------------------------------------------------------------------------


def doctor_text(dsn: str, repo: Path) -> tuple[int, str]:
    """``striatum doctor`` as a user runs it (text output)."""
    done = subprocess.run([sys.executable, "-m", "striatum", "--dsn", dsn, "--repo", str(repo),
                           "doctor"], capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout


def anchor_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[4:].lstrip().startswith("anchors")]


def test_a_chain_no_manifest_vouches_for_is_unanchored_never_ok(
        store: Store, dsn: str, repo: Path, tmp_path: Path, figure: Record) -> None:
    run_id = start_run(store, example("code-change"), repo)
    Agent(store, run_id, tmp_path).step()  # the run is under way: no manifest yet
    report = doctor(store, str(repo))
    anchors = [f for f in report.findings if f.check == "anchors"]
    assert [f.status for f in anchors] == ["unanchored"], [f.to_json() for f in anchors]
    assert not report.anchored
    code, text = doctor_text(dsn, repo)
    lines = anchor_lines(text)
    figure("6 no anchor (run under way)", 1,
           f"anchors status {[f.status for f in anchors]}; text: {lines[:1]}; "
           f"last line: {text.splitlines()[-1][:60]!r}", 0.0)
    assert lines and not any(line.startswith("ok") for line in lines), text
    assert text.splitlines()[-1].startswith(
        "no problem found; the newest records are not vouched for outside the database yet "
        "(a run's manifest anchors them when it ends)"), text
    assert code == 0, text  # nothing failed; it is said, not hidden


def test_removed_manifests_leave_the_chain_unanchored_and_fail(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    assert Agent(store, run_id, tmp_path).drive().run.status == "completed"
    shutil.rmtree(repo / "striatum" / "runs" / run_id)
    report = doctor(store, str(repo))
    statuses = Counter(f.status for f in report.findings if f.check == "anchors")
    assert statuses["ok"] == 0 and statuses["unanchored"] == 1 and statuses["fail"] >= 1, (
        [f.to_json() for f in report.findings])
    code, text = doctor_text(dsn, repo)
    assert code == 2 and not any(line.startswith("ok") for line in anchor_lines(text)), text


def test_events_after_the_last_anchor_are_reported_unanchored(
        store: Store, dsn: str, repo: Path, tmp_path: Path, figure: Record) -> None:
    """A run ended (its manifest anchors its last event); a second run is under way. Its
    events could be rewritten, re-hashed, with no manifest to tell: doctor must say that
    part of the chain is unanchored rather than call the anchors simply ok."""
    first = start_run(store, example("minimal"), repo)
    assert Agent(store, first, tmp_path).drive().run.status == "completed"
    second = start_run(store, example("code-change"), repo)
    Agent(store, second, tmp_path).step()
    report = doctor(store, str(repo))
    anchors = [f.to_json() for f in report.findings if f.check == "anchors"]
    figure("6 no anchor (events after the last manifest)", 1,
           f"anchors status {[f['status'] for f in anchors]}", 0.0)
    assert any(f["status"] == "unanchored" for f in anchors), (
        f"the events of run {second} after the last anchor are vouched for by nothing, yet "
        f"doctor says: {anchors}")


def test_the_audit_chain_which_no_manifest_anchors_is_reported_unanchored(
        store: Store, dsn: str, repo: Path, tmp_path: Path, figure: Record) -> None:
    """The audit chain is global and no manifest records its head, so a rewritten and
    re-hashed audit tail cannot be found; doctor must say so, not report it as ok."""
    run_id = start_run(store, example("minimal"), repo)
    assert Agent(store, run_id, tmp_path).drive().run.status == "completed"
    for n in range(3):
        store.transaction(lambda cur, n=n: append_audit(
            cur, actor="tester", verb=f"verb {n}", args={}, outcome="ok"))
    report = doctor(store, str(repo))
    audit = [f.to_json() for f in report.findings if f.table == "audit_log"]
    figure("6 no anchor (audit chain)", 1, f"audit chain status {[f['status'] for f in audit]}",
           0.0)
    assert audit and all(f["status"] == "unanchored" for f in audit), (
        f"doctor vouches for the unanchored audit chain: {audit}")
