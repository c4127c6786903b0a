"""``doctor`` on a real PostgreSQL: a clean record passes; every kind of tampering with
the chains, the projections, the guards or the tail is found and located."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from striatum.canonical import canonical_json
from striatum.runtime import runs
from striatum.runtime.audit import append_audit, row_hash
from striatum.runtime.doctor import Finding, Report, doctor
from striatum.runtime.migrate import migrate
from striatum.runtime.store import Store

from .conftest import scratch_database
from .helpers import (
    Agent,
    example,
    owner_connection,
    rewind_projections,
    scripted,
    start_run,
    unproven,
    write_state_columns,
)

Conn = psycopg.Connection[Any]


@dataclass
class Completed:
    dsn: str
    repo: Path
    run_id: str
    repo_id: int
    last_seq: int  # the repository chain's last event, which the manifest anchors
    audit_rows: int


@pytest.fixture
def completed(store: Store, dsn: str, repo: Path, tmp_path: Path) -> Completed:
    """A code-change run with one revision, completed (every change audited), plus a few
    audit rows more."""
    run_id = start_run(store, example("code-change"), repo)
    view = Agent(store, run_id, tmp_path, verdict=scripted({"check": ["needs_revision"]})).drive()
    assert view.run.status == "completed"
    for i in range(5):
        store.transaction(lambda cur, i=i: append_audit(
            cur, actor="test", verb=f"verb {i}", args={"i": i}, outcome="ok"))
    assert view.head is not None
    audit_rows = store._conn.execute("SELECT count(*) FROM striatum.audit_log").fetchone()
    assert audit_rows is not None and audit_rows[0] > 5  # the run's changes are audited too
    return Completed(dsn, repo, run_id, view.run.repo_id, view.head[0], int(audit_rows[0]))


def first_failure(report: Report) -> Finding:
    failed = [f for f in report.findings if not f.ok]
    assert failed, [f.to_json() for f in report.findings]
    return failed[0]


def checks(report: Report) -> dict[str, list[Finding]]:
    found: dict[str, list[Finding]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, []).append(finding)
    return found


@contextmanager
def tampering(dsn: str) -> Iterator[Conn]:
    """The owner, with the append-only triggers off for the edit, and back on after (and the
    columns' constraint lifted, validated again after if the rows still agree)."""
    with owner_connection(dsn) as conn, unproven(conn):
        conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
        conn.execute("ALTER TABLE striatum.audit_log DISABLE TRIGGER USER")
        try:
            yield conn
        finally:
            conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")
            conn.execute("ALTER TABLE striatum.audit_log ENABLE TRIGGER USER")


def event(conn: Conn, repo_id: int, seq: int) -> tuple[Any, ...]:
    row = conn.execute("SELECT seq, run_id, job_id, type, payload, previous_hash, row_hash "
                       "FROM striatum.events WHERE repo_id = %s AND seq = %s",
                       (repo_id, seq)).fetchone()
    assert row is not None, seq
    return tuple(row)


def set_head(conn: Conn, repo_id: int, seq: int) -> None:
    """Point the repository chain's head at ``seq``, as a careful forger would."""
    _, _, _, _, _, previous, stored = event(conn, repo_id, seq)
    conn.execute("UPDATE striatum.chain_heads SET seq = %s, hash = %s, previous = %s "
                 "WHERE chain = %s", (seq, stored, previous, f"repo:{repo_id}"))


def forged_payload(conn: Conn, repo_id: int, like_seq: int, at: str) -> tuple[str, str, str]:
    """A copy of an event's payload with another time: (run, job, type) and the text."""
    _, run_id, job_id, kind, payload, _, _ = event(conn, repo_id, like_seq)
    body = json.loads(payload)
    body["at"] = at
    return kind, canonical_json(body).decode("utf-8"), run_id or ""


# -- a clean record ---------------------------------------------------------------------------

def test_a_clean_completed_run_passes_every_check(store: Store, completed: Completed) -> None:
    report = doctor(store, str(completed.repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]
    found = checks(report)
    assert {"chain", "replay", "guards", "anchors", "files"} <= set(found)
    assert all(f.ok for f in report.findings)
    assert report.events == completed.last_seq
    assert report.audit_rows == completed.audit_rows
    assert {f.table for f in found["chain"]} == {"events", "audit_log"}
    assert "1 manifest(s) match" in found["anchors"][0].message
    # Every iteration is checked: draft.md of the first draft and of the revision.
    stored = artifacts_of(completed)
    assert len([p for p in stored if p.name == "draft.md"]) == 2
    assert found["files"][0].message == f"{len(stored)} artifact file(s) hold what was published"


# -- the files in the repository --------------------------------------------------------------

def artifacts_of(c: Completed) -> list[Path]:
    return sorted(p for p in (c.repo / "striatum" / "runs" / c.run_id).rglob("*")
                  if p.is_file() and p.name != "manifest.json")


def test_an_artifact_edited_after_it_was_published_is_named(
        store: Store, completed: Completed) -> None:
    edited = next(p for p in artifacts_of(completed) if p.name == "draft.md")
    edited.write_text(edited.read_text(encoding="utf-8") + "one more line\n",
                      encoding="utf-8")
    report = doctor(store, str(completed.repo))
    assert not report.ok
    failed = [f for f in report.findings if not f.ok]
    assert [f.check for f in failed] == ["files"]
    where = edited.relative_to(completed.repo)
    assert f"{where} changed since it was published" in failed[0].message
    assert failed[0].message.startswith(f"run {completed.run_id}: artifact draft.md of draft")


def test_an_artifact_removed_after_it_was_published_is_named(
        store: Store, completed: Completed) -> None:
    gone = artifacts_of(completed)[0]
    gone.unlink()
    failed = [f for f in doctor(store, str(completed.repo)).findings if not f.ok]
    assert len(failed) == 1 and failed[0].check == "files"
    assert f"is gone from {gone.relative_to(completed.repo)}" in failed[0].message


def test_doctor_without_a_repo_skips_the_anchors(store: Store, completed: Completed) -> None:
    report = doctor(store)
    assert report.ok
    assert "anchors" not in checks(report)


# -- manifests of another database ------------------------------------------------------------

def manifest_of(c: Completed) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        (c.repo / "striatum" / "runs" / c.run_id / "manifest.json").read_text("utf-8"))
    return document


def test_a_manifest_names_the_database_that_holds_its_record(
        store: Store, completed: Completed) -> None:
    [(identity,)] = store._conn.execute("SELECT id::text FROM striatum.identity").fetchall()
    assert manifest_of(completed)["database"] == identity


def test_a_repository_whose_runs_another_database_recorded_is_said_once(
        admin_dsn: str, completed: Completed) -> None:
    """A teammate clones the repository, manifests included, and runs doctor on their own
    database (or a new embedded server): nothing is lost, and the files still count."""
    with scratch_database(admin_dsn, f"striatum_o_{secrets.token_hex(6)}") as other:
        migrate(other)
        theirs = Store.connect(other)
        try:
            report = doctor(theirs, str(completed.repo))
            [(identity,)] = theirs._conn.execute(
                "SELECT id::text FROM striatum.identity").fetchall()
        finally:
            theirs.close()
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]
    anchors = checks(report)["anchors"]
    recorded_by = manifest_of(completed)["database"]
    assert recorded_by != identity
    assert [f.message for f in anchors] == [
        f"1 run(s) in the repository were recorded by database {recorded_by}, not this "
        f"one ({identity}): their chains are checked there; their files are checked here"]
    assert checks(report)["files"][0].ok


def test_a_run_this_database_recorded_and_lost_still_fails(
        store: Store, completed: Completed) -> None:
    folder = completed.repo / "striatum" / "runs" / completed.run_id
    folder.rename(folder.with_name("r-lost"))
    failed = [f for f in doctor(store, str(completed.repo)).findings if not f.ok]
    assert any(f.check == "anchors" and "run r-lost has a manifest in the repository but "
               "the database has no such run" in f.message for f in failed), failed


# -- tampering with the chains ----------------------------------------------------------------

Tamper = Callable[[Conn, Completed], tuple[str, str, int]]
"""Edit the record; returns where doctor must point first: (check, table, seq)."""


def edit_payload(conn: Conn, c: Completed) -> tuple[str, str, int]:
    k = c.last_seq // 2
    conn.execute("UPDATE striatum.events SET payload = regexp_replace(payload, "
                 "'\"at\":\"[^\"]*\"', '\"at\":\"2000-01-01T00:00:00.000000+00:00\"') "
                 "WHERE repo_id = %s AND seq = %s", (c.repo_id, k))
    return "chain", "events", k


def edit_row_hash(conn: Conn, c: Completed) -> tuple[str, str, int]:
    k = c.last_seq // 2
    conn.execute("UPDATE striatum.events SET row_hash = repeat('a', 64) "
                 "WHERE repo_id = %s AND seq = %s", (c.repo_id, k))
    return "chain", "events", k


def edit_type(conn: Conn, c: Completed) -> tuple[str, str, int]:
    k = c.last_seq // 2
    conn.execute("UPDATE striatum.events SET type = 'run.complete' "
                 "WHERE repo_id = %s AND seq = %s", (c.repo_id, k))
    return "chain", "events", k


def edit_job_column(conn: Conn, c: Completed) -> tuple[str, str, int]:
    k = c.last_seq // 2
    conn.execute("UPDATE striatum.events SET job_id = 'apply' "
                 "WHERE repo_id = %s AND seq = %s", (c.repo_id, k))
    return "chain", "events", k


def delete_middle_row(conn: Conn, c: Completed) -> tuple[str, str, int]:
    k = c.last_seq // 2
    conn.execute("DELETE FROM striatum.events WHERE repo_id = %s AND seq = %s", (c.repo_id, k))
    return "chain", "events", k + 1


def swap_two_rows(conn: Conn, c: Completed) -> tuple[str, str, int]:
    k = c.last_seq // 2
    conn.execute("UPDATE striatum.events SET seq = -1 WHERE repo_id = %s AND seq = %s",
                 (c.repo_id, k))
    conn.execute("UPDATE striatum.events SET seq = %s WHERE repo_id = %s AND seq = %s",
                 (k, c.repo_id, k + 1))
    conn.execute("UPDATE striatum.events SET seq = %s WHERE repo_id = %s AND seq = -1",
                 (k + 1, c.repo_id))
    return "chain", "events", k


def insert_forged_row(conn: Conn, c: Completed) -> tuple[str, str, int]:
    """A row in the middle whose own hash is right: the row after it no longer links."""
    k = c.last_seq // 2
    kind, payload, run_id = forged_payload(conn, c.repo_id, k - 1,
                                           "2000-01-01T00:00:00.000000+00:00")
    _, _, job_id, _, _, _, previous = event(conn, c.repo_id, k - 1)
    conn.execute("UPDATE striatum.events SET seq = -seq WHERE repo_id = %s AND seq >= %s",
                 (c.repo_id, k))
    conn.execute("UPDATE striatum.events SET seq = 1 - seq WHERE repo_id = %s AND seq < 0",
                 (c.repo_id,))
    conn.execute("INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, payload, "
                 "previous_hash, row_hash, created_at) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::timestamptz)",
                 (c.repo_id, k, run_id, job_id, kind, payload, previous,
                  row_hash(previous, payload), "2000-01-01T00:00:00.000000+00:00"))
    write_state_columns(conn, c.repo_id, k)
    set_head(conn, c.repo_id, c.last_seq + 1)
    return "chain", "events", k + 1


def duplicate_last_row(conn: Conn, c: Completed) -> tuple[str, str, int]:
    conn.execute("INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, payload, "
                 "previous_hash, row_hash) SELECT repo_id, seq + 1, run_id, job_id, type, "
                 "payload, previous_hash, row_hash FROM striatum.events "
                 "WHERE repo_id = %s AND seq = %s", (c.repo_id, c.last_seq))
    write_state_columns(conn, c.repo_id, c.last_seq + 1)
    return "chain", "events", c.last_seq + 1


FORGED_AT = "2099-01-01T00:00:00.000000+00:00"


def append_forged(conn: Conn, c: Completed, run_id: str, job_id: str, kind: str,
                  payload: str) -> None:
    """Append a correctly chained event after the last one, and move the head to it."""
    previous = event(conn, c.repo_id, c.last_seq)[6]
    conn.execute("INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, payload, "
                 "previous_hash, row_hash, created_at) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::timestamptz)",
                 (c.repo_id, c.last_seq + 1, run_id, job_id, kind, payload, previous,
                  row_hash(previous, payload), FORGED_AT))
    write_state_columns(conn, c.repo_id, c.last_seq + 1)
    set_head(conn, c.repo_id, c.last_seq + 1)


def append_illegal_transition(conn: Conn, c: Completed) -> tuple[str, str, int]:
    """A correctly chained event at the tail that the state machine forbids."""
    kind, payload, run_id = forged_payload(conn, c.repo_id, c.last_seq - 1, FORGED_AT)
    assert kind == "job.complete"  # so the forgery completes apply a second time
    append_forged(conn, c, run_id, "apply", kind, payload)
    return "replay", "events", -1


def rewrite_anchored_row(conn: Conn, c: Completed) -> tuple[str, str, int]:
    """Re-hash the run's last event after an edit (its time, with created_at to match),
    and fix the head: only the manifest knows."""
    at = "2000-01-01T00:00:00.000000+00:00"
    kind, payload, _ = forged_payload(conn, c.repo_id, c.last_seq, at)
    assert kind == "run.complete"
    previous = event(conn, c.repo_id, c.last_seq)[5]
    conn.execute("UPDATE striatum.events SET payload = %s, row_hash = %s, "
                 "created_at = %s::timestamptz WHERE repo_id = %s AND seq = %s",
                 (payload, row_hash(previous, payload), at, c.repo_id, c.last_seq))
    set_head(conn, c.repo_id, c.last_seq)
    return "anchors", "events", c.last_seq


def edit_audit_row(conn: Conn, c: Completed) -> tuple[str, str, int]:
    conn.execute("UPDATE striatum.audit_log SET outcome = 'conflict' WHERE seq = 3")
    return "chain", "audit_log", 3


def delete_audit_tail(conn: Conn, c: Completed) -> tuple[str, str, int]:
    conn.execute("DELETE FROM striatum.audit_log WHERE seq = %s", (c.audit_rows,))
    return "chain", "audit_log", c.audit_rows


def truncate_tail(k: int | None) -> Tamper:
    """Delete the last k events (None: all but the first), fix the head and the projections,
    so the database agrees with itself and only the manifest can tell."""

    def tamper(conn: Conn, c: Completed) -> tuple[str, str, int]:
        keep = 1 if k is None else c.last_seq - k
        conn.execute("DELETE FROM striatum.events WHERE repo_id = %s AND seq > %s",
                     (c.repo_id, keep))
        set_head(conn, c.repo_id, keep)
        rewind_projections(conn, c.run_id)
        return "anchors", "events", c.last_seq

    tamper.__name__ = f"truncate_tail_{'all_but_one' if k is None else k}"
    return tamper


TAMPERS: list[Tamper] = [
    edit_payload, edit_row_hash, edit_type, edit_job_column, delete_middle_row, swap_two_rows,
    insert_forged_row, duplicate_last_row, append_illegal_transition, rewrite_anchored_row,
    edit_audit_row, delete_audit_tail, truncate_tail(1), truncate_tail(3), truncate_tail(None),
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda t: t.__name__)
def test_tampering_is_found_at_the_first_bad_row(store: Store, completed: Completed,
                                                 tamper: Tamper) -> None:
    assert doctor(store, str(completed.repo)).ok
    with tampering(completed.dsn) as conn:
        check, table, seq = tamper(conn, completed)
    report = doctor(store, str(completed.repo))
    assert not report.ok
    first = first_failure(report)
    assert (first.check, first.table) == (check, table), first.to_json()
    if seq >= 0:
        assert first.seq == seq, first.to_json()
        assert str(seq) in first.message
    found = checks(report)
    assert all(f.ok for f in found["guards"] if "triggers" in f.message)  # back on
    if check == "anchors":  # the database agrees with itself; only the repository can tell
        assert all(f.ok for f in found["chain"] + found["replay"]), first.to_json()


def test_a_truncated_tail_without_the_repo_passes_so_the_anchor_is_what_finds_it(
        store: Store, completed: Completed) -> None:
    with tampering(completed.dsn) as conn:
        truncate_tail(3)(conn, completed)
    assert doctor(store).ok  # proves the tamper left the database self-consistent
    assert not doctor(store, str(completed.repo)).ok


# -- anchors ---------------------------------------------------------------------------------

def test_deleted_manifests_leave_the_chain_unanchored_and_fail(
        store: Store, completed: Completed) -> None:
    manifests = list(completed.repo.glob("striatum/runs/*/manifest.json"))
    assert len(manifests) == 1
    for manifest in manifests:
        manifest.unlink()
    report = doctor(store, str(completed.repo))
    assert not report.ok
    anchors = checks(report)["anchors"]
    assert any(not f.ok and "no manifest" in f.message for f in anchors)
    messages = [f.message for f in anchors]
    assert any(m.startswith("unanchored:") for m in messages), messages
    assert not any("match the chain" in m for m in messages), messages


def test_a_run_that_has_not_ended_is_reported_unanchored_not_matched(
        store: Store, repo: Path) -> None:
    start_run(store, example("code-change"), repo)
    report = doctor(store, str(repo))
    anchors = checks(report)["anchors"]
    assert [f.message.split(":")[0] for f in anchors] == ["unanchored"]
    assert "removed tail could not be seen" in anchors[0].message
    assert not any("match" in f.message for f in anchors)


def test_an_unreadable_manifest_is_a_failure(store: Store, completed: Completed) -> None:
    manifest = next(completed.repo.glob("striatum/runs/*/manifest.json"))
    manifest.write_text("{not json", encoding="utf-8")
    first = first_failure(doctor(store, str(completed.repo)))
    assert first.check == "anchors" and "not a readable manifest" in first.message


# -- guards ----------------------------------------------------------------------------------

@pytest.mark.parametrize("statement", [
    "DROP TRIGGER events_append_only ON striatum.events",
    "DROP TRIGGER events_no_truncate ON striatum.events",
    "DROP TRIGGER audit_log_append_only ON striatum.audit_log",
    "DROP TRIGGER audit_log_no_truncate ON striatum.audit_log",
    "ALTER TABLE striatum.events DISABLE TRIGGER events_append_only",
    "GRANT UPDATE ON striatum.events TO striatum_runtime",
    "GRANT DELETE ON striatum.audit_log TO striatum_runtime",
])
def test_a_weakened_guard_fails_the_guards_check(store: Store, completed: Completed,
                                                 statement: str) -> None:
    with owner_connection(completed.dsn) as conn:
        conn.execute(statement)
    report = doctor(store, str(completed.repo))
    assert not report.ok
    first = first_failure(report)
    assert first.check == "guards", first.to_json()
    assert all(f.ok for f in checks(report)["chain"] + checks(report)["replay"])


# -- projections -----------------------------------------------------------------------------

@pytest.mark.parametrize(("statement", "table"), [
    ("UPDATE striatum.jobs SET status = 'failed' WHERE job_id = 'apply'", "jobs"),
    ("UPDATE striatum.jobs SET iteration = 0 WHERE job_id = 'draft'", "jobs"),
    ("UPDATE striatum.jobs SET fence = fence + 1 WHERE job_id = 'check'", "jobs"),
    ("UPDATE striatum.runs SET status = 'running'", "runs"),
    ("UPDATE striatum.runs SET blocked_on = 'check'", "runs"),
    ("UPDATE striatum.runs SET unsettled = unsettled + 1", "runs"),
])
def test_a_projection_edited_without_an_event_fails_the_replay(
        store: Store, completed: Completed, statement: str, table: str) -> None:
    with owner_connection(completed.dsn) as conn:
        conn.execute(statement)
    report = doctor(store, str(completed.repo))
    first = first_failure(report)
    assert (first.check, first.table) == ("replay", table), first.to_json()
    assert completed.run_id in first.message
    assert all(f.ok for f in checks(report)["chain"])


def test_a_job_row_without_events_fails_the_replay(store: Store, completed: Completed) -> None:
    with owner_connection(completed.dsn) as conn:
        conn.execute("INSERT INTO striatum.jobs (run_id, job_id, position, kind, lane, "
                     "lane_kind, status, max_attempts) VALUES (%s, 'ghost', 9, 'task', "
                     "'coder', 'command', 'pending', 3)", (completed.run_id,))
    first = first_failure(doctor(store, str(completed.repo)))
    assert (first.check, first.table) == ("replay", "jobs")
    assert "ghost" in first.message


# -- a human's decision outside the plan ---------------------------------------------------

def test_doctor_accepts_a_run_a_human_granted_an_extra_revision(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """`run resume --decision revise` is a recorded decision outside the plan (user guide,
    run semantics 5): the record is intact, so doctor must not call it a broken bound."""
    run_id = start_run(store, example("code-change"), repo)
    agent = Agent(store, run_id, tmp_path,
                  verdict=scripted({"check": ["needs_revision", "needs_revision"]}))
    assert agent.drive().run.status == "blocked"
    runs.resume(store, run_id, "revise", "one more pass, on me")
    view = agent.drive(bounded=False)
    assert view.run.status == "completed"
    assert view.executions > view.run.worst_case  # the human's extra pass
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def test_doctor_reports_executions_beyond_the_bound_without_a_human_grant(
        store: Store, completed: Completed) -> None:
    """The bound check itself: executions beyond worst_case, with every event consistent."""
    with owner_connection(completed.dsn) as conn:
        conn.execute("UPDATE striatum.runs SET worst_case = 4 WHERE id = %s",
                     (completed.run_id,))
    report = doctor(store, str(completed.repo))
    first = first_failure(report)
    assert first.check == "bound" and "exceed" in first.message


# -- payloads the server cannot parse, and payloads that are not canonical -------------------

def append_events(conn: Conn, c: Completed, payloads: list[str]) -> int:
    """Chain ``payloads`` after the last event with correct hashes, and move the head: only
    their contents are wrong. Returns the seq of the first."""
    _, run_id, _, _, _, _, previous = event(conn, c.repo_id, c.last_seq)
    for i, payload in enumerate(payloads, start=1):
        digest = row_hash(previous, payload)
        conn.execute("INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, payload, "
                     "previous_hash, row_hash) VALUES (%s, %s, %s, NULL, 'run.complete', %s, "
                     "%s, %s)", (c.repo_id, c.last_seq + i, run_id, payload, previous, digest))
        previous = digest
    set_head(conn, c.repo_id, c.last_seq + len(payloads))
    return c.last_seq + 1


@pytest.mark.parametrize("payloads", [
    ["not json at all"], ["[1, 2, 3]"], ['"a string"'], ['{"at": "\\u0000"}'],
    ["{broken", "[]"],
], ids=["text", "array", "scalar", "nul", "two"])
def test_a_payload_that_is_not_a_json_object_is_found_at_its_seq(
        store: Store, completed: Completed, payloads: list[str]) -> None:
    with tampering(completed.dsn) as conn:
        seq = append_events(conn, completed, payloads)
    report = doctor(store)
    first = first_failure(report)
    assert (first.check, first.table, first.seq) == ("chain", "events", seq), first.to_json()
    assert f"event seq {seq}: payload is not a JSON object" in first.message
    assert report.events == completed.last_seq + len(payloads)


def test_an_earlier_problem_comes_before_an_unparsable_payload(
        store: Store, completed: Completed) -> None:
    k = completed.last_seq // 2
    with tampering(completed.dsn) as conn:
        append_events(conn, completed, ["not json"])
        conn.execute("UPDATE striatum.events SET row_hash = repeat('b', 64) "
                     "WHERE repo_id = %s AND seq = %s", (completed.repo_id, k))
    first = first_failure(doctor(store))
    assert (first.check, first.seq) == ("chain", k), first.to_json()
    assert "row_hash does not match" in first.message


def test_an_unparsable_audit_payload_is_found_at_its_seq(
        store: Store, completed: Completed) -> None:
    seq = completed.audit_rows + 1
    with tampering(completed.dsn) as conn:
        previous = conn.execute("SELECT row_hash FROM striatum.audit_log WHERE seq = %s",
                                (completed.audit_rows,)).fetchone()
        assert previous is not None
        conn.execute("INSERT INTO striatum.audit_log (seq, actor, verb, args_digest, outcome, "
                     "payload, previous_hash, row_hash) VALUES (%s, 'x', 'y', 'z', 'ok', "
                     "'nope', %s, %s)", (seq, previous[0], row_hash(previous[0], "nope")))
        conn.execute("UPDATE striatum.chain_heads SET seq = %s, hash = %s WHERE chain = 'audit'",
                     (seq, row_hash(previous[0], "nope")))
    first = first_failure(doctor(store))
    assert (first.check, first.table, first.seq) == ("chain", "audit_log", seq), first.to_json()
    assert "payload is not a JSON object" in first.message


def test_only_strict_requires_canonical_payloads(store: Store, completed: Completed) -> None:
    """The last event re-encoded (same content, other bytes) and re-hashed, the head moved:
    the hash binds the new bytes, so only --strict (or the manifest) can tell."""
    with tampering(completed.dsn) as conn:
        _, _, _, _, payload, previous, _ = event(conn, completed.repo_id, completed.last_seq)
        loose = json.dumps(json.loads(payload), indent=1)
        conn.execute("UPDATE striatum.events SET payload = %s, row_hash = %s "
                     "WHERE repo_id = %s AND seq = %s",
                     (loose, row_hash(previous, loose), completed.repo_id, completed.last_seq))
        set_head(conn, completed.repo_id, completed.last_seq)
    assert doctor(store).ok
    first = first_failure(doctor(store, strict=True))
    assert (first.check, first.table, first.seq) == ("chain", "events", completed.last_seq)
    assert "payload is not canonical JSON" in first.message
    assert not doctor(store, str(completed.repo)).ok  # the manifest anchored the old bytes


def test_the_cli_checks_canonical_form_only_with_strict(store: Store,
                                                       completed: Completed) -> None:
    with tampering(completed.dsn) as conn:
        _, _, _, _, payload, previous, _ = event(conn, completed.repo_id, completed.last_seq)
        loose = " " + payload
        conn.execute("UPDATE striatum.events SET payload = %s, row_hash = %s "
                     "WHERE repo_id = %s AND seq = %s",
                     (loose, row_hash(previous, loose), completed.repo_id, completed.last_seq))
        set_head(conn, completed.repo_id, completed.last_seq)

    def run(*args: str) -> tuple[int, dict[str, Any]]:
        done = subprocess.run([sys.executable, "-m", "striatum", "--dsn", completed.dsn,
                               "--repo", str(completed.repo), "doctor", "--no-anchors",
                               "--json", *args], capture_output=True, text=True, timeout=120)
        assert "Traceback" not in done.stderr, done.stderr
        return done.returncode, json.loads(done.stdout)

    code, report = run()
    assert (code, report["ok"]) == (0, True), report
    code, report = run("--strict")
    failed = [f for f in report["findings"] if not f["ok"]]
    assert code == 2 and failed[0]["seq"] == completed.last_seq, report
    assert "not canonical JSON" in failed[0]["message"]


def test_strict_passes_a_clean_record(store: Store, completed: Completed) -> None:
    report = doctor(store, str(completed.repo), strict=True)
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def test_a_step_of_a_job_the_run_never_prepared_fails_the_replay(
        store: Store, completed: Completed) -> None:
    with tampering(completed.dsn) as conn:
        kind, payload, run_id = forged_payload(conn, completed.repo_id, completed.last_seq - 1,
                                               FORGED_AT)
        body = json.loads(payload)
        body["job"] = "ghost"
        append_forged(conn, completed, run_id, "ghost", kind,
                      canonical_json(body).decode("utf-8"))
    first = first_failure(doctor(store))
    assert (first.check, first.table, first.seq) == ("replay", "events", completed.last_seq + 1)
    assert f"job {run_id}/ghost changes before it was prepared" in first.message


def test_doctor_reads_one_snapshot_and_leaves_the_connection_idle(
        store: Store, completed: Completed) -> None:
    from psycopg import pq

    assert doctor(store).ok
    assert store._conn.info.transaction_status == pq.TransactionStatus.IDLE
    store._conn.execute("SELECT 1")  # still usable, and not read-only for what follows
    store.transaction(lambda cur: append_audit(cur, actor="test", verb="after doctor",
                                               args={}, outcome="ok"))


def test_event_times_written_and_checked_in_other_time_zones_agree(
        dsn: str, repo: Path, tmp_path: Path) -> None:
    """Events are stamped in UTC whatever the writer's session zone, and doctor compares
    instants whatever its own: a record written from New York checks out in Kolkata."""
    writer = Store.connect(dsn)
    try:
        writer._conn.execute("SET TIME ZONE 'America/New_York'")
        run_id = start_run(writer, example("code-change"), repo)
        Agent(writer, run_id, tmp_path).drive()
    finally:
        writer.close()
    checker = Store.connect(dsn)
    try:
        checker._conn.execute("SET TIME ZONE 'Asia/Kolkata'")
        report = doctor(checker, str(repo), strict=True)
        assert report.ok, report.to_json()
        at = json.loads(checker._conn.execute(
            "SELECT payload FROM striatum.events ORDER BY seq DESC LIMIT 1").fetchone()[0])["at"]
        assert at.endswith("+00:00")
    finally:
        checker.close()


def _edit_anchor(manifest: Path) -> None:
    document = json.loads(manifest.read_text(encoding="utf-8"))
    document["chain"]["hash"] = "f" * 64
    manifest.write_text(json.dumps(document), encoding="utf-8")


def test_an_edited_manifest_is_not_called_a_rewritten_chain(
        store: Store, completed: Completed) -> None:
    """One manifest alone cannot tell its own edit from a rewritten chain: doctor says
    both, and does not blame the chain."""
    _edit_anchor(next(completed.repo.glob("striatum/runs/*/manifest.json")))
    first = first_failure(doctor(store, str(completed.repo)))
    assert first.check == "anchors", first
    assert "manifest was edited" in first.message, first.message
    assert "or the chain was rewritten" in first.message, first.message


def test_a_manifest_contradicted_by_a_later_anchor_is_the_edited_one(
        store: Store, completed: Completed, tmp_path: Path) -> None:
    later = start_run(store, example("minimal"), completed.repo)
    assert Agent(store, later, tmp_path).drive().run.status == "completed"
    _edit_anchor(completed.repo / "striatum" / "runs" / completed.run_id / "manifest.json")
    report = doctor(store, str(completed.repo))
    failed = [f for f in report.findings if not f.ok]
    assert len(failed) == 1, [f.to_json() for f in report.findings]
    assert "manifest was edited" in failed[0].message, failed[0].message
    assert "rewritten" not in failed[0].message, failed[0].message
