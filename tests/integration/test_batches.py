"""Transitions that touch many jobs write them in batches (``runtime.batches``): the
record they leave is the one the same transitions leave written a row at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from striatum.runtime import batches, leases, runs
from striatum.runtime.doctor import doctor
from striatum.runtime.store import Store

from .helpers import counted_slices, owner_connection, write_workflow

WIDE = 3 * 70  # every sweep below touches more than batches.MANY jobs


def wide_workflow(directory: Path) -> str:
    """70 jobs ready at start, and a root whose completion readies 140 more."""
    jobs: list[dict[str, Any]] = [{"id": f"a{i:03d}", "lane": "w", "prompt": {"text": "a"}}
                                  for i in range(WIDE // 3)]
    jobs.append({"id": "root", "lane": "w", "prompt": {"text": "root"}})
    jobs += [{"id": f"t{i:03d}", "lane": "w", "needs": ["root"], "prompt": {"text": "t"}}
             for i in range(2 * WIDE // 3)]
    return write_workflow(directory, {"name": "wide", "lanes": {"w": {"kind": "operator"}},
                                      "jobs": jobs})


def work(store: Store, workflow: str, repo: Path) -> str:
    """Start a run (a sweep), complete its root (readying 140), hold one job, cancel (a
    sweep)."""
    run_id = runs.prepare(store, workflow, str(repo), overrides={})
    runs.start(store, run_id)
    for _ in range(WIDE // 3 + 1):  # the a's come first in file order, then the root
        claim = leases.claim(store, run_id, owner="agent")
        assert claim is not None
        leases.complete(store, run_id, claim.job, claim.token)
    assert leases.claim(store, run_id, owner="agent") is not None  # one lease held
    runs.cancel(store, run_id, "enough")
    return run_id


def record(dsn: str, run_id: str) -> tuple[list[Any], list[Any]]:
    """The run's events as the chain holds them (less their time, run and repository),
    and its jobs' rows (less what differs between two runs: ids, times, lease secrets)."""
    with owner_connection(dsn) as conn:
        events = []
        for kind, job, payload, seq in conn.execute(
                "SELECT type, job_id, payload, seq FROM striatum.events WHERE run_id = %s "
                "ORDER BY seq", (run_id,)):
            body = json.loads(payload)
            body["data"].pop("repo", None)  # run.prepare names its repository
            events.append((seq, kind, job, body["state"], body["data"]))
        jobs = conn.execute(
            "SELECT job_id, position, status, iteration, attempt, executions, fence, "
            "lease_owner, lease_token IS NULL, lease_expires_at IS NULL, "
            "heartbeat_at IS NULL, chosen, verdict, reason "
            "FROM striatum.jobs WHERE run_id = %s ORDER BY position", (run_id,)).fetchall()
    return events, jobs


def test_batched_sweeps_leave_the_record_rows_one_by_one_leave(
        store: Store, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    workflow = wide_workflow(tmp_path / "wf")
    batched_repo, single_repo = tmp_path / "batched", tmp_path / "single"
    batched_repo.mkdir()
    single_repo.mkdir()
    sliced = counted_slices(monkeypatch)
    batched = work(store, workflow, batched_repo)
    # The jobs inserted, then the jobs and the events of the start and of the cancel (the
    # root's completion is one statement of its own, complete_job, in either case).
    assert sliced == [WIDE + 1, WIDE // 3 + 1, WIDE // 3 + 2, 2 * WIDE // 3,
                      2 * WIDE // 3 + 1], sliced
    monkeypatch.setattr(batches, "MANY", 10**9)  # every row its own statement
    single = work(store, workflow, single_repo)

    got, want = record(dsn, batched), record(dsn, single)
    assert got == want
    assert len(got[0]) > 2 * WIDE  # the sweeps happened
    assert runs.status(store, batched).run.status == "cancelled"
    for repo in (batched_repo, single_repo):
        report = doctor(store, str(repo))
        assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def test_a_batch_larger_than_one_statement_is_split_and_chained(
        store: Store, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batches, "BATCH", 7)  # many statements for each sweep
    repo = tmp_path / "repo"
    repo.mkdir()
    run_id = work(store, wide_workflow(tmp_path / "wf"), repo)
    events, jobs = record(dsn, run_id)
    assert [seq for seq, *_ in events] == list(range(1, len(events) + 1))
    assert sum(status == "cancelled" for _, _, status, *_ in jobs) == 2 * WIDE // 3
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def test_records_are_built_by_name_whatever_the_order_of_the_columns(
        store: Store, tmp_path: Path) -> None:
    from striatum.runtime.records import JobRow, record_row

    repo = tmp_path / "repo"
    repo.mkdir()
    run_id = work(store, wide_workflow(tmp_path / "wf"), repo)
    in_order = runs.status(store, run_id).jobs
    names = [field for field in JobRow.__dataclass_fields__][::-1]
    statement = sql.SQL("SELECT {} FROM striatum.job_records WHERE run_id = %s "
                        "ORDER BY position").format(sql.SQL(", ").join(map(sql.Identifier,
                                                                           names)))
    with store._conn.cursor(row_factory=record_row(JobRow)) as cur:
        cur.execute(statement, (run_id,), binary=True)
        reversed_columns = cur.fetchall()
    assert reversed_columns == in_order
    assert {job.status for job in in_order} == {"succeeded", "cancelled"}
