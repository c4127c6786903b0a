"""``striatum dashboard --once`` against real runs: what an agent reads in each state of a
run, as text (no terminal: plain, no escapes) and as the verbs' documents (--json)."""

from __future__ import annotations

import json
from pathlib import Path

from striatum.dashboard_view import plain
from striatum.errors import EXIT_NOT_FOUND, EXIT_USAGE
from striatum.runtime import leases, runs
from striatum.runtime.config import open_store
from striatum.runtime.store import Store
from striatum.server.registry import VERBS, Session, invoke

from ..unit.test_cli import invoke as cli
from .helpers import Agent, example, start_run, to_checkpoint
from .worker_helpers import spawned, wait_for


def once(dsn: str, repo: Path, *args: str) -> str:
    done = cli("--dsn", dsn, "--repo", str(repo), "dashboard", "--once", *args)
    assert done.code == 0, done.err
    assert "\x1b" not in done.out
    return done.out


def line(text: str, *words: str) -> str:
    """The first line of ``text`` that holds every one of ``words``."""
    found = [row for row in text.splitlines() if all(word in row for word in words)]
    assert found, f"no line holds {words} in:\n{text}"
    return found[0]


def test_once_shows_each_state_of_a_run_and_the_inbox(store: Store, dsn: str, repo: Path,
                                                      tmp_path: Path) -> None:
    prepared = runs.prepare(store, example("code-change"), str(repo), overrides={})
    text = once(dsn, repo)
    assert f"▶  {prepared}  prepared" in text
    assert f"run {prepared} is prepared and not started" in text
    assert f"next: striatum run start {prepared}" in text
    assert "nothing waits for a human" in text

    runs.start(store, prepared)
    claim = leases.claim(store, prepared, owner="worker-7", lease_seconds=300)
    assert claim is not None and claim.job == "draft"
    text = once(dsn, repo)
    draft = line(text, "draft", "leased")
    assert "lease worker-7 (beat 0 s ago, expires in" in draft
    assert "wave 1" in text.splitlines()[text.splitlines().index(draft) - 1]
    assert "1 job(s) in a worker's hands (draft)" in text

    asked = to_checkpoint(store, repo, tmp_path)  # the newest run: selected by default
    text = once(dsn, repo)
    assert f"▶  {asked}  running" in text and f"   {prepared}  running" in text
    assert line(text, "decide ", "awaiting_decision", "lane principal")
    assert "inbox (1)" in text
    assert f"→ striatum checkpoint decide {asked} decide cancel|continue" in text
    # --run shows another run, the inbox still the whole queue
    chosen = once(dsn, repo, "--run", prepared)
    assert f"▶  {prepared}  running" in chosen and "inbox (1)" in chosen

    runs.decide(store, asked, "decide", "continue")
    Agent(store, asked, tmp_path).drive()
    text = once(dsn, repo)
    assert f"▶  {asked}  completed" in text and "nothing holds it" in text
    assert "chose continue" in text and "inbox (0)" in text


def test_once_json_prints_the_verbs_documents_that_the_text_is_drawn_from(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    asked = to_checkpoint(store, repo, tmp_path)
    printed = json.loads(once(dsn, repo, "--json"))
    assert printed["selected"] == asked
    assert printed["runs"][0]["repo"] == str(repo.resolve())
    assert line(plain(printed), "decide ", "awaiting_decision")
    session = Session(str(repo), lambda: open_store(dsn))
    try:
        for key, verb, params in [("runs", "run.list", {}), ("run", "run.status", {"run": asked}),
                                  ("plan", "run.plan", {"run": asked}),
                                  ("why", "run.why", {"run": asked}), ("inbox", "inbox", {})]:
            expected = invoke(VERBS[verb], params, session)
            if key == "runs":
                expected = expected["runs"]
            if key in ("why", "inbox"):  # as of the database clock's now
                assert printed[key].pop("at") <= expected.pop("at")
                for item in (*printed[key].get("items", []), *expected.get("items", [])):
                    item.pop("age_seconds")
            assert printed[key] == expected, key
    finally:
        session.close()
    assert printed["plan"]["waves"] == [["analysis"], ["review"], ["decide"], ["implement"]]


def test_once_refuses_json_without_once_and_a_run_that_is_not_there(
        store: Store, dsn: str, repo: Path) -> None:
    start_run(store, example("minimal"), repo)
    live_json = cli("--dsn", dsn, "--repo", str(repo), "dashboard", "--json")
    assert live_json.code == EXIT_USAGE and "--json prints one snapshot: it needs --once" \
        in live_json.err
    missing = cli("--dsn", dsn, "--repo", str(repo), "dashboard", "--once",
                  "--run", "20990101-000000-abcdef")
    assert missing.code == EXIT_NOT_FOUND, missing.err
    assert "Traceback" not in missing.err


def test_off_a_terminal_it_prints_a_snapshot_each_time_the_state_changes(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    with spawned(tmp_path / "procs") as procs:
        watching = procs.striatum("dashboard", dsn, repo, "dashboard", "--interval", "0.2")
        wait_for(lambda: "answer" in watching.out() and "ready" in watching.out(), 30,
                 lambda: f"the first snapshot: {watching.out()}\n{watching.err()}")
        claim = leases.claim(store, run_id, owner="worker-3", lease_seconds=300)
        assert claim is not None
        snapshots = wait_for(lambda: (s := watching.out().split("\n\nat "))[1:]
                             and "inbox (" in s[-1] and s, 30,
                             lambda: f"a second snapshot, whole: {watching.out()}")
        assert len(snapshots) == 2 and "lease worker-3" in snapshots[1]
        assert "lease worker-3" not in snapshots[0]
        assert "\x1b" not in watching.out()
        assert watching.popen.poll() is None  # it keeps watching until it is stopped

