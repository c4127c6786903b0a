"""Scenario 5, chain contention: many processes append to one repository's chain and to the
global audit chain at once — most through the append path itself (one event and one audit
row per transaction, through ``append_events`` / ``append_audit``), one through real
transitions (runs prepared, claimed, published, completed in the same repository).

The chain must not fork: seq runs 1..n without a gap, each row follows the one before,
no two rows follow the same row, nothing is lost, and doctor passes. Retries are counted
(``Store.retries``) and must stay under the cap.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from striatum.runtime.store import MAX_RETRIES, Store

from .conftest import Procs, Record, assert_doctor_ok, one_value, wait_for

# One appender: waits for the start signal (a file), then appends COUNT events to the
# repository chain and COUNT rows to the audit chain, one transaction each, and prints
# what it appended and how often a transaction was retried.
APPENDER = """
import json, os, sys, time
from striatum.runtime.audit import Event, append_audit, append_events
from striatum.runtime.store import Store, fetch_one
dsn, repo_id, count, index, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:6]
store = Store.connect(dsn)
print(json.dumps({"ready": index}), flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
worst = 0
for i in range(count):
    before = store.retries
    store.transaction(lambda cur: append_events(cur, repo_id, [Event(
        "test.append", None, None, {}, {"proc": index, "i": i})], fetch_one(cur, "now")[0]))
    store.transaction(lambda cur: append_audit(cur, actor="p" + index, verb="append",
                                               args={"i": i}, outcome="ok"))
    worst = max(worst, store.retries - before)
print(json.dumps({"events": count, "audit": count, "retries": store.retries, "worst": worst}),
      flush=True)
store.close()
"""

# One driver: real runs in the same repository, worked to the end through the lease verbs.
DRIVER = """
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[5])
from tests.integration.helpers import Agent, example, scripted, start_run
from striatum.runtime.store import Store
dsn, repo, runs_wanted, go, root, work = (sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]),
                                          sys.argv[4], sys.argv[5], Path(sys.argv[6]))
store = Store.connect(dsn, actor="driver")
print(json.dumps({"ready": "driver"}), flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
events = 0
for n in range(runs_wanted):
    run_id = start_run(store, example("code-change"), repo)
    view = Agent(store, run_id, work, verdict=scripted({"check": ["needs_revision"]})).drive()
    assert view.run.status == "completed", view.to_json()
    events += store._conn.execute("SELECT count(*) FROM striatum.events WHERE run_id = %s",
                                 (run_id,)).fetchone()[0]
audit = store._conn.execute("SELECT count(*) FROM striatum.audit_log "
                            "WHERE actor = 'driver'").fetchone()[0]  # each change, audited
print(json.dumps({"events": events, "audit": audit, "retries": store.retries, "worst": 0}),
      flush=True)
store.close()
"""


def contend(dsn: str, store: Store, repo: Path, tmp_path: Path, procs: Procs, appenders: int,
            count: int, driven_runs: int) -> dict[str, Any]:
    # The repository and its chain exist first (a run prepared there makes them).
    from tests.integration.helpers import Agent, example, start_run

    first = start_run(store, example("minimal"), repo)
    Agent(store, first, tmp_path).drive()
    repo_id = int(one_value(store, "SELECT repo_id FROM striatum.runs WHERE id = %s", first))
    base_events = int(one_value(store, "SELECT count(*) FROM striatum.events"))
    base_audit = int(one_value(store, "SELECT count(*) FROM striatum.audit_log"))
    go = tmp_path / "go"
    root = str(Path(__file__).resolve().parents[2])
    work = tmp_path / "driver"
    work.mkdir()
    started_procs = [procs.start(f"appender{i}", [sys.executable, "-c", APPENDER, dsn,
                                                   str(repo_id), str(count), str(i), str(go)])
                     for i in range(appenders)]
    if driven_runs:
        started_procs.append(procs.start("driver", [sys.executable, "-c", DRIVER, dsn,
                                                    str(repo), str(driven_runs), str(go), root,
                                                    str(work)]))
    for proc in started_procs:
        wait_for(lambda proc=proc: proc.out().strip(), 60,
                 lambda proc=proc: f"{proc.name} to connect: {proc.err()[-2000:]}")
    started = time.monotonic()
    go.touch()
    reports = []
    for proc in started_procs:
        code = proc.wait(1800)
        assert code == 0, f"{proc.name} exited {code}:\n{proc.err()[-3000:]}"
        reports.append(json.loads(proc.out().strip().splitlines()[-1]))
    seconds = time.monotonic() - started

    appended = sum(r["events"] for r in reports)
    audited = sum(r["audit"] for r in reports)
    rows = store._conn.execute(
        "SELECT seq, previous_hash, row_hash FROM striatum.events WHERE repo_id = %s "
        "ORDER BY seq", (repo_id,)).fetchall()
    seqs = [r[0] for r in rows]
    assert seqs == list(range(1, len(seqs) + 1)), "the chain has a gap or a repeated seq"
    forks = sum(1 for before, after in zip(rows, rows[1:], strict=False) if after[1] != before[2])
    distinct = int(one_value(store, "SELECT count(DISTINCT previous_hash) FROM "
                                    "striatum.events WHERE repo_id = %s", repo_id))
    assert forks == 0 and distinct == len(rows), f"{forks} rows do not follow the row before"
    assert len(rows) == base_events + appended, (
        f"{base_events + appended - len(rows)} appended events are missing")
    audit_rows = int(one_value(store, "SELECT count(*) FROM striatum.audit_log"))
    audit_seqs = int(one_value(store, "SELECT count(DISTINCT seq) FROM striatum.audit_log "
                                      "WHERE seq BETWEEN 1 AND %s", audit_rows))
    assert audit_rows == base_audit + audited and audit_seqs == audit_rows, (
        audit_rows, base_audit, audited)
    retries = sum(r["retries"] for r in reports)
    worst = max(r["worst"] for r in reports)
    assert worst <= MAX_RETRIES
    report = assert_doctor_ok(store, repo)
    assert report.events == len(rows) and report.audit_rows == audit_rows
    return {"events": appended, "audit": audited, "retries": retries, "worst": worst,
            "seconds": seconds, "rate": (appended + audited) / seconds}


def run_contention(dsn: str, store: Store, repo: Path, tmp_path: Path, procs: Procs,
                   appenders: int, count: int, driven_runs: int, figure: Record) -> None:
    found = contend(dsn, store, repo, tmp_path, procs, appenders, count, driven_runs)
    figure("5 chain contention", appenders + (1 if driven_runs else 0),
           f"{appenders} procs x {count} events + audit rows, and {driven_runs} runs driven "
           f"alongside: forks 0, lost 0; retries {found['retries']} (max {found['worst']} per "
           f"transaction, cap {MAX_RETRIES}); {found['rate']:.0f} appends/s", found["seconds"])


def test_one_chain_many_appenders_no_fork(dsn: str, store: Store, repo: Path, tmp_path: Path,
                                          procs: Procs, figure: Record) -> None:
    run_contention(dsn, store, repo, tmp_path, procs, 4, 200, 3, figure)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_one_chain_many_appenders_no_fork(dsn: str, store: Store, repo: Path,
                                               tmp_path: Path, procs: Procs,
                                               figure: Record) -> None:
    run_contention(dsn, store, repo, tmp_path, procs, 16, 2000, 20, figure)
