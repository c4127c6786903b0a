"""The claim runs in the database (``striatum.claim_job``), which builds its event's
payload itself: held here, byte for byte, to the payload Python builds for the same
event, for owners full of what JSON must escape."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.canonical import canonical_json
from striatum.runtime import leases
from striatum.runtime.audit import GENESIS, Event, row_hash
from striatum.runtime.doctor import doctor
from striatum.runtime.store import Store

from .helpers import Agent, example, scripted, start_run, write_workflow

# Every character PostgreSQL text can hold, weighted towards the ones JSON escapes.
awkward = st.text(
    st.one_of(st.characters(min_codepoint=1, max_codepoint=0x1F),
              st.sampled_from(['"', "\\", "/", "\x7f", "\u2028", "\u2029", "é", "😀"]),
              st.characters(min_codepoint=1, blacklist_categories=("Cs",))),
    min_size=0, max_size=24)


def claim_event(store: Store, run_id: str, job_id: str, fence: int) -> tuple[str, str, str]:
    """The payload, previous hash and row hash of the job's claim at ``fence``."""
    rows = store._conn.execute(
        "SELECT payload, previous_hash, row_hash FROM striatum.events "
        "WHERE run_id = %s AND job_id = %s AND type = 'job.claim' ORDER BY seq",
        (run_id, job_id)).fetchall()
    found = [r for r in rows if json.loads(r[0])["state"]["fence"] == fence]
    assert len(found) == 1
    payload, previous, digest = found[0]
    return str(payload), str(previous), str(digest)


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(owners=st.lists(awkward, min_size=1, max_size=3))
def test_the_databases_claim_event_is_the_payload_python_would_write(
        store: Store, repo: Path, tmp_path: Path, owners: list[str]) -> None:
    run_id = start_run(store, write_workflow(tmp_path, {
        "name": "independent", "lanes": {"w": {"kind": "operator"}},
        "jobs": [{"id": f"j{i}", "lane": "w", "prompt": {"text": "x"}} for i in range(3)]}),
        repo)
    # Event times are UTC whatever the session's zone (psycopg hands back +05:30 here).
    store._conn.execute("SET TIME ZONE 'Asia/Kolkata'")
    for owner, seconds in zip(owners, (1, 300, 86_400), strict=False):
        claimed = leases.claim(store, run_id, owner=owner, lease_seconds=seconds)
        assert claimed is not None
        payload, previous, digest = claim_event(store, run_id, claimed.job, claimed.fence)
        body = json.loads(payload)
        # The same event as Python builds it, at the time the database stamped on it.
        at = datetime.fromisoformat(body["at"])
        state = {"status": "leased", "iteration": claimed.iteration,
                 "attempt": claimed.attempt, "executions": 1,
                 "revisions_used": 0, "fence": claimed.fence, "lease_owner": owner,
                 "chosen": None, "verdict": None}
        expected = Event("job.claim", run_id, claimed.job, state,
                         {"owner": owner, "lease_seconds": seconds}).payload(at)
        assert payload == expected
        assert payload.encode("utf-8") == canonical_json(body)
        assert digest == row_hash(previous, payload)
        assert previous != GENESIS
        # The stamp is the claim's own clock, written as Python writes event times.
        assert body["at"].endswith("+00:00")
        assert abs((claimed.expires_at - at).total_seconds() - seconds) < 1e-3


def test_claims_of_revised_reviews_chain_and_replay_under_strict_doctor(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """Claims whose job carries a verdict and a later pass (so every state field is
    non-trivial) leave a record that doctor's strict re-encoding accepts."""
    run_id = start_run(store, example("code-change"), repo)
    Agent(store, run_id, tmp_path, verdict=scripted({"check": ["needs_revision"]})).drive()
    report = doctor(store, str(repo), strict=True)
    assert report.ok, report.to_json()
    claims = store._conn.execute(
        "SELECT payload FROM striatum.events WHERE run_id = %s AND type = 'job.claim'",
        (run_id,)).fetchall()
    assert any(json.loads(p)["state"]["iteration"] > 0 for (p,) in claims)
