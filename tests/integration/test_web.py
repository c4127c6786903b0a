"""The web face on a database of the test's own, through Starlette's test client: every
page for a run in each state, the Host check, the CSRF refusal and its audit row, each
action as a registry verb audited with the web's actor, and what a page never lets an
artifact put into it."""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from striatum.errors import LeaseLost
from striatum.runtime import leases, runs
from striatum.runtime.store import Store
from striatum.server.place import RuntimeDir
from striatum.web.app import create_app
from striatum.web.guard import allowed_hosts
from striatum.web.server import web_face

from .helpers import Agent, example, owner_connection, scripted, start_run, to_checkpoint

HOST, PORT = "127.0.0.1", 8766
BASE = f"http://{HOST}:{PORT}"


@pytest.fixture
def place(tmp_path: Path) -> RuntimeDir:
    return RuntimeDir(tmp_path / "home" / "run")


def client_for(dsn: str, place: RuntimeDir, *, mutations: bool) -> Iterator[TestClient]:
    with web_face(dsn, place, mutations=mutations) as face:
        face.actor = "web:tester@here"
        app = create_app(face, allowed_hosts(HOST, PORT))
        with TestClient(app, base_url=BASE) as client:
            yield client


@pytest.fixture
def web(dsn: str, place: RuntimeDir) -> Iterator[TestClient]:
    yield from client_for(dsn, place, mutations=True)


@pytest.fixture
def viewer_only(dsn: str, place: RuntimeDir) -> Iterator[TestClient]:
    yield from client_for(dsn, place, mutations=False)


def audit(dsn: str, after: int = 0) -> list[tuple[str, str, str]]:
    with owner_connection(dsn) as conn:
        rows = conn.execute("SELECT seq, actor, verb, outcome FROM striatum.audit_log "
                            "WHERE seq > %s ORDER BY seq", (after,)).fetchall()
    return [(r[1], r[2], r[3]) for r in rows]


def audit_head(dsn: str) -> int:
    with owner_connection(dsn) as conn:
        found = conn.execute("SELECT coalesce(max(seq), 0) FROM striatum.audit_log").fetchone()
    return int(found[0]) if found else 0


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "the page carries a CSRF token in its forms"
    return found.group(1)


def drawn_as(page: str, job: str) -> str:
    """The state the run's graph draws ``job`` in (Graphviz escapes a dash in ids)."""
    found = re.search(rf'<g id="job(?:-|&#45;){job}" class="[^"]*?s(?:-|&#45;)(\w+)"', page)
    assert found, f"the graph draws {job}"
    return found.group(1)


def every_page(client: TestClient, run_id: str) -> dict[str, Any]:
    pages = {"/": client.get("/"), "/inbox": client.get("/inbox"),
             "run": client.get(f"/runs/{run_id}"),
             "events": client.get(f"/runs/{run_id}/events")}
    view = client.get(f"/runs/{run_id}").text
    for job in re.findall(rf'href="/runs/{run_id}/jobs/([\w-]+)"', view):
        pages[f"job {job}"] = client.get(f"/runs/{run_id}/jobs/{job}")
    for name, response in pages.items():
        assert response.status_code == 200, (name, response.text[:500])
        assert "<main>" in response.text
    return pages


def test_every_page_renders_for_a_run_in_each_state(
        web: TestClient, store: Store, repo: Path, tmp_path: Path) -> None:
    prepared = runs.prepare(store, example("minimal"), str(repo), overrides={})
    assert "prepared" in every_page(web, prepared)["run"].text

    running = start_run(store, example("minimal"), repo)
    claim = leases.claim(store, running, owner="worker-7", lease_seconds=300)
    assert claim is not None
    pages = every_page(web, running)
    assert drawn_as(pages["run"].text, "answer") == "leased"
    assert "worker-7" in pages["job answer"].text and "by the database clock" in \
        pages["job answer"].text
    assert "Release its lease" in pages["run"].text

    asked = to_checkpoint(store, repo, tmp_path)
    pages = every_page(web, asked)
    assert 'name="choice" value="continue"' in pages["run"].text
    assert "checkpoint decide" in pages["/inbox"].text
    assert drawn_as(pages["run"].text, "decide") == "awaiting_decision"

    blocked = start_run(store, example("code-change"), repo)
    Agent(store, blocked, tmp_path,
          verdict=scripted({"check": ["needs_revision", "needs_revision"]})).drive()
    pages = every_page(web, blocked)
    assert "blocked" in pages["run"].text
    assert 'class="edge revision"' in pages["run"].text
    assert "0 of 1 revisions left" in pages["run"].text
    assert "needs_revision" in pages["run"].text  # the verdicts with their reasons

    done = start_run(store, example("minimal"), repo)
    Agent(store, done, tmp_path).drive()
    pages = every_page(web, done)
    assert drawn_as(pages["run"].text, "answer") == "succeeded"
    assert "answer.md" in pages["job answer"].text
    artifact = web.get(f"/runs/{done}/artifact", params={"path": "answer.md"})
    assert artifact.status_code == 200 and "sha256" in artifact.text

    cancelled = start_run(store, example("minimal"), repo)
    runs.cancel(store, cancelled, "not needed")
    assert "not needed" in every_page(web, cancelled)["run"].text

    failed = start_run(store, example("minimal"), repo)
    claim = leases.claim(store, failed, owner="worker-8")
    assert claim is not None
    leases.fail(store, failed, "answer", claim.token, "the tool broke", final=True)
    pages = every_page(web, failed)
    assert "the tool broke" in pages["run"].text and "run retry" in pages["run"].text
    assert drawn_as(pages["run"].text, "answer") == "failed"

    listed = web.get("/", params={"state": "blocked"}).text
    assert blocked in listed and done not in listed
    listed = web.get("/", params={"state": "failed"}).text  # run.list's status, not a page's
    assert failed in listed and blocked not in listed and cancelled not in listed
    assert done in web.get("/", params={"repo": str(repo)}).text
    assert done not in web.get("/", params={"repo": str(tmp_path / "elsewhere")}).text


def test_a_missing_run_is_a_404_page_that_says_what_to_do(web: TestClient) -> None:
    response = web.get("/runs/no-such-run")
    assert response.status_code == 404
    assert "no run" in response.text and "run list" in response.text


def test_a_foreign_host_header_is_refused(web: TestClient) -> None:
    for host in ("evil.example:8766", "127.0.0.1:9999", "localhost.evil.example:8766", ""):
        response = web.get("/", headers={"Host": host})
        assert response.status_code == 421, host
        assert "answers only to" in response.text
    assert web.get("/", headers={"Host": f"localhost:{PORT}"}).status_code == 200


def test_an_action_without_the_csrf_token_is_refused_and_audited(
        web: TestClient, store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    asked = to_checkpoint(store, repo, tmp_path)
    page = web.get(f"/runs/{asked}").text
    before = audit_head(dsn)
    for form in ({"choice": "continue"}, {"choice": "continue", "csrf": "0" * 64}):
        refused = web.post(f"/runs/{asked}/jobs/decide/decide", data=form,
                           follow_redirects=False)
        assert refused.status_code == 403
        assert "CSRF token" in refused.text
    assert audit(dsn, before) == [("web:tester@here web:none", "checkpoint.decide",
                                   "forbidden")] * 2
    assert runs.status(store, asked).run.status == "running"  # unchanged

    # A token in a link's query string is not a form's: refused alike.
    sneaked = web.post(f"/runs/{asked}/jobs/decide/decide?csrf={csrf_of(page)}",
                       data={"choice": "continue"}, follow_redirects=False)
    assert sneaked.status_code == 403

    # A script may send the token as a header instead of a form field.
    done = web.post(f"/runs/{asked}/jobs/decide/decide", data={"choice": "continue"},
                    headers={"X-CSRF-Token": csrf_of(page)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == f"/runs/{asked}"
    assert runs.status(store, asked).jobs[-1].status == "ready"
    # The core writes a change's row, in its transaction, naming its own verb.
    assert ("web:tester@here web:principal", "checkpoint decide", "ok") in audit(dsn, before)


def test_a_server_without_allow_mutations_only_shows_and_audits_each_refusal(
        viewer_only: TestClient, store: Store, dsn: str, repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    page = viewer_only.get(f"/runs/{run_id}").text
    assert "read only" in page and "Cancel this run" not in page
    before = audit_head(dsn)
    refused = viewer_only.post(f"/runs/{run_id}/cancel", data={"csrf": "0" * 64})
    assert refused.status_code == 403 and "--allow-mutations" in refused.text
    assert audit(dsn, before) == [("web:tester@here web:none", "run.cancel", "forbidden")]
    assert runs.status(store, run_id).run.status == "running"


def test_each_action_is_a_registry_verb_audited_with_the_web_actor(
        web: TestClient, store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = leases.claim(store, run_id, owner="worker-dead", lease_seconds=300)
    assert claim is not None
    token = csrf_of(web.get(f"/runs/{run_id}").text)
    before = audit_head(dsn)
    assert web.post(f"/runs/{run_id}/jobs/answer/unlease", data={"csrf": token},
                    follow_redirects=False).status_code == 303
    job = runs.status(store, run_id).jobs[0]
    assert job.status == "ready" and job.attempt == claim.attempt  # no attempt spent
    with pytest.raises(LeaseLost):  # the old holder's token is fenced off
        leases.heartbeat(store, run_id, "answer", claim.token, 60)
    assert web.post(f"/runs/{run_id}/cancel", data={"csrf": token},
                    follow_redirects=False).status_code == 303
    assert runs.status(store, run_id).run.status == "cancelled"

    blocked = start_run(store, example("code-change"), repo)
    Agent(store, blocked, tmp_path,
          verdict=scripted({"check": ["needs_revision", "needs_revision"]})).drive()
    assert web.post(f"/runs/{blocked}/resume",
                    data={"csrf": token, "decision": "revise", "reason": "one more go"},
                    follow_redirects=False).status_code == 303
    assert runs.status(store, blocked).run.status == "running"
    changes = [(actor, verb, outcome) for actor, verb, outcome in audit(dsn, before)
               if actor.endswith("web:principal")]
    assert changes == [("web:tester@here web:principal", verb, "ok")
                       for verb in ("job unlease", "run cancel", "run resume")]


def test_each_waiting_jobs_form_answers_that_job_not_the_one_the_run_is_blocked_on(
        web: TestClient, store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    from .test_judged_turns import two_lapsed

    run_id, first, second = two_lapsed(store, dsn, repo, tmp_path)
    page = web.get(f"/runs/{run_id}").text
    for job in (first, second):
        assert f'<input type="hidden" name="job" value="{job}">' in page
    assert web.post(f"/runs/{run_id}/resume",
                    data={"csrf": csrf_of(page), "job": second, "decision": "accept"},
                    follow_redirects=False).status_code == 303
    view = runs.status(store, run_id)
    assert (view.run.status, view.run.blocked_on) == ("blocked", first)
    assert {j.job_id: j.status for j in view.jobs}[second] == "succeeded"


def test_a_refused_action_that_the_core_refuses_shows_its_error(
        web: TestClient, store: Store, repo: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    token = csrf_of(web.get(f"/runs/{run_id}").text)
    answer = web.post(f"/runs/{run_id}/jobs/answer/unlease", data={"csrf": token})
    assert answer.status_code == 409 and "holds no lease" in answer.text


def test_an_artifact_is_shown_escaped_never_as_markup(
        web: TestClient, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    hostile = tmp_path / "answer.md"
    hostile.write_text("# Title\n\n<script>alert(1)</script> **bold** <img src=x "
                       "onerror=alert(2)>\n\n- [a](javascript:alert(3))\n")
    leases.publish(store, run_id, "answer", claim.token, str(hostile))
    page = web.get(f"/runs/{run_id}/artifact", params={"path": "answer.md"}).text
    assert "<script>alert" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<strong>bold</strong>" in page and "<h2>Title</h2>" in page
    assert 'href="javascript' not in page


def test_the_events_page_pages_and_reports_the_chain(
        web: TestClient, store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("code-change"), repo)
    Agent(store, run_id, tmp_path).drive()
    total = len(runs.events(store, run_id))
    assert total > 5
    first = web.get(f"/runs/{run_id}/events").text
    assert "Every row of this page hashes" in first
    history = web.get(f"/runs/{run_id}/events?before=4").text
    assert "Newest" in history
    with owner_connection(dsn) as conn:
        conn.execute("ALTER TABLE striatum.events DISABLE TRIGGER USER")
        conn.execute("UPDATE striatum.events SET payload = payload || ' ' WHERE run_id = %s "
                     "AND seq = (SELECT max(seq) FROM striatum.events WHERE run_id = %s)",
                     (run_id, run_id))
        conn.execute("ALTER TABLE striatum.events ENABLE TRIGGER USER")
    assert "do not match their hash" in web.get(f"/runs/{run_id}/events").text


def test_the_secret_the_server_makes_is_private_and_gone_when_it_stops(
        dsn: str, place: RuntimeDir) -> None:
    with web_face(dsn, place, mutations=True) as face:
        made = place.path / "web-token"
        assert made.read_text().strip() == face.secret
        assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert not made.exists()


def test_a_leased_jobs_page_tails_the_log_its_attempt_is_writing(
        web: TestClient, store: Store, repo: Path) -> None:
    from striatum.runtime.prompts import scratch
    from striatum.runtime.records import JobRow

    run_id = start_run(store, example("minimal"), repo)
    assert leases.claim(store, run_id, owner="worker-3", lease_seconds=300) is not None
    row = store.read(JobRow, "job_record", {"run": run_id, "job": "answer"})
    assert row is not None
    log = scratch(runs.get_run(store, run_id), row).log
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("x" * 20_000 + "\nthinking <about> it\n")
    page = web.get(f"/runs/{run_id}/jobs/answer").text
    assert "thinking &lt;about&gt; it" in page and "i0a0.log" in page
    assert "x" * 17_000 not in page  # a tail, not the whole log
    assert 'data-stream="/runs/' in page and "/jobs/answer/live?since=" in page


def test_the_live_streams_send_a_stale_page_its_new_part_and_end_when_done(
        web: TestClient, store: Store, repo: Path, tmp_path: Path) -> None:
    run_id = start_run(store, example("minimal"), repo)
    Agent(store, run_id, tmp_path).drive()
    for url in (f"/runs/{run_id}/live?since=0:running",
                f"/runs/{run_id}/jobs/answer/live?since=stale"):
        response = web.get(url)
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [block for block in response.text.split("\n\n") if block.strip()]
        assert len(events) == 1 and events[0].startswith("event: update\ndata: ")
        update = json.loads(events[0].split("data: ", 1)[1])
        assert update["done"] is True and "s-succeeded" in update["html"]
    missing = web.get("/runs/no-such-run/live").text
    assert missing.startswith("event: failed") and "not_found" in missing


def test_a_live_update_of_a_run_reads_its_status_once(
        web: TestClient, store: Store, repo: Path, tmp_path: Path, dsn: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The read that tells the stream the run moved is the one the update is drawn from
    (run.graph holds run.status's document and, asked, run.why's, from that one read of
    the status); so is the page's first render."""
    from striatum.runtime import runs, views, why

    reads: list[str] = []

    def status(store: Store, run_id: str) -> runs.RunView:
        reads.append(run_id)
        return runs.status(store, run_id)

    monkeypatch.setattr(views, "status", status)
    monkeypatch.setattr(why, "status", status)
    run_id = start_run(store, example("minimal"), repo)
    Agent(store, run_id, tmp_path).drive()
    before = audit_head(dsn)
    update = web.get(f"/runs/{run_id}/live?since=0:running").text
    assert update.startswith("event: update") and "s-succeeded" in update
    assert f"run {run_id} is done" in update  # run.why's summary
    assert [verb for _, verb, _ in audit(dsn, before)] == ["run.graph"]
    assert reads == [run_id]
    before = audit_head(dsn)
    page = web.get(f"/runs/{run_id}").text
    assert "s-succeeded" in page and f"run {run_id} is done" in page
    assert [verb for _, verb, _ in audit(dsn, before)] == ["run.graph"]
    assert reads == [run_id, run_id]
    # run.why's document, within run.graph's as its schema says.
    import jsonschema

    from striatum.server.registry import VERBS

    drawn = views.run_graph(store, run_id, why=True)
    jsonschema.validate(drawn, VERBS["run.graph"].result)
    assert {**drawn["why"], "at": ""} == {**why.explain(store, run_id), "at": ""}
    assert "why" not in views.run_graph(store, run_id)


def test_with_a_daemon_running_the_csrf_key_is_its_principal_token(
        dsn: str, place: RuntimeDir) -> None:
    from .test_daemon import serve as serve_daemon

    daemon, thread = serve_daemon(dsn, place)
    try:
        with web_face(dsn, place, mutations=True) as face:
            assert face.secret == place.client_token.read_text().strip()
            assert not (place.path / "web-token").exists()
    finally:
        daemon.stop()
        thread.join(60)
