"""Each attempt a worker runs chains who ran it before its lane starts: the lane, the
absolute path its program resolved to on the worker's machine, and the model its command
names. ``job.show`` and the run's events show it, doctor verifies it, and a corpus bundle's
in-toto statement names the accepting attempt's executable and model, which ``corpus
verify`` holds to that chained event; a history recorded without such events (an
operator's attempts before they chained one) still verifies. An operator's own claim
chains one too: who claimed it, and a model only as the operator stated it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from striatum.canonical import canonical_json
from striatum.corpus import bundle
from striatum.corpus.export import export
from striatum.corpus.verify import verify
from striatum.errors import BundleInvalid, StoreError
from striatum.runtime import leases, runs
from striatum.runtime.config import open_store
from striatum.runtime.doctor import doctor
from striatum.runtime.starts import record_start
from striatum.runtime.store import Store
from striatum.runtime.views import job_detail
from striatum.server.registry import VERBS, Session, invoke

from .helpers import Agent, example, owner_connection, start_run
from .worker_helpers import FAKE_AGENT, events_of, fake, job_row, rows, work, write_workflow
from .worker_helpers import start_run as start_with_lanes

CODER_MODEL = "gpt-5"
REVIEWER_MODEL = "claude-opus-4-1"


def _on_path(folder: Path, name: str) -> Path:
    """A program ``name`` in ``folder`` that runs the fake agent with its arguments."""
    folder.mkdir(parents=True, exist_ok=True)
    program = folder / name
    program.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AGENT}" "$@"\n',
                       encoding="utf-8")
    program.chmod(0o755)
    return program


@pytest.fixture
def worked(store: Store, dsn: str, repo: Path, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A draft revised once by a review, worked by a worker: the coder's program found
    through PATH by name, the reviewer's named by its absolute path."""
    coder = _on_path(tmp_path / "bin", "fake-coder")
    monkeypatch.setenv("PATH", f"{coder.parent}{os.pathsep}{os.environ['PATH']}")
    workflow = write_workflow(tmp_path / "flow", {
        "name": "starts",
        "lanes": {"coder": {"command": ["fake-coder", "work", "-m", CODER_MODEL]},
                  "reviewer": {"command": fake("review", "--revise-once",
                                               "--model", REVIEWER_MODEL)}},
        "jobs": [{"id": "draft", "lane": "coder", "prompt": {"text": "Write draft.md."},
                  "produces": ["draft.md"]},
                 {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                  "prompt": {"text": "Review draft.md."}, "consumes": ["draft.md"],
                  "revise": {"target": "draft", "max": 1}}]})
    run_id = start_with_lanes(store, workflow, repo)
    outcomes = work(dsn, run_id, until_run_ends=True)
    assert [(o.job, o.status) for o in outcomes] == [
        ("draft", "succeeded"), ("check", "needs_revision"), ("draft", "succeeded"),
        ("check", "accept")]
    return run_id, coder


def test_every_attempt_chains_its_executable_and_model_before_its_lane_runs(
        store: Store, repo: Path, worked: tuple[str, Path]) -> None:
    run_id, coder = worked
    expected = {"draft": {"lane": "coder", "executable": str(coder), "model": CODER_MODEL},
                "check": {"lane": "reviewer", "executable": sys.executable,
                          "model": REVIEWER_MODEL}}
    claims = events_of(store, run_id, kind="job.claim")
    starts = events_of(store, run_id, kind="attempt.start")
    assert len(claims) == len(starts) == 4
    for claim, start in zip(claims, starts, strict=True):
        # Each start follows its claim, at the same fence, the job still leased.
        assert start["seq"] > claim["seq"] and start["job"] == claim["job"]
        assert start["payload"]["state"] == claim["payload"]["state"]
        assert start["payload"]["data"] == expected[claim["job"]]
    assert Path(expected["draft"]["executable"]).is_absolute()
    report = doctor(store, str(repo), strict=True)
    assert report.ok, report.to_json()
    shown = job_detail(store, run_id, "check")["leases"]
    assert [(lease["executable"], lease["model"]) for lease in shown] == [
        (sys.executable, REVIEWER_MODEL)] * 2


def test_once_the_worker_knows_its_runs_lanes_each_start_is_chained_by_the_claim(
        store: Store, worked: tuple[str, Path]) -> None:
    """The first claim tells the worker the run's lanes; from then on each claim's own
    statement chains the attempt's start (no transaction, no audit row of its own), in
    the text the worker would have chained."""
    run_id, _ = worked
    chained = rows(store, "SELECT seq, job_id, type, payload FROM striatum.events "
                          "WHERE run_id = %s AND type IN ('job.claim', 'attempt.start') "
                          "ORDER BY seq", run_id)
    pairs = list(zip(chained[::2], chained[1::2], strict=True))
    assert [(claim["type"], start["type"]) for claim, start in pairs] == [
        ("job.claim", "attempt.start")] * 4
    with_claim = [start for claim, start in pairs
                  if start["seq"] == claim["seq"] + 1
                  and json.loads(start["payload"])["at"] == json.loads(claim["payload"])["at"]]
    # Both reviews' lanes name their program by its absolute path: chained with the claim.
    assert {start["job_id"] for start in with_claim} >= {"check"}
    assert len(with_claim) >= 2
    for start in with_claim:
        assert canonical_json(json.loads(start["payload"])).decode() == start["payload"]
    own = rows(store, "SELECT count(*) AS n FROM striatum.audit_log WHERE verb = %s",
               "attempt start")
    assert own[0]["n"] == 4 - len(with_claim)


def test_the_statement_names_the_accepting_attempt_and_verify_holds_it_to_the_record(
        store: Store, worked: tuple[str, Path], tmp_path: Path) -> None:
    run_id, _ = worked
    export(store, tmp_path / "redacted", run=run_id)  # paths made relative: still verifies
    assert verify(tmp_path / "redacted").statements == 1
    out = tmp_path / "bundle"
    export(store, out, run=run_id, paths=False)
    assert verify(out).statements == 1
    lines = (out / bundle.STATEMENTS).read_bytes().splitlines(keepends=True)
    (only,) = [json.loads(line) for line in lines]
    assert only["predicate"]["reviewer"] == {
        "lane": "reviewer", "kind": "command", "executable": sys.executable,
        "model": REVIEWER_MODEL, "from": "attempt"}
    only["predicate"]["reviewer"]["model"] = "gpt-5"  # a statement made to say another judge
    (out / bundle.STATEMENTS).write_bytes(bundle.line(only))
    _relist(out)
    with pytest.raises(BundleInvalid) as caught:
        verify(out)
    assert (caught.value.details["file"], caught.value.details["line"]) == (
        bundle.STATEMENTS, 1)
    assert "is not what its chained attempt.start event records" in caught.value.message


def test_a_history_without_attempt_starts_still_verifies_and_says_where_its_reviewer_is_from(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("review"), repo)
    Agent(store, run_id, tmp_path).drive()  # an operator: no attempt chains a start
    assert events_of(store, run_id, kind="attempt.start") == []
    assert doctor(store, str(repo), strict=True).ok
    out = tmp_path / "bundle"
    export(store, out, run=run_id)
    assert verify(out).statements >= 1
    for line in (out / bundle.STATEMENTS).read_bytes().splitlines():
        assert json.loads(line)["predicate"]["reviewer"]["from"] == "workflow"


def _relist(folder: Path) -> None:
    from .test_corpus import relist

    relist(folder)


def operator_review(directory: Path) -> str:
    """draft by one operator lane, reviewed by another: no worker runs either."""
    return write_workflow(directory, {
        "name": "operators",
        "lanes": {"coder": {"kind": "operator"}, "reviewer": {"kind": "operator"}},
        "jobs": [{"id": "draft", "lane": "coder", "prompt": {"text": "Write draft.md."},
                  "produces": ["draft.md"]},
                 {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
                  "prompt": {"text": "Review draft.md."}, "consumes": ["draft.md"]}]})


def test_an_operators_claim_chains_who_claimed_it_and_a_model_only_as_stated(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_with_lanes(store, operator_review(tmp_path / "flow"), repo)
    agent = Agent(store, run_id, tmp_path)
    # The coder states its model through the registry's verb (the CLI's and MCP's face).
    session = Session(str(repo), lambda: open_store(dsn))
    try:
        document = invoke(VERBS["job.claim"], {"run": run_id, "owner": "codex-session",
                                                "model": CODER_MODEL}, session)
    finally:
        session.close()
    assert document["job"] == "draft"
    written = tmp_path / "draft.md"
    written.write_text("# the draft\n", encoding="utf-8")
    leases.publish(store, run_id, "draft", document["lease"], str(written), "draft.md")
    leases.complete(store, run_id, "draft", document["lease"])
    # The reviewer states none: its model is unknown, and the record says so.
    taken = leases.claim_next(store, run_id, owner="claude-session", lane=None)
    assert isinstance(taken, leases.Claim) and taken.job == "check"
    agent.act(taken)
    assert runs.status(store, run_id).run.status == "completed"

    claims = events_of(store, run_id, kind="job.claim")
    starts = events_of(store, run_id, kind="attempt.start")
    assert [s["job"] for s in starts] == [c["job"] for c in claims] == ["draft", "check"]
    for claim, start in zip(claims, starts, strict=True):
        assert start["seq"] > claim["seq"]
        assert start["payload"]["state"] == claim["payload"]["state"]
    assert [s["payload"]["data"] for s in starts] == [
        {"lane": "coder", "executable": None, "model": CODER_MODEL, "by": "operator",
         "owner": "codex-session"},
        {"lane": "reviewer", "executable": None, "model": None, "by": "operator",
         "owner": "claude-session"}]
    shown = {job: job_detail(store, run_id, job)["leases"] for job in ("draft", "check")}
    assert [(lease["started_by"], lease["owner"], lease["model"], lease["executable"])
            for job in ("draft", "check") for lease in shown[job]] == [
        ("operator", "codex-session", CODER_MODEL, None),
        ("operator", "claude-session", None, None)]
    assert doctor(store, str(repo), strict=True).ok

    out = tmp_path / "bundle"
    export(store, out, run=run_id)
    assert verify(out).statements == 1
    (only,) = [json.loads(line) for line in (out / bundle.STATEMENTS).read_bytes().splitlines()]
    assert only["predicate"]["reviewer"] == {
        "lane": "reviewer", "kind": "operator", "executable": None, "model": None,
        "from": "attempt", "by": "operator", "owner": "claude-session"}


def test_an_operators_start_is_chained_by_the_claims_own_statement(
        store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_with_lanes(store, operator_review(tmp_path / "flow"), repo)
    taken = leases.claim_next(store, run_id, owner="codex-session", lane=None,
                              model=CODER_MODEL)
    assert isinstance(taken, leases.Claim)
    (claim,) = events_of(store, run_id, kind="job.claim")
    (start,) = events_of(store, run_id, kind="attempt.start")
    assert start["seq"] == claim["seq"] + 1
    assert start["payload"]["at"] == claim["payload"]["at"]  # one transaction's clock
    chained = rows(store, "SELECT payload FROM striatum.events WHERE run_id = %s AND seq = %s",
                   run_id, start["seq"])[0]["payload"]
    assert chained == canonical_json(json.loads(chained)).decode()  # as Python writes it
    assert start["payload"]["data"] == {"lane": "coder", "executable": None,
                                        "model": CODER_MODEL, "by": "operator",
                                        "owner": "codex-session"}
    # No transaction of its own: the claim's audit row is the only one.
    audited = rows(store, "SELECT verb FROM striatum.audit_log ORDER BY seq DESC LIMIT 1")
    assert audited == [{"verb": "job claim"}]
    assert doctor(store, str(repo), strict=True).ok


def test_an_operators_claim_whose_start_cannot_be_chained_leaves_the_job_to_claim_again(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    """The claim and its start commit together or not at all: a start the database
    refuses leaves no lease that nobody holds the token of."""
    run_id = start_with_lanes(store, operator_review(tmp_path / "flow"), repo)
    with owner_connection(dsn) as owner:
        owner.execute("CREATE FUNCTION public.refuse_starts() RETURNS trigger "
                      "LANGUAGE plpgsql AS $$ BEGIN IF NEW.type = 'attempt.start' THEN "
                      "RAISE EXCEPTION 'no start today'; END IF; RETURN NEW; END $$")
        owner.execute("CREATE TRIGGER refuse_starts BEFORE INSERT ON striatum.events "
                      "FOR EACH ROW EXECUTE FUNCTION public.refuse_starts()")
        with pytest.raises(StoreError, match="no start today"):
            leases.claim_next(store, run_id, owner="codex-session", lane=None)
        assert (job_row(store, run_id, "draft")["status"],
                job_row(store, run_id, "draft")["fence"]) == ("ready", 0)
        assert events_of(store, run_id, kind="job.claim") == []
        owner.execute("DROP TRIGGER refuse_starts ON striatum.events")
    # Claimed again at once, the same job: nothing waits for a lease to expire.
    taken = leases.claim_next(store, run_id, owner="codex-session", lane=None)
    assert isinstance(taken, leases.Claim) and (taken.job, taken.fence) == ("draft", 1)
    assert [s["job"] for s in events_of(store, run_id, kind="attempt.start")] == ["draft"]
    assert doctor(store, str(repo), strict=True).ok


def test_of_two_starts_at_one_fence_job_show_gives_the_later(
        store: Store, repo: Path, tmp_path: Path) -> None:
    """A worker chains a second start when the lane resolves otherwise as it starts than
    at the claim: the later one holds."""
    run_id = start_with_lanes(store, operator_review(tmp_path / "flow"), repo)
    taken = leases.claim_next(store, run_id, owner="codex-session", lane=None,
                              model=CODER_MODEL)
    assert isinstance(taken, leases.Claim)
    record_start(store, run_id, taken.job, taken.token,
                 {"lane": "coder", "executable": sys.executable, "model": "o3"})
    starts = events_of(store, run_id, kind="attempt.start")
    assert [s["payload"]["state"]["fence"] for s in starts] == [taken.fence] * 2
    (lease,) = job_detail(store, run_id, taken.job)["leases"]
    assert (lease["fence"], lease["started_by"], lease["executable"], lease["model"]) == (
        taken.fence, "worker", sys.executable, "o3")
