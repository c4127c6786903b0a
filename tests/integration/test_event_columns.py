"""Each event carries the state it leaves its run or job in as typed columns (migration
0013), which doctor's replay reads instead of the payloads: they are written with the
event on every path (one event, a batch, the claim and completion statements), the
database refuses a row whose columns disagree with its payload, and once that proof is
lifted doctor checks and names such a row itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from striatum.runtime import leases, runs
from striatum.runtime.completion import Completed
from striatum.runtime.config import open_store
from striatum.runtime.doctor import Report, columns_proven, columns_unproven, doctor
from striatum.runtime.store import Store
from striatum.server.registry import VERBS, Session, invoke

from .helpers import counted_slices, owner_connection, unproven
from .test_attempt_starts import operator_review
from .test_batches import WIDE, wide_workflow
from .worker_helpers import events_of, rows, start_run

STATE = ("status", "iteration", "attempt", "executions", "revisions_used", "fence",
         "lease_owner", "chosen", "verdict", "blocked_on")


def columns_and_payloads(dsn: str, run_id: str) -> list[tuple[int, str, tuple[Any, ...],
                                                             tuple[Any, ...]]]:
    """(seq, type, the row's state columns, the same read from its payload) per event."""
    with owner_connection(dsn) as conn:
        rows = conn.execute(
            "SELECT seq, type, payload, status, iteration, attempt, executions, "
            "revisions_used, fence, lease_owner, chosen, verdict, blocked_on "
            "FROM striatum.events WHERE run_id = %s ORDER BY seq", (run_id,)).fetchall()
    out = []
    for seq, kind, payload, *columns in rows:
        state = json.loads(payload)["state"]
        out.append((seq, kind, tuple(columns), tuple(state.get(name) for name in STATE)))
    return out


def test_every_write_path_fills_the_state_columns_from_the_payload(
        store: Store, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    batched = counted_slices(monkeypatch)
    run_id = runs.prepare(store, wide_workflow(tmp_path / "wf"), str(repo), overrides={})
    runs.start(store, run_id)  # readies 70 jobs: their events go in batches
    ended = []
    for _ in range(WIDE // 3 + 1):  # claim_job, then complete_job in one statement
        claim = leases.claim(store, run_id, owner="agent")
        assert claim is not None
        ended.append(leases.complete(store, run_id, claim.job, claim.token))
    runs.cancel(store, run_id, "enough")  # one event at a time through append_event
    assert batched and Completed in {type(e) for e in ended}

    found = columns_and_payloads(dsn, run_id)
    kinds = {kind for _, kind, _, _ in found}
    assert {"run.prepare", "job.ready", "job.claim", "job.complete", "run.cancel"} <= kinds
    wrong = [(seq, kind, columns, state) for seq, kind, columns, state in found
             if columns != state]
    assert not wrong, wrong[:3]
    assert all(columns[0] is not None for _, _, columns, _ in found)
    assert columns_proven(store)
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def last_event(dsn: str, run_id: str) -> tuple[int, int]:
    with owner_connection(dsn) as conn:
        row = conn.execute("SELECT repo_id, max(seq) FROM striatum.events WHERE run_id = %s "
                           "GROUP BY repo_id", (run_id,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def finished_run(store: Store, tmp_path: Path) -> tuple[str, Path]:
    repo = tmp_path / "repo"
    repo.mkdir()
    run_id = runs.prepare(store, wide_workflow(tmp_path / "wf"), str(repo), overrides={})
    runs.start(store, run_id)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    leases.complete(store, run_id, claim.job, claim.token)
    return run_id, repo


def test_the_database_refuses_an_event_whose_columns_disagree_with_its_payload(
        store: Store, dsn: str, tmp_path: Path) -> None:
    run_id, _ = finished_run(store, tmp_path)
    repo_id, seq = last_event(dsn, run_id)
    with owner_connection(dsn) as conn:
        conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("UPDATE striatum.events SET status = 'failed' "
                         "WHERE repo_id = %s AND seq = %s", (repo_id, seq))
        with pytest.raises(psycopg.errors.CheckViolation):  # a copy without its columns
            conn.execute("INSERT INTO striatum.events (repo_id, seq, run_id, job_id, type, "
                         "payload, previous_hash, row_hash) SELECT repo_id, seq + 1, run_id, "
                         "job_id, type, payload, previous_hash, row_hash FROM striatum.events "
                         "WHERE repo_id = %s AND seq = %s", (repo_id, seq))
        conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")


def failures(report: Report) -> list[dict[str, Any]]:
    return [f.to_json() for f in report.findings if not f.ok]


def test_a_row_whose_columns_disagree_with_its_payload_is_named_by_the_default_doctor(
        store: Store, dsn: str, tmp_path: Path) -> None:
    run_id, _ = finished_run(store, tmp_path)
    repo_id, seq = last_event(dsn, run_id)
    with owner_connection(dsn) as conn, unproven(conn):
        conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
        conn.execute("UPDATE striatum.events SET status = 'ready', fence = 0 "
                     "WHERE repo_id = %s AND seq = %s", (repo_id, seq))
        conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")
    assert not columns_proven(store)  # the rows no longer all agree: left NOT VALID
    report = doctor(store)
    failed = failures(report)
    assert (failed[0]["check"], failed[0]["table"], failed[0]["seq"]) == (
        "chain", "events", seq), failed
    assert "columns run/job/type/state disagree with the hashed payload" in failed[0]["message"]
    assert any(f["check"] == "guards" and "events_columns_hashed is not in force"
               in f["message"] for f in failed), failed


def test_a_replaced_proof_function_proves_nothing(
        store: Store, dsn: str, tmp_path: Path) -> None:
    """The constraint still validated, but its function made to agree with anything: doctor
    no longer takes the columns on trust, and says so."""
    finished_run(store, tmp_path)
    assert columns_proven(store)
    with owner_connection(dsn) as conn:
        definition = conn.execute(
            "SELECT pg_get_functiondef('striatum.event_agrees'::regproc)").fetchone()
        assert definition is not None
        conn.execute(str(definition[0]).replace("RETURN (", "RETURN true OR (", 1).encode())
    assert columns_unproven(store) == "striatum.event_agrees's body changed"
    report = doctor(store)
    assert any("events_columns_hashed is not in force (striatum.event_agrees's body changed)"
               in f["message"] for f in failures(report)), failures(report)
    assert all(f.ok for f in report.findings if f.check in ("chain", "replay"))


AGREES = ("striatum.event_agrees(text, text, text, text, timestamptz, text, integer, integer, "
          "integer, integer, bigint, text, text, text, text)")


def forged_columns(store: Store, dsn: str, tmp_path: Path,
                   lift: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """The owner runs ``lift`` (statements that leave the constraint validated and its
    function's source as shipped), then rewrites the last event's verdict with the job's
    row to match, the payload and hashes left alone: (that seq, doctor's failures)."""
    run_id, _ = finished_run(store, tmp_path)
    repo_id, seq = last_event(dsn, run_id)
    with owner_connection(dsn) as conn:
        for statement in lift:
            conn.execute(statement.encode())
        conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
        try:
            job = conn.execute("UPDATE striatum.events SET verdict = 'forged' "
                               "WHERE repo_id = %s AND seq = %s AND job_id IS NOT NULL "
                               "RETURNING job_id", (repo_id, seq)).fetchone()
            assert job is not None
            conn.execute("UPDATE striatum.jobs SET verdict = 'forged' "
                         "WHERE run_id = %s AND job_id = %s", (run_id, job[0]))
        finally:
            conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")
    return seq, failures(doctor(store))


def test_a_strict_proof_function_proves_nothing(
        store: Store, dsn: str, tmp_path: Path) -> None:
    """STRICT: a NULL argument (blocked_on on every job event) makes the function NULL. The
    constraint reads NULL as a refusal, so no row can be forged through it; still, it is not
    the function migration 0013 shipped, and doctor says so and checks every row itself."""
    with pytest.raises(psycopg.errors.CheckViolation):
        forged_columns(store, dsn, tmp_path, [f"ALTER FUNCTION {AGREES} STRICT"])
    assert columns_unproven(store) == "striatum.event_agrees is STRICT"
    failed = failures(doctor(store))
    assert [f["check"] for f in failed] == ["guards"], failed
    assert "events_columns_hashed is not in force (striatum.event_agrees is STRICT)" in (
        failed[0]["message"])


def test_an_overload_carrying_the_shipped_body_does_not_stand_in_for_the_called_function(
        store: Store, dsn: str, tmp_path: Path) -> None:
    """The called function made to agree with anything, and an overload (one more
    parameter) given the shipped source: doctor follows the constraint to the function it
    calls, and sees there are two."""
    with owner_connection(dsn) as conn:
        row = conn.execute(f"SELECT pg_get_functiondef('{AGREES}'::regprocedure)").fetchone()
        assert row is not None
    shipped = str(row[0])
    overload = shipped.replace("p_blocked_on text)", "p_blocked_on text, p_extra integer)", 1)
    accepting = shipped.replace("RETURN (", "RETURN true OR (", 1)
    assert overload != shipped and accepting != shipped
    seq, failed = forged_columns(store, dsn, tmp_path, [overload, accepting])
    assert columns_unproven(store) == ("2 functions are named striatum.event_agrees; "
                                       "striatum.event_agrees's body changed")
    assert (failed[0]["check"], failed[0]["seq"]) == ("chain", seq), failed
    assert any(f["check"] == "guards" and "2 functions are named" in f["message"]
               for f in failed), failed


def test_the_proof_is_recognised_with_the_schema_on_the_search_path(
        store: Store, dsn: str, tmp_path: Path) -> None:
    """With `striatum` on the search path PostgreSQL prints the constraint's function
    unqualified; doctor's own search path keeps an intact database proven."""
    _, repo = finished_run(store, tmp_path)
    with owner_connection(dsn) as conn:
        conn.execute(f'ALTER DATABASE "{conn.info.dbname}" SET search_path = striatum, public')
    on_path = Store.connect(dsn)
    try:
        assert on_path._conn.execute("SHOW search_path").fetchone() == ("striatum, public",)
        report = doctor(on_path, str(repo))
        assert report.ok, failures(report)
        assert any(f.check == "guards" and f.ok and "events_columns_hashed refuses" in f.message
                   for f in report.findings)
    finally:
        on_path.close()


def test_a_malformed_count_in_a_prepared_job_is_named_not_a_failed_query(
        store: Store, dsn: str, tmp_path: Path) -> None:
    """The constraint does not cover a payload's data: an owner's "iteration": "x" in
    run.prepare must not stop the proven doctor, which names the edited row."""
    run_id, _ = finished_run(store, tmp_path)
    with owner_connection(dsn) as conn:
        conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
        edited = conn.execute(
            "UPDATE striatum.events SET payload = jsonb_set(payload::jsonb, ARRAY['data', "
            "'jobs', (SELECT min(k) FROM jsonb_object_keys(payload::jsonb -> 'data' -> 'jobs') "
            "k), 'iteration'], '\"x\"')::text WHERE run_id = %s AND type = 'run.prepare' "
            "RETURNING seq", (run_id,)).fetchone()
        conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")
    assert edited is not None
    assert columns_proven(store)
    failed = failures(doctor(store))
    assert (failed[0]["check"], failed[0]["seq"]) == ("chain", edited[0]), failed
    assert "row_hash does not match its payload" in failed[0]["message"]


def test_a_nul_in_an_agents_text_is_recorded_as_its_escape(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    """A text column cannot hold a NUL, nor jsonb (through which every event's columns are
    read as it is written) its escape: an agent's text carrying one (a tool call's
    arguments, a verdict's reason and findings) is recorded with ``\\u0000`` in its place,
    and the verb goes through."""
    run_id = start_run(store, operator_review(tmp_path / "flow"), repo)
    session = Session(str(repo), lambda: open_store(dsn))

    def call(verb: str, **params: Any) -> Any:
        return invoke(VERBS[verb], params, session)

    try:
        draft = call("job.claim", run=run_id, owner="codex\x00session", model="gpt\x005")
        written = tmp_path / "draft.md"
        written.write_text("# the draft\n", encoding="utf-8")
        call("job.publish", run=run_id, job="draft", lease=draft["lease"],
             artifact=str(written), name="draft.md")
        call("job.complete", run=run_id, job="draft", lease=draft["lease"])
        check = call("job.claim", run=run_id, owner="claude-session")
        call("job.verdict", run=run_id, job="check", lease=check["lease"], outcome="accept",
             reason="fine\x00ly", findings=["F\x001"])
    finally:
        session.close()
    assert runs.status(store, run_id).run.status == "completed"
    start = events_of(store, run_id, job_id="draft", kind="attempt.start")[0]
    assert (start["payload"]["data"]["owner"], start["payload"]["data"]["model"]) == (
        "codex\\u0000session", "gpt\\u00005")
    assert rows(store, "SELECT reason FROM striatum.verdicts WHERE run_id = %s",
                run_id) == [{"reason": "fine\\u0000ly"}]
    report = doctor(store, str(repo), strict=True)
    assert report.ok, report.to_json()
