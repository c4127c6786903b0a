"""A task's completion runs in the database (``striatum.complete_job``), which builds its
events' payloads itself: held here, byte for byte, to what the engine's transition
writes for the same change, on two identical runs worked in lockstep, one each way, over
random graphs of tasks and reviews (whose verdicts, with reasons full of what JSON must
escape, take the general way on both)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.errors import Conflict, LeaseLost
from striatum.runtime import leases
from striatum.runtime.completion import Completed
from striatum.runtime.doctor import doctor
from striatum.runtime.engine import Transition
from striatum.runtime.store import Store

from .helpers import start_run, write_workflow

awkward = st.text(
    st.one_of(st.characters(min_codepoint=1, max_codepoint=0x1F),
              st.sampled_from(['"', "\\", "/", "\x7f", "\u2028", "\u2029", "é", "😀"]),
              st.characters(min_codepoint=1, blacklist_categories=("Cs",))),
    min_size=0, max_size=24)


@st.composite
def graphs(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Jobs in file order, each needing some earlier ones; reviews review something."""
    jobs: list[dict[str, Any]] = []
    for i in range(draw(st.integers(2, 6))):
        needs = sorted(draw(st.sets(st.sampled_from([j["id"] for j in jobs]), max_size=3))
                       ) if jobs else []
        kind = draw(st.sampled_from(["task", "review"])) if needs else "task"
        job: dict[str, Any] = {"id": f"j{i}", "lane": "w", "prompt": {"text": "x"},
                               "kind": kind, "needs": needs}
        if draw(st.booleans()):
            job["produces"] = [f"j{i}.md"]
        jobs.append(job)
    return jobs


def work(store: Store, run_id: str, order: random.Random, reasons: list[str],
         published: Path) -> list[tuple[str, type]]:
    """Claim every ready job, end them in a shuffled order (accepting the reviews), until
    the run ends; each job's kind and what its ending returned."""
    returned: list[tuple[str, type]] = []
    turn = 0
    while True:
        held = []
        while (claim := leases.claim(store, run_id, owner="agent")) is not None:
            held.append(claim)
        if not held:
            return returned
        order.shuffle(held)
        for claim in held:
            if claim.produces:
                leases.publish(store, run_id, claim.job, claim.token, str(published),
                               claim.produces[0])
            if claim.kind == "review":
                reason = reasons[turn % len(reasons)]
                turn += 1
                ended: object = leases.verdict(store, run_id, claim.job, claim.token,
                                               "accept", reason)
            else:
                ended = leases.complete(store, run_id, claim.job, claim.token)
            returned.append((claim.kind, type(ended)))


def record(store: Store, run_id: str) -> dict[str, Any]:
    """The run's record with its id and times taken out: events' payloads (their stamp
    set aside), jobs, leases, verdicts, the run's row."""
    conn = store._conn
    events = []
    for kind, job, payload in conn.execute(
            "SELECT type, job_id, payload FROM striatum.events WHERE run_id = %s ORDER BY seq",
            (run_id,)).fetchall():
        body = json.loads(payload)
        assert body["at"].endswith("+00:00")
        # The run's id is in its artifacts' paths too.
        events.append((kind, job, payload.replace(run_id, "RUN").replace(body["at"], "AT")))
    jobs = conn.execute(
        "SELECT job_id, status, iteration, attempt, executions, revisions_used, fence, "
        "lease_token, lease_owner, lease_expires_at, heartbeat_at, chosen, verdict, reason "
        "FROM striatum.jobs WHERE run_id = %s ORDER BY position", (run_id,)).fetchall()
    leased = conn.execute(
        "SELECT job_id, fence, owner, iteration, attempt, outcome, ended_at IS NULL "
        "FROM striatum.leases WHERE run_id = %s ORDER BY job_id, fence", (run_id,)).fetchall()
    verdicts = conn.execute(
        "SELECT job_id, iteration, verdict, reason, fence FROM striatum.verdicts "
        "WHERE run_id = %s ORDER BY job_id, iteration", (run_id,)).fetchall()
    run = conn.execute("SELECT status, blocked_on, unsettled FROM striatum.runs WHERE id = %s",
                       (run_id,)).fetchone()
    return {"events": events, "jobs": jobs, "leases": leased, "verdicts": verdicts,
            "run": run}


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(jobs=graphs(), reasons=st.lists(awkward, min_size=1, max_size=3),
       seed=st.integers(0, 2**16))
def test_the_databases_completion_writes_what_the_engine_would(
        store: Store, repo: Path, tmp_path: Path, jobs: list[dict[str, Any]],
        reasons: list[str], seed: int) -> None:
    workflow = write_workflow(tmp_path, {"name": "shapes", "lanes": {"w": {"kind": "operator"}},
                                         "jobs": jobs})
    published = tmp_path / "out.md"
    published.write_text("done\n", encoding="utf-8")
    one, general = start_run(store, workflow, repo), start_run(store, workflow, repo)
    # Event times are UTC whatever the session's zone.
    store._conn.execute("SET TIME ZONE 'Asia/Kolkata'")
    in_one = work(store, one, random.Random(seed), reasons, published)
    with mock.patch.object(leases, "complete_in_one", return_value=None):
        the_engines = work(store, general, random.Random(seed), reasons, published)
    assert record(store, one) == record(store, general)
    assert {ended for _, ended in the_engines} == {Transition}
    # Every task's completion but the run's last took the one statement.
    assert [ended for kind, ended in in_one[:-1] if kind == "task"] == [Completed] * sum(
        kind == "task" for kind, _ in in_one[:-1])
    assert {ended for kind, ended in in_one if kind == "review"} <= {Transition}
    assert in_one[-1][1] is Transition
    report = doctor(store, str(repo), strict=True)
    assert report.ok, report.to_json()


def test_a_completion_the_statement_refuses_is_refused_in_words_and_changes_nothing(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """A stale token, a missing artifact and a task given a verdict fall through to the
    engine, which says what is wrong; the statement itself changed nothing."""
    run_id = start_run(store, write_workflow(tmp_path, {
        "name": "refusals", "lanes": {"w": {"kind": "operator"}},
        "jobs": [{"id": "a", "lane": "w", "prompt": {"text": "x"}, "produces": ["a.md"]},
                 {"id": "b", "lane": "w", "prompt": {"text": "x"}},
                 {"id": "c", "lane": "w", "prompt": {"text": "x"}, "needs": ["a", "b"]}]}),
        repo)
    first = leases.claim(store, run_id, owner="agent")
    second = leases.claim(store, run_id, owner="agent")
    assert first is not None and second is not None and first.job == "a"
    before = record(store, run_id)
    with pytest.raises(Conflict, match="a.md"):
        leases.complete(store, run_id, "a", first.token)
    with pytest.raises(LeaseLost):
        leases.complete(store, run_id, "b", second.token.split("-")[0] + "-" + "0" * 32)
    with pytest.raises(Conflict, match="only a review takes a verdict"):
        leases.verdict(store, run_id, "b", second.token, "accept", "fine")
    assert record(store, run_id) == before
    # b ends in one statement, c still waiting for a; then a does, readying c (the run's
    # last job is c, so neither ends the run).
    assert isinstance(leases.complete(store, run_id, "b", second.token), Completed)
    assert store._conn.execute("SELECT status FROM striatum.jobs WHERE run_id = %s AND "
                               "job_id = 'c'", (run_id,)).fetchone() == ("pending",)
    source = tmp_path / "a.md"
    source.write_text("a\n", encoding="utf-8")
    leases.publish(store, run_id, "a", first.token, str(source), "a.md")
    done = leases.complete(store, run_id, "a", first.token)
    assert isinstance(done, Completed) and done.jobs["a"].status == "succeeded"
    assert store._conn.execute("SELECT status, executions FROM striatum.jobs WHERE "
                               "run_id = %s AND job_id = 'c'", (run_id,)).fetchone() == (
        "ready", 1)
    # The refused calls each wrote their refusal's audit row, the endings theirs.
    outcomes = [r[0] for r in store._conn.execute(
        "SELECT outcome FROM striatum.audit_log WHERE verb IN ('job complete', "
        "'job verdict') ORDER BY seq").fetchall()]
    assert outcomes == ["conflict", "lease_lost", "conflict", "ok", "ok"], outcomes


def test_a_wide_join_is_readied_in_one_statement_by_counting_the_rest_of_the_run(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """300 tasks and a join needing them all: too many needs to send, so each completion
    sends the rest of the run (the root) and the run's count of unsettled jobs decides;
    the join becomes ready with the last task, not before."""
    tasks = [{"id": f"t{i}", "lane": "w", "prompt": {"text": "x"}, "needs": ["root"]}
             for i in range(300)]
    run_id = start_run(store, write_workflow(tmp_path, {
        "name": "wide", "lanes": {"w": {"kind": "operator"}},
        "jobs": [{"id": "root", "lane": "w", "prompt": {"text": "x"}}, *tasks,
                 {"id": "join", "lane": "w", "prompt": {"text": "x"},
                  "needs": [t["id"] for t in tasks]}]}), repo)
    ended = []
    while (claim := leases.claim(store, run_id, owner="agent")) is not None:
        ended.append(type(leases.complete(store, run_id, claim.job, claim.token)))
        (join,) = store._conn.execute("SELECT status FROM striatum.jobs WHERE run_id = %s "
                                      "AND job_id = 'join'", (run_id,)).fetchone()
        assert join == ("ready" if len(ended) == 301 else "pending" if len(ended) < 301
                        else "succeeded"), (len(ended), join)
    assert ended == [Completed] * 301 + [Transition]
    assert doctor(store, str(repo), strict=True).ok
