"""doctor over the daemon's audit rows (the RPC log): every row a face wrote names a
verb, an outcome and an actor of the forms the daemon writes, and each change since
the first such row shares its transaction with its audit row. The database's owner
edits or deletes a daemon row and re-chains the log after it, so that the chain
verifies: doctor names the row (or the change that lost it) all the same."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from striatum.canonical import canonical_json
from striatum.runtime.audit import row_hash
from striatum.runtime.doctor import doctor, rpc_vocabulary
from striatum.runtime.store import Store
from striatum.server.registry import VERBS

from .helpers import example, owner_connection
from .test_daemon import Served, served  # noqa: F401 - the fixture

Edit = Callable[[dict[str, Any]], dict[str, Any] | None]  # a row, changed; None: deleted


def rechain(conn: psycopg.Connection[Any], seq: int, edit: Edit) -> None:
    """Edit (or delete) audit row ``seq`` and re-chain every row after it, seqs closed up
    and hashes recomputed, the head fixed: the forgery a careful owner would make."""
    rows = conn.cursor(row_factory=dict_row).execute(
        "SELECT * FROM striatum.audit_log WHERE seq >= %s ORDER BY seq", (seq,)).fetchall()
    conn.execute("DELETE FROM striatum.audit_log WHERE seq >= %s", (seq,))
    previous = rows[0]["previous_hash"]
    kept = [edit(dict(rows[0])), *rows[1:]]
    at = seq
    for row in kept:
        if row is None:
            continue
        body = json.loads(row["payload"])
        body.update({key: row[key] for key in ("actor", "verb", "outcome")})
        payload = canonical_json(body).decode("utf-8")
        digest = row_hash(previous, payload)
        conn.execute(
            "INSERT INTO striatum.audit_log (seq, actor, verb, args_digest, outcome, payload,"
            " previous_hash, row_hash, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (at, row["actor"], row["verb"], row["args_digest"], row["outcome"], payload,
             previous, digest, row["created_at"]))
        previous, at = digest, at + 1
    conn.execute("UPDATE striatum.chain_heads SET seq = %s, hash = %s, previous = "
                 "(SELECT previous_hash FROM striatum.audit_log WHERE seq = %s) "
                 "WHERE chain = 'audit'", (at - 1, previous, at - 1))


def findings(dsn: str, seq: int, edit: Edit) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report doctor gives of the record with the forgery, which is then undone."""
    with owner_connection(dsn) as conn, conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE striatum.audit_log DISABLE TRIGGER USER")
        rechain(conn, seq, edit)
        conn.execute("ALTER TABLE striatum.audit_log ENABLE TRIGGER USER")
        report = doctor(Store(dsn, conn)).to_json()
    return report, [f for f in report["findings"] if not f["ok"]]


def row_of(daemon: Served, actor: str, verb: str) -> int:
    with owner_connection(daemon.dsn) as conn:
        found = conn.execute("SELECT max(seq) FROM striatum.audit_log WHERE actor = %s "
                             "AND verb = %s", (actor, verb)).fetchone()
    assert found and found[0], (actor, verb)
    return int(found[0])


@pytest.fixture
def lived(served: Served) -> Served:  # noqa: F811 - the fixture's own name
    """A daemon that served a principal, a viewer, a lane and an unknown method."""
    run = served.call("run.prepare", {"workflow": example("minimal"), "start": True})[
        "run_id"]
    claim = served.call("job.claim", {"run": run})
    (served.repo / "answer.md").write_text("forty-two\n")
    lane = {"run": run, "job": claim["job"], "lease": claim["lease"]}
    served.call("job.publish", {**lane, "artifact": "answer.md"}, "none")
    served.call("job.complete", lane, "none")
    served.call("run.status", {"run": run}, "viewer")
    assert served.refusal("run.cancel", {"run": run}, "viewer").code == "forbidden"
    assert served.refusal("no.such.verb", {}).code == "usage"
    served.run = run  # type: ignore[attr-defined]
    return served


def test_the_rpc_log_of_a_daemon_verifies(lived: Served) -> None:
    report = lived.call("doctor", {"anchors": False})
    assert report["ok"] is True, report["findings"]
    (rpc,) = [f for f in report["findings"] if f["check"] == "rpc"]
    assert rpc["ok"] and "every change since its first has its audit row" in rpc["message"]
    # The unknown method's row says it was refused as such: its name, and `usage`.
    assert ("tester daemon:principal", "no.such.verb", "usage") in lived.audit()


@pytest.mark.parametrize(("actor", "verb", "change", "problem"), [
    ("tester daemon:lease", "job complete", {"outcome": "accepted"},
     "outcome is neither ok nor a stable error code"),
    ("tester daemon:viewer", "run.status", {"actor": "tester daemon:root"},
     "actor is not of the form"),
    ("tester daemon:viewer", "run.status", {"actor": "daemon:viewer"},
     "actor is not of the form"),
    ("tester daemon:viewer", "run.status", {"verb": "job.steal"},
     "names no verb of the registry or the core"),
    ("tester daemon:viewer", "run.status", {"verb": "run.cancel"},
     "records a call its capability could not have made"),
    ("tester daemon:viewer", "run.cancel", {"outcome": "ok"},
     "records a call its capability could not have made"),
    ("tester daemon:principal", "no.such.verb", {"outcome": "ok"},
     "names no verb of the registry or the core"),
], ids=["outcome", "capability-name", "no-caller", "verb", "viewer-changes", "refusal-undone",
        "unknown-ok"])
def test_a_daemon_row_rewritten_by_the_owner_is_named(lived: Served, actor: str, verb: str,
                                                      change: dict[str, str],
                                                      problem: str) -> None:
    seq = row_of(lived, actor, verb)
    report, failed = findings(lived.dsn, seq, lambda row: {**row, **change})
    # The chain verifies (it was re-chained); only the rpc check sees the forgery (a
    # change's row no longer ok: its change, too, is named as left without one).
    assert {f["check"] for f in failed} == {"rpc"}, failed
    assert len(failed) == (2 if verb == "job complete" else 1), failed
    assert failed[0]["seq"] == seq and f"audit row seq {seq} " in failed[0]["message"]
    assert problem in failed[0]["message"], failed[0]["message"]


def test_a_change_whose_daemon_row_the_owner_deleted_is_named(lived: Served) -> None:
    run = lived.run  # type: ignore[attr-defined]
    seq = row_of(lived, "tester daemon:lease", "job complete")
    report, failed = findings(lived.dsn, seq, lambda row: None)
    assert [f["check"] for f in failed] == ["rpc"], failed
    assert failed[0]["table"] == "events"
    assert f"(job.complete of {run}/answer) shares its transaction with no audit row" in \
        failed[0]["message"]
    # Deleted without re-chaining, the chain check names the gap, and rpc the change.
    with owner_connection(lived.dsn) as conn, conn.transaction(force_rollback=True):
        conn.execute("ALTER TABLE striatum.audit_log DISABLE TRIGGER USER")
        conn.execute("DELETE FROM striatum.audit_log WHERE seq = %s", (seq,))
        conn.execute("ALTER TABLE striatum.audit_log ENABLE TRIGGER USER")
        checks = [f.check for f in doctor(Store(lived.dsn, conn)).findings if not f.ok]
    assert checks == ["chain", "rpc"], checks


def test_the_vocabulary_is_the_registry_the_core_and_the_error_codes() -> None:
    words = rpc_vocabulary()
    assert {"job.complete", "job complete", "run.status", "lease sweep"} <= set(words["verbs"])
    assert {"usage", "forbidden", "lease_lost", "not_found", "internal",
            "store_unavailable"} <= set(words["codes"])
    assert "run.status" in words["reads"] and "run.cancel" not in words["reads"]
    assert set(words["lease_verbs"]) >= {"job.heartbeat", "job.publish", "job.verdict",
                                         "job.complete", "job.release", "job.fail"}
    assert set(words["lease_verbs"]) == {name for name, verb in VERBS.items()
                                         if verb.capability == "lease"}
