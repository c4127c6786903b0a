"""Leases on a real PostgreSQL: fencing of stale holders, expiry, retries, required
artifacts, concurrent claimers and heartbeats by the database clock."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from striatum.errors import EXIT_LEASE_LOST, Conflict, NotFound, UsageError
from striatum.runtime import leases, runs
from striatum.runtime.artifacts import artifact_dir
from striatum.runtime.doctor import doctor
from striatum.runtime.store import Store

from .helpers import (
    Agent,
    event_types,
    example,
    expire_lease,
    fan_out_workflow,
    owner_connection,
    start_run,
    statuses,
    write_workflow,
)


def claim_next(store: Store, run_id: str, owner: str = "agent") -> leases.Claim:
    claim = leases.claim(store, run_id, owner=owner)
    assert claim is not None, runs.status(store, run_id).to_json()
    return claim


def snapshot(store: Store, run_id: str) -> tuple[Any, ...]:
    """Everything a lease verb could change: projections, record, artifacts, verdicts, leases."""
    def rows(sql: str) -> list[Any]:
        return store._conn.execute(sql, (run_id,)).fetchall()

    return (
        rows("SELECT * FROM striatum.jobs WHERE run_id = %s ORDER BY position"),
        rows("SELECT * FROM striatum.runs WHERE id = %s"),
        rows("SELECT seq, row_hash FROM striatum.events WHERE run_id = %s ORDER BY seq"),
        rows("SELECT * FROM striatum.artifacts WHERE run_id = %s ORDER BY job_id, iteration, path"),
        rows("SELECT * FROM striatum.verdicts WHERE run_id = %s ORDER BY job_id, iteration"),
        rows("SELECT * FROM striatum.leases WHERE run_id = %s ORDER BY job_id, fence"),
    )


# -- a stale token ---------------------------------------------------------------------------

STALE_VERBS = ["heartbeat", "publish", "complete", "verdict", "release", "fail"]


def _stale_verb(store: Store, run_id: str, claim: leases.Claim, verb: str,
                source: Path) -> None:
    job, token = claim.job, claim.token
    if verb == "heartbeat":
        leases.heartbeat(store, run_id, job, token)
    elif verb == "publish":
        leases.publish(store, run_id, job, token, str(source), "stale.md")
    elif verb == "complete":
        leases.complete(store, run_id, job, token)
    elif verb == "verdict":
        leases.verdict(store, run_id, job, token, "accept", "from a stale holder")
    elif verb == "release":
        leases.release(store, run_id, job, token)
    else:
        leases.fail(store, run_id, job, token, "from a stale holder")


@pytest.mark.parametrize("verb", STALE_VERBS)
def test_a_stale_holder_is_refused_and_changes_nothing(
        store: Store, dsn: str, repo: Path, tmp_path: Path, verb: str) -> None:
    run_id = start_run(store, example("code-change"), repo)
    agent = Agent(store, run_id, tmp_path)
    if verb == "verdict":
        agent.act(claim_next(store, run_id))  # the draft, so the review is next
    first = claim_next(store, run_id, "first")
    expire_lease(dsn, run_id, first.job)
    second = claim_next(store, run_id, "second")
    assert second.job == first.job
    assert (second.fence, second.attempt) == (first.fence + 1, first.attempt + 1)
    assert second.token != first.token
    assert event_types(store, run_id, first.job).count("job.expire") == 1

    source = tmp_path / "stale-source.md"
    source.write_text("written by a holder that lost its lease\n", encoding="utf-8")
    before = snapshot(store, run_id)
    with pytest.raises(leases.LeaseLost) as exc:
        _stale_verb(store, run_id, first, verb, source)
    assert exc.value.exit_code == EXIT_LEASE_LOST
    assert snapshot(store, run_id) == before
    run = runs.status(store, run_id).run
    assert not (artifact_dir(run, first.job, first.iteration) / "stale.md").exists()

    agent.act(second)
    completions = [e for e in runs.events(store, run_id)
                   if e["job"] == first.job and e["type"] == "job.complete"]
    assert len(completions) == 1
    assert completions[0]["payload"]["state"]["fence"] == second.fence


def test_an_expired_lease_is_refused_before_anyone_claims_again(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    claim = claim_next(store, run_id)
    Agent(store, run_id, tmp_path).publish_all(claim)
    expire_lease(dsn, run_id, claim.job)
    before = snapshot(store, run_id)
    for verb in (lambda: leases.heartbeat(store, run_id, claim.job, claim.token),
                 lambda: leases.complete(store, run_id, claim.job, claim.token)):
        with pytest.raises(leases.LeaseLost, match="expired"):
            verb()
    assert snapshot(store, run_id) == before
    assert statuses(runs.status(store, run_id))["draft"] == "leased"


def test_a_wrong_token_is_refused(store: Store, repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    forged = f"{claim.fence}-{'0' * 32}"
    before = snapshot(store, run_id)
    with pytest.raises(leases.LeaseLost):
        leases.complete(store, run_id, claim.job, forged)
    with pytest.raises(leases.LeaseLost):
        leases.heartbeat(store, run_id, claim.job, forged)
    assert snapshot(store, run_id) == before


def test_expiries_past_max_attempts_fail_the_job_and_the_run(
        store: Store, dsn: str, repo: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    attempts = []
    for _ in range(3):  # max_attempts defaults to 3
        claim = claim_next(store, run_id)
        assert claim.job == "draft"
        attempts.append(claim.attempt)
        expire_lease(dsn, run_id, "draft")
    assert attempts == [0, 1, 2]
    assert leases.claim(store, run_id, owner="agent") is None  # sweeps the third expiry
    view = runs.status(store, run_id)
    assert view.run.status == "failed"
    assert statuses(view) == {"draft": "failed", "check": "cancelled", "apply": "cancelled"}
    assert view.executions == 1  # retries are not executions
    assert event_types(store, run_id, "draft") == [
        "job.ready", "job.claim", "job.expire", "job.claim", "job.expire", "job.claim",
        "job.fail"]
    fail = [e for e in runs.events(store, run_id) if e["type"] == "job.fail"][0]
    assert fail["payload"]["data"]["attempts"] == 3


def test_job_fail_retries_while_attempts_remain_then_fails_the_run(
        store: Store, repo: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    for attempt in (0, 1):
        claim = claim_next(store, run_id)
        assert (claim.job, claim.attempt) == ("draft", attempt)
        tx = leases.fail(store, run_id, "draft", claim.token, f"crash {attempt}")
        assert (tx.jobs["draft"].status, tx.jobs["draft"].attempt) == ("ready", attempt + 1)
        assert tx.run.status == "running"
    last = claim_next(store, run_id)
    tx = leases.fail(store, run_id, "draft", last.token, "crash 2")
    assert tx.jobs["draft"].status == "failed" and tx.run.status == "failed"
    assert event_types(store, run_id, "draft").count("job.retry") == 2
    assert runs.status(store, run_id).executions == 1


def test_release_hands_the_job_back_without_spending_an_attempt(
        store: Store, repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    first = claim_next(store, run_id, "first")
    tx = leases.release(store, run_id, first.job, first.token)
    assert (tx.jobs["answer"].status, tx.jobs["answer"].lease_owner) == ("ready", None)
    second = claim_next(store, run_id, "second")
    assert (second.fence, second.attempt) == (first.fence + 1, first.attempt)
    with pytest.raises(leases.LeaseLost):
        leases.release(store, run_id, first.job, first.token)


# -- required artifacts ----------------------------------------------------------------------

def test_complete_without_the_produced_artifacts_is_a_conflict_listing_them(
        store: Store, repo: Path, tmp_path: Path) -> None:
    document = {"name": "two-outputs", "lanes": {"agent": {"kind": "operator"}},
                "jobs": [{"id": "make", "lane": "agent", "prompt": {"text": "make"},
                          "produces": ["a.md", "notes/b.md"]}]}
    run_id = start_run(store, write_workflow(tmp_path / "wf", document), repo)
    claim = claim_next(store, run_id)
    with pytest.raises(Conflict) as exc:
        leases.complete(store, run_id, "make", claim.token)
    assert "a.md, notes/b.md" in exc.value.message
    source = tmp_path / "a.md"
    source.write_text("a\n", encoding="utf-8")
    leases.publish(store, run_id, "make", claim.token, str(source), "a.md")
    with pytest.raises(Conflict) as exc:
        leases.complete(store, run_id, "make", claim.token)
    assert "notes/b.md" in exc.value.message and "a.md," not in exc.value.message
    assert statuses(runs.status(store, run_id)) == {"make": "leased"}
    leases.publish(store, run_id, "make", claim.token, str(source), "notes/b.md")
    assert leases.complete(store, run_id, "make", claim.token).run.status == "completed"


def test_files_published_with_a_completion_are_one_transaction_with_it(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """complete(files=...) records the artifacts and the completion together: on a refusal
    neither is recorded; on success the publish events come just before the completion."""
    document = {"name": "two-outputs", "lanes": {"agent": {"kind": "operator"}},
                "jobs": [{"id": "make", "lane": "agent", "prompt": {"text": "make"},
                          "produces": ["a.md", "notes/b.md"]}]}
    run_id = start_run(store, write_workflow(tmp_path / "wf", document), repo)
    claim = claim_next(store, run_id)
    source = tmp_path / "a.md"
    source.write_text("a\n", encoding="utf-8")
    before = snapshot(store, run_id)
    with pytest.raises(Conflict, match="notes/b.md"):
        leases.complete(store, run_id, "make", claim.token,
                        files=[leases.stage(str(source), "a.md")])
    assert snapshot(store, run_id) == before  # not even the artifact's record
    view = leases.complete(store, run_id, "make", claim.token, files=[
        leases.stage(str(source), "a.md"), leases.stage(str(source), "notes/b.md")])
    assert view.run.status == "completed"
    types = event_types(store, run_id)
    assert types[-4:] == ["artifact.publish", "artifact.publish", "job.complete",
                          "run.complete"], types
    assert doctor(store, repo=str(repo)).ok


def test_a_review_cannot_accept_before_publishing_what_it_produces(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("review"), repo)
    agent = Agent(store, run_id, tmp_path)
    agent.act(claim_next(store, run_id))
    critique = claim_next(store, run_id)
    with pytest.raises(Conflict, match="critique.md"):
        leases.verdict(store, run_id, "critique", critique.token, "accept", "fine")
    assert statuses(runs.status(store, run_id))["critique"] == "leased"


@pytest.mark.parametrize("name", ["../escape.md", "/etc/passwd", "a/../../b.md"])
def test_publish_refuses_a_name_outside_the_run(store: Store, repo: Path, tmp_path: Path,
                                               name: str) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    source = tmp_path / "x.md"
    source.write_text("x\n", encoding="utf-8")
    before = snapshot(store, run_id)
    with pytest.raises(UsageError):
        leases.publish(store, run_id, claim.job, claim.token, str(source), name)
    assert snapshot(store, run_id) == before


def test_publish_refuses_names_too_long_for_the_filesystem(store: Store, repo: Path,
                                                         tmp_path: Path) -> None:
    """A source path or an artifact name longer than a file name may be is a usage error
    (it was exit 70, found by the soak fuzz), and records nothing."""
    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    source = tmp_path / "x.md"
    source.write_text("x\n", encoding="utf-8")
    before = snapshot(store, run_id)
    with pytest.raises(UsageError, match="cannot publish"):
        leases.publish(store, run_id, claim.job, claim.token, str(tmp_path / ("a" * 300)))
    with pytest.raises(UsageError, match="cannot store the artifact"):
        leases.publish(store, run_id, claim.job, claim.token, str(source), "b" * 300)
    assert snapshot(store, run_id) == before


def test_an_empty_claim_names_a_missing_run_unless_told_not_to_ask(store: Store,
                                                                   repo: Path) -> None:
    """By default a claim on a run that does not exist is NotFound; a worker that asked
    once passes check_run=False and gets None, one round trip instead of two."""
    with pytest.raises(NotFound, match="no run 'no-such-run'"):
        leases.claim(store, "no-such-run", owner="agent", sweep=False)
    assert leases.claim(store, "no-such-run", owner="agent", sweep=False,
                        check_run=False) is None
    run_id = start_run(store, example("minimal"), repo)
    while leases.claim(store, run_id, owner="agent", sweep=False) is not None:
        pass
    assert leases.claim(store, run_id, owner="agent", sweep=False) is None


# -- the attempt's files -----------------------------------------------------------------------

def test_a_claim_makes_the_artifact_folder_its_agent_is_told_of_and_a_take_leaves_it_to_the_lane(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, fan_out_workflow(tmp_path / "wf", 2), repo)
    seed = claim_next(store, run_id)
    # An operator's claim answers with a folder the agent can write its files into.
    assert Path(seed.artifact_dir).is_dir() and not any(Path(seed.artifact_dir).iterdir())
    Path(seed.artifact_dir, "seed.md").write_text("seed\n")
    leases.complete(store, run_id, seed.job, seed.token,
                    files=[leases.stage(str(Path(seed.artifact_dir, "seed.md")), "seed.md")])
    # A worker's take writes the prompt alone: the worker makes the folder as the lane starts.
    taken = leases.take(store, run_id, owner="worker", lanes=None, lane_kinds=None,
                        lease_seconds=60, check_run=True)
    assert isinstance(taken, leases.Claim)
    prompt = Path(taken.prompt_file)
    assert prompt.is_file() and "t0" in prompt.read_text(encoding="utf-8")
    assert not Path(taken.artifact_dir).exists()
    assert sorted(p.name for p in prompt.parent.iterdir()) == [prompt.name]


# -- concurrency -----------------------------------------------------------------------------

def test_concurrent_claimers_take_each_job_once_per_pass(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    width, threads = 50, 8
    run_id = start_run(store, fan_out_workflow(tmp_path / "wf", width), repo)
    claims: list[tuple[str, int, int, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def worker(index: int) -> None:
        own = Store.connect(dsn)
        try:
            agent = Agent(own, run_id, tmp_path / f"w{index}", owner=f"w{index}",
                          verdict=lambda c: "needs_revision" if c.iteration == 0 else "accept")
            agent.workdir.mkdir()
            barrier.wait()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                claim = leases.claim(own, run_id, owner=agent.owner)
                if claim is None:
                    if runs.status(own, run_id).run.status != "running":
                        return
                    time.sleep(0.005)
                    continue
                claims.append((claim.job, claim.iteration, claim.fence, index))
                agent.act(claim)
            raise AssertionError(f"worker {index} gave up waiting for the run to end")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            own.close()

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    assert not any(thread.is_alive() for thread in pool)
    assert errors == []

    view = runs.status(store, run_id)
    assert view.run.status == "completed"
    job_ids = [j.job_id for j in view.jobs]
    per_pass = Counter((job, iteration) for job, iteration, _, _ in claims)
    assert set(per_pass) == {(j, i) for j in job_ids for i in (0, 1)}
    assert set(per_pass.values()) == {1}
    assert len({owner for *_, owner in claims}) > 1  # the work was really shared
    completions = Counter(e["job"] for e in runs.events(store, run_id)
                          if e["type"] == "job.complete")
    # Each task completes once per pass; the gate sent the first pass back, then accepted.
    assert completions == {**{j: 2 for j in job_ids}, "gate": 1}
    assert view.executions == view.run.worst_case == 2 * (width + 2)
    open_leases = store._conn.execute(
        "SELECT count(*) FROM striatum.leases WHERE run_id = %s AND ended_at IS NULL",
        (run_id,)).fetchone()
    assert open_leases == (0,)
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]


def test_racing_completions_with_one_token_complete_the_job_once(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    threads = 8
    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    Agent(store, run_id, tmp_path).publish_all(claim)
    outcomes: list[str] = []
    barrier = threading.Barrier(threads)

    def racer() -> None:
        own = Store.connect(dsn)
        try:
            barrier.wait()
            leases.complete(own, run_id, claim.job, claim.token)
            outcomes.append("completed")
        except leases.LeaseLost:
            outcomes.append("lease_lost")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            outcomes.append(repr(exc))
        finally:
            own.close()

    pool = [threading.Thread(target=racer) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert sorted(outcomes) == ["completed"] + ["lease_lost"] * (threads - 1)
    assert event_types(store, run_id, claim.job).count("job.complete") == 1
    assert runs.status(store, run_id).run.status == "completed"


def test_concurrent_runs_in_one_repository_append_one_unbroken_chain(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    threads = 8
    finished: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def driver(index: int) -> None:
        own = Store.connect(dsn)
        try:
            barrier.wait()
            run_id = start_run(own, example("code-change"), repo)
            workdir = tmp_path / f"d{index}"
            workdir.mkdir()
            view = Agent(own, run_id, workdir, owner=f"d{index}",
                         verdict=lambda c: "needs_revision" if c.iteration == 0 else "accept"
                         ).drive()
            finished.append((run_id, view.run.status))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            own.close()

    pool = [threading.Thread(target=driver, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(120)
    assert errors == []
    assert sorted(status for _, status in finished) == ["completed"] * threads
    seqs = [r[0] for r in store._conn.execute(
        "SELECT seq FROM striatum.events ORDER BY seq").fetchall()]
    assert seqs == list(range(1, len(seqs) + 1))
    assert store._conn.execute("SELECT count(DISTINCT previous_hash) FROM striatum.events"
                              ).fetchone() == (len(seqs),)  # no two rows follow the same one
    report = doctor(store, str(repo))
    assert report.ok, [f.to_json() for f in report.findings if not f.ok]
    assert "8 manifest(s) match" in [f for f in report.findings if f.check == "anchors"][0].message


def test_prepare_does_not_wait_for_a_transition_in_flight_in_the_same_repository(
        store: Store, dsn: str, repo: Path) -> None:
    """A transition that has appended an event holds its repository row FOR KEY SHARE (the
    foreign key) until it commits, while it holds the chain head. A prepare that locks the
    repository row more strongly before it takes the chain head deadlocks against it."""
    start_run(store, example("minimal"), repo)
    prepared: list[str] = []
    failures: list[BaseException] = []

    def prepare() -> None:
        own = Store.connect(dsn)
        try:
            prepared.append(runs.prepare(own, example("minimal"), str(repo), overrides={}))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            own.close()

    with owner_connection(dsn) as conn, conn.transaction():
        conn.execute("SELECT id FROM striatum.repos FOR KEY SHARE")  # as an event insert does
        thread = threading.Thread(target=prepare)
        thread.start()
        thread.join(5)
        finished_while_held = not thread.is_alive()
    thread.join(30)
    assert failures == []
    assert finished_while_held, "prepare waited for the repository row"
    assert len(prepared) == 1


@pytest.mark.parametrize("sqlstate", ["40001", "40P01"])
def test_a_transaction_that_loses_a_race_is_retried(store: Store, sqlstate: str) -> None:
    """DESIGN 5: serialization failures (40001) and deadlocks (40P01) are retried, not
    reported as an unreachable store (which is what a driver's OperationalError means)."""
    attempts: list[int] = []
    statement = ("DO $$ BEGIN RAISE EXCEPTION 'lost a race' USING ERRCODE = '"
                 + sqlstate + "'; END $$")

    def work(cur: Any) -> int:
        attempts.append(len(attempts))
        if len(attempts) == 1:
            cur.execute(statement)
        cur.execute("SELECT 42")
        return int(cur.fetchone()[0])

    assert store.transaction(work) == 42
    assert attempts == [0, 1]
    assert store.retries == 1


# -- heartbeats ------------------------------------------------------------------------------

def test_heartbeat_extends_the_lease_by_the_database_clock(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = leases.claim(store, run_id, owner="agent", lease_seconds=30)
    assert claim is not None
    with owner_connection(dsn) as conn:
        conn.execute("UPDATE striatum.jobs SET lease_expires_at = now() + interval '2 seconds' "
                     "WHERE run_id = %s", (run_id,))
        (db_before,) = conn.execute("SELECT now()").fetchone() or (None,)
        expires = leases.heartbeat(store, run_id, claim.job, claim.token, lease_seconds=900)
        (db_after,) = conn.execute("SELECT now()").fetchone() or (None,)
        stored = conn.execute("SELECT lease_expires_at, heartbeat_at FROM striatum.jobs "
                              "WHERE run_id = %s", (run_id,)).fetchone()
    assert db_before is not None and db_after is not None and stored is not None
    assert db_before + timedelta(seconds=900) <= expires <= db_after + timedelta(seconds=900)
    assert stored[0] == expires
    assert db_before <= stored[1] <= db_after
    # The extended lease is still the same lease: its holder finishes the job.
    Agent(store, run_id, tmp_path).act(claim)
    assert runs.status(store, run_id).run.status == "completed"


def test_a_run_ended_by_a_process_that_died_before_its_manifest_gets_one(
        store: Store, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ending transaction writes a pending manifest before its COMMIT; if the process
    dies before renaming it, a worker's sweep promotes it (found by the crash soak: an
    ended run without a manifest fails doctor). A pending manifest that does not match
    the database is never promoted, and nothing is rebuilt from the database alone."""
    from striatum.runtime import manifest

    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    Agent(store, run_id, tmp_path).publish_all(claim)
    monkeypatch.setattr("striatum.runtime.runs.promote", lambda run: None)  # "dies" here
    assert leases.complete(store, run_id, claim.job, claim.token).run.status == "completed"
    monkeypatch.undo()
    folder = next((repo / "striatum" / "runs").glob(run_id))
    assert not (folder / manifest.MANIFEST).exists() and (folder / manifest.PENDING).exists()
    assert not doctor(store, repo=str(repo)).ok
    assert manifest.backfill(store) == 1
    assert (folder / manifest.MANIFEST).exists()
    assert doctor(store, repo=str(repo)).ok
    # A pending manifest whose head the database does not hold stays pending.
    other = start_run(store, example("minimal"), repo)
    claim = claim_next(store, other)
    Agent(store, other, tmp_path).publish_all(claim)
    leases.complete(store, other, claim.job, claim.token)
    done = next((repo / "striatum" / "runs").glob(other))
    (done / manifest.MANIFEST).rename(done / manifest.PENDING)
    document = json.loads((done / manifest.PENDING).read_text(encoding="utf-8"))
    document["chain"]["seq"] += 1000
    (done / manifest.PENDING).write_text(json.dumps(document), encoding="utf-8")
    assert manifest.backfill(store) == 0
    assert not (done / manifest.MANIFEST).exists()


def test_a_token_that_was_never_valid_is_not_told_it_lost_the_lease(
        store: Store, repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    for token in ("bogus", f"{claim.fence + 7}-{'0' * 32}", ""):
        for verb in (lambda t=token: leases.complete(store, run_id, claim.job, t),
                     lambda t=token: leases.heartbeat(store, run_id, claim.job, t)):
            with pytest.raises(leases.LeaseLost) as exc:
                verb()
            assert "no longer yours" not in exc.value.message, exc.value.message
            assert "not a lease" in exc.value.message, exc.value.message
    leases.heartbeat(store, run_id, claim.job, claim.token)  # the lease is still held


def test_core_errors_about_run_arguments_name_no_command_line_flags(
        store: Store, repo: Path) -> None:
    with pytest.raises(UsageError) as exc:
        runs.prepare(store, example("minimal"), str(repo), overrides={"nope": "1"})
    assert "--var" not in exc.value.message + (exc.value.hint or "")
    assert "nope" in exc.value.message
    with pytest.raises(UsageError) as exc:
        runs.prepare(store, example("minimal"), str(repo), overrides={},
                     lanes={"nobody": {"command": ["true"]}})
    assert "--lane" not in exc.value.message + (exc.value.hint or "")
    assert "nobody" in exc.value.message


def test_a_token_of_fence_zero_is_not_a_lease(store: Store, repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    with pytest.raises(leases.LeaseLost) as exc:
        leases.heartbeat(store, run_id, claim.job, f"0-{'0' * 32}")
    assert "not a lease" in exc.value.message, exc.value.message


def test_a_reason_naming_a_file_whose_name_is_not_utf8_is_recorded_escaped(
        store: Store, repo: Path) -> None:
    """git reports such a name with surrogateescape: the reason reaches the record as
    text UTF-8 can hold, and a refusal carrying it is still the refusal."""
    run_id = start_run(store, example("minimal"), repo)
    claim = claim_next(store, run_id)
    reason = "changed files outside its writes globs: caf\udce9.txt"
    with pytest.raises(leases.LeaseLost):
        leases.fail(store, run_id, claim.job, f"{claim.fence}-{'0' * 32}", reason)
    leases.fail(store, run_id, claim.job, claim.token, reason)
    retried = [e for e in runs.events(store, run_id) if e["type"] == "job.retry"]
    assert retried[0]["payload"]["data"]["reason"].endswith("caf\\udce9.txt")
    assert doctor(store, str(repo)).ok


def test_a_manifest_promoted_by_a_sweep_first_is_not_an_error(store: Store, repo: Path,
                                                              tmp_path: Path) -> None:
    from striatum.runtime.manifest import PENDING, manifest_path, promote

    run_id = start_run(store, example("minimal"), repo)
    assert Agent(store, run_id, tmp_path).drive().run.status == "completed"
    run = runs.get_run(store, run_id)
    manifest = manifest_path(run)
    assert manifest.is_file() and not manifest.with_name(PENDING).exists()
    assert promote(run) == manifest  # the sweep's backfill got there first: nothing to do


def test_the_manifest_anchors_the_audit_row_of_the_transaction_that_ended_the_run(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    assert Agent(store, run_id, tmp_path).drive().run.status == "completed"
    manifest = json.loads(next(repo.glob(f"striatum/runs/{run_id}/manifest.json")).read_text())
    ended = store._conn.execute(
        "SELECT a.seq, a.row_hash, a.verb FROM striatum.audit_log a "
        "JOIN striatum.events e ON e.xmin = a.xmin "
        "WHERE e.run_id = %s AND e.type = 'run.complete'", (run_id,)).fetchone()
    assert ended is not None and ended[2] == "job complete", ended
    assert manifest["audit"] == {"seq": ended[0], "hash": ended[1]}
