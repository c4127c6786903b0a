"""The daemon in this process (a thread), on a database of the test's own, through its
real socket and its real client: the runtime folder's modes, what each capability may
call, the audit row of every call, bad requests, many clients at once, and a stop
that lets the calls in progress finish."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from striatum.errors import DaemonUnavailable
from striatum.server import protocol
from striatum.server.client import Client, RemoteError
from striatum.server.daemon import Daemon
from striatum.server.place import RuntimeDir, running
from striatum.server.registry import VERBS

from .helpers import example, expire_lease, fan_out_workflow, owner_connection


@dataclass
class Served:
    daemon: Daemon
    place: RuntimeDir
    thread: threading.Thread
    dsn: str
    repo: Path

    def client(self, holding: str = "principal", **more: Any) -> Client:
        return Client(self.place, holding=holding, actor="tester",  # type: ignore[arg-type]
                      repo=str(self.repo), cwd=str(self.repo), **more)

    def call(self, method: str, params: dict[str, Any] | None = None,
             holding: str = "principal") -> Any:
        with self.client(holding) as client:
            return client.call(method, params)

    def refusal(self, method: str, params: dict[str, Any] | None = None,
                holding: str = "principal") -> RemoteError:
        with pytest.raises(RemoteError) as refused:
            self.call(method, params, holding)
        return refused.value

    def raw(self, data: bytes) -> list[dict[str, Any]]:
        """Send bytes as they are; the answers until the daemon or the client hangs up."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(30)
            sock.connect(str(self.place.socket))
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            return [json.loads(line) for line in sock.makefile("rb")]

    def audit(self) -> list[tuple[str, str, str]]:
        with owner_connection(self.dsn) as conn:
            return [(r[0], r[1], r[2]) for r in conn.execute(
                "SELECT actor, verb, outcome FROM striatum.audit_log ORDER BY seq")]


def serve(dsn: str, place: RuntimeDir, connections: int = 4, **limits: Any
          ) -> tuple[Daemon, threading.Thread]:
    daemon = Daemon(dsn, place, connections=connections, **limits)
    ready = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            daemon.serve(ready.set)
        except BaseException as exc:  # noqa: BLE001 - handed to the test, which fails
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(60) and not failed, failed
    return daemon, thread


@pytest.fixture
def served(dsn: str, tmp_path: Path, repo: Path) -> Iterator[Served]:
    place = RuntimeDir(tmp_path / "h" / "run")
    daemon, thread = serve(dsn, place)
    yield Served(daemon, place, thread, dsn, repo)
    daemon.stop()
    thread.join(60)
    assert not thread.is_alive()


def prepared(served: Served, workflow: str = "minimal") -> str:
    run: str = served.call("run.prepare", {"workflow": example(workflow), "start": True})[
        "run_id"]
    return run


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_runtime_folder_is_0700_and_its_tokens_and_socket_0600(served: Served) -> None:
    place = served.place
    assert mode(place.path) == 0o700
    for secret in (place.client_token, place.viewer_token, place.socket, place.pidfile):
        assert mode(secret) == 0o600, secret
    assert place.client_token.read_text() != place.viewer_token.read_text()
    assert running(place) == os.getpid()
    status = served.call("server.status")
    assert status["face"] == "daemon" and status["pid"] == os.getpid()
    assert status["socket"] == str(place.socket) and "dbname=" in status["database"]


def test_a_folder_left_wide_open_is_closed_again_at_start(dsn: str, tmp_path: Path) -> None:
    place = RuntimeDir(tmp_path / "h" / "run")
    place.path.mkdir(parents=True, mode=0o755)
    os.chmod(place.path, 0o755)
    daemon, thread = serve(dsn, place)
    try:
        assert mode(place.path) == 0o700
    finally:
        daemon.stop()
        thread.join(60)
    # A clean stop takes the socket and the tokens away; the pid file stays, unlocked.
    assert not place.socket.exists() and not place.client_token.exists()
    assert running(place) is None


def test_the_principal_may_call_every_verb(served: Served) -> None:
    run = prepared(served)
    claim = served.call("job.claim", {"run": run})
    held = {"run": run, "job": claim["job"], "lease": claim["lease"]}
    produced = served.repo / "answer.md"
    produced.write_text("forty-two\n")
    wf = example("minimal")
    params: dict[str, dict[str, Any]] = {
        "run.prepare": {"workflow": wf}, "run.start": {"run": run},
        "run.status": {"run": run}, "run.resolve": {"run": run[-6:]}, "run.list": {},
        "run.events": {"run": run},
        "run.cancel": {"run": run}, "run.resume": {"run": run, "decision": "accept"},
        "run.retry": {"run": run},
        "run.plan": {"run": run}, "run.waiting": {"run": run}, "run.why": {"run": run},
        "inbox": {}, "stats": {},
        "run.graph": {"run": run}, "run.history": {"run": run},
        "run.artifact": {"run": run, "path": "answer.md"},
        "job.show": {"run": run, "job": "answer"},
        "job.unlease": {"run": run, "job": "answer"},
        "job.claim": {"run": run},
        "job.heartbeat": held, "job.publish": {**held, "artifact": str(produced)},
        "job.verdict": {**held, "outcome": "accept", "reason": "fine"},
        "job.complete": held, "job.release": held, "job.fail": {**held, "reason": "no"},
        "job.escalate": {**held, "reason": "ask"},
        "checkpoint.decide": {"run": run, "job": claim["job"], "choice": "go"},
        "workflow.validate": {"file": wf}, "workflow.lint": {"file": wf},
        "workflow.plan": {"file": wf}, "doctor": {}, "server.status": {}}
    assert set(params) == set(VERBS)
    order = ["job.heartbeat", "job.publish", "job.complete", *[
        name for name in params if name not in ("job.heartbeat", "job.publish",
                                                "job.complete", "run.cancel")], "run.cancel"]
    answered = {}
    for name in order:
        try:
            served.call(name, params[name])
            answered[name] = "ok"
        except RemoteError as exc:
            # The core may say no (the job is done, the run is not blocked); the daemon
            # never refuses the principal a verb, nor its parameters.
            assert exc.code not in ("forbidden", "usage"), (name, exc.message)
            answered[name] = exc.code
    assert answered["job.complete"] == "ok" and answered["run.prepare"] == "ok"
    assert served.call("run.status", {"run": run})["status"] == "completed"


def test_the_viewer_reads_and_is_refused_every_change_each_refusal_audited(
        served: Served) -> None:
    run = prepared(served)
    assert served.call("run.status", {"run": run}, "viewer")["run"] == run
    assert served.call("workflow.validate", {"file": example("minimal")}, "viewer")["valid"]
    before = len(served.audit())
    mutating = [name for name, verb in VERBS.items() if verb.mutates]
    args = {"run": run, "job": "answer", "lease": "1-" + "0" * 32, "workflow":
            example("minimal"), "decision": "accept", "outcome": "accept", "reason": "r",
            "artifact": "x.md", "choice": "go", "path": "x.md"}
    for name in mutating:
        wanted = {key: args[key] for key in VERBS[name].params["required"]}
        refused = served.refusal(name, wanted, "viewer")
        if VERBS[name].capability == "lease":
            # A lease verb is open to whoever holds the live lease: this token is none.
            assert refused.code == "lease_lost", name
        else:
            assert refused.code == "forbidden" and refused.exit_code == 9, name
        assert refused.rpc_code == protocol.FORBIDDEN
    rows = served.audit()[before:]
    assert [(verb, outcome) for _, verb, outcome in rows] == [
        (name, "lease_lost" if VERBS[name].capability == "lease" else "forbidden")
        for name in mutating]
    assert all(actor == "tester daemon:viewer" for actor, _, _ in rows)
    assert served.call("run.status", {"run": run})["status"] == "running"  # unchanged


def test_a_lease_token_acts_on_its_own_job_alone_and_only_while_the_lease_lives(
        served: Served) -> None:
    mine, theirs = prepared(served), prepared(served)
    claim = served.call("job.claim", {"run": mine})
    other = served.call("job.claim", {"run": theirs})
    (served.repo / "answer.md").write_text("mine\n")
    lane = {"run": mine, "job": claim["job"], "lease": claim["lease"]}
    with served.client("none") as agent:  # a lane: the socket and its lease, no token
        for verb, params in [
                ("job.complete", {**lane, "run": theirs}),  # the other run's job
                ("job.complete", {**lane, "lease": other["lease"], "run": mine}),
                ("run.status", {"run": mine}), ("run.cancel", {"run": theirs}),
                ("job.claim", {"run": theirs})]:
            with pytest.raises(RemoteError) as refused:
                agent.call(verb, params)
            assert refused.value.rpc_code == protocol.FORBIDDEN, verb
            assert refused.value.code in ("lease_lost", "forbidden"), verb
        # Publishing a file of the striatum home is refused to all but the principal.
        with pytest.raises(RemoteError) as home:
            agent.call("job.publish", {**lane, "artifact": str(served.place.client_token)})
        assert home.value.code == "forbidden" and "striatum home" in home.value.message
        assert agent.call("job.heartbeat", lane)["job"] == claim["job"]
        agent.call("job.publish", {**lane, "artifact": "answer.md"})
        assert agent.call("job.complete", lane)["status"] == "succeeded"
        with pytest.raises(RemoteError) as ended:
            agent.call("job.heartbeat", lane)  # the lease ended with the job
        assert ended.value.code == "lease_lost" and ended.value.exit_code == 5
    expire_lease(served.dsn, theirs, other["job"])
    refused = served.refusal("job.complete", {"run": theirs, "job": other["job"],
                                              "lease": other["lease"]}, "none")
    assert refused.code == "lease_lost" and "expired" in refused.message
    assert served.call("run.status", {"run": theirs})["jobs"][0]["status"] == "leased"
    rows = [(actor.split()[-1], verb, outcome) for actor, verb, outcome in served.audit()
            if actor.startswith("tester daemon:") and actor != "tester daemon:principal"]
    assert rows == [
        ("daemon:none", "job.complete", "lease_lost"),
        ("daemon:none", "job.complete", "lease_lost"),
        ("daemon:none", "run.status", "forbidden"), ("daemon:none", "run.cancel", "forbidden"),
        ("daemon:none", "job.claim", "forbidden"),
        ("daemon:lease", "job.publish", "forbidden"),  # the token file: its lease was live
        ("daemon:lease", "job heartbeat", "ok"), ("daemon:lease", "job publish", "ok"),
        ("daemon:lease", "job complete", "ok"),
        ("daemon:none", "job.heartbeat", "lease_lost"),
        ("daemon:none", "job.complete", "lease_lost")]


def test_bad_requests_get_json_rpc_errors_and_the_daemon_stays_up(served: Served) -> None:
    def one(line: bytes) -> dict[str, Any]:
        answers = served.raw(line + b"\n")
        assert len(answers) == 1, answers
        return answers[0]

    cases = {
        b"{not json": protocol.PARSE_ERROR,
        b"\xff\xfe": protocol.PARSE_ERROR,
        b"[1, 2]": protocol.INVALID_REQUEST,
        b"42": protocol.INVALID_REQUEST,
        b'{"id": 1, "method": "run.list"}': protocol.INVALID_REQUEST,
        b'{"jsonrpc": "2.0", "id": 1}': protocol.INVALID_REQUEST,
        b'{"jsonrpc": "2.0", "id": 1, "method": "run.list", "striatum": {"protocol": 2}}':
            protocol.INVALID_REQUEST,
        b'{"jsonrpc": "2.0", "id": 1, "method": "no.such"}': protocol.METHOD_NOT_FOUND,
        b'{"jsonrpc": "2.0", "id": 1, "method": "workflow.plan", "params": {"file": 1.5}}':
            protocol.INVALID_PARAMS,
        b'{"jsonrpc": "2.0", "id": 1, "method": "workflow.plan", "params": [1]}':
            protocol.INVALID_PARAMS,
    }
    for line, code in cases.items():
        answer = one(line)
        assert answer["jsonrpc"] == "2.0" and answer["error"]["code"] == code, line
        assert answer["error"]["data"]["code"] == "usage" and answer["error"]["data"]["hint"]
        assert answer["striatum"] == {"protocol": protocol.PROTOCOL}
    too_long = b'{"jsonrpc": "2.0", "id": 1, "method": "' + b"x" * protocol.MAX_FRAME + b'"}'
    answer = one(too_long)
    assert answer["error"]["code"] == protocol.INVALID_REQUEST
    assert "longer than" in answer["error"]["message"]
    # Several requests on one connection, a notification among them (run, not answered).
    answers = served.raw(
        b'{"jsonrpc": "2.0", "id": "a", "method": "server.status", "striatum": {"token": "'
        + served.place.client_token.read_text().strip().encode() + b'"}}\n'
        b'{"jsonrpc": "2.0", "method": "server.status"}\n'
        b'{"jsonrpc": "2.0", "id": "b", "method": "server.status"}\n')
    assert [a["id"] for a in answers] == ["a", "b"]
    assert answers[0]["result"]["face"] == "daemon" and answers[1]["error"]["code"] == -32001
    assert served.call("server.status")["pid"] == os.getpid()
    # A lone surrogate (as a JSON escape) comes back as the same escape, in UTF-8.
    answer = one(b'{"jsonrpc": "2.0", "id": 1, "method": "\\udc80"}')
    assert answer["error"]["code"] == protocol.METHOD_NOT_FOUND
    nested = b'{"jsonrpc": "2.0", "id": 1, "params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert one(nested)["error"]["code"] == protocol.PARSE_ERROR


def test_an_answer_longer_than_a_request_may_be_reaches_the_client(served: Served) -> None:
    from striatum.runtime import leases
    from striatum.runtime.store import Store

    run = prepared(served)
    claim = served.call("job.claim", {"run": run})
    store = Store.connect(served.dsn)
    try:
        leases.fail(store, run, claim["job"], claim["lease"], "x" * protocol.MAX_FRAME)
    finally:
        store.close()
    events = served.call("run.events", {"run": run})["events"]
    assert any("x" * protocol.MAX_FRAME in json.dumps(e["payload"]) for e in events)


def test_silent_connections_are_closed_and_those_past_the_limit_told_so(
        dsn: str, tmp_path: Path) -> None:
    place = RuntimeDir(tmp_path / "h" / "run")
    daemon, thread = serve(dsn, place, idle_seconds=1.0, max_connections=5)
    silent = [socket.socket(socket.AF_UNIX) for _ in range(5)]
    try:
        for sock in silent:
            sock.settimeout(30)
            sock.connect(str(place.socket))
        time.sleep(0.2)  # the daemon has taken them all
        with socket.socket(socket.AF_UNIX) as extra:
            extra.settimeout(30)
            extra.connect(str(place.socket))
            answer = json.loads(extra.makefile("rb").readline())
        assert answer["error"]["data"]["code"] == "daemon_unavailable"
        assert "5 connections at most" in answer["error"]["message"]
        for sock in silent:  # closed by the daemon once idle: end of stream, no answer
            assert sock.recv(1) == b""
        with Client(place) as client:  # and then served again
            assert client.call("server.status")["face"] == "daemon"
    finally:
        for sock in silent:
            sock.close()
        daemon.stop()
        thread.join(60)


def test_twenty_clients_at_once_are_all_served(served: Served) -> None:
    run = prepared(served)

    def client(n: int) -> list[str]:
        with served.client("viewer" if n % 2 else "principal") as c:
            return [c.call("run.status", {"run": run})["status"] for _ in range(10)]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(client, range(20)))
    assert answers == [["running"] * 10] * 20
    assert sum(1 for _, verb, _ in served.audit() if verb == "run.status") == 200


def test_sixteen_lanes_at_once_each_finish_one_job_once_and_the_record_verifies(
        served: Served, tmp_path: Path) -> None:
    workflow = fan_out_workflow(tmp_path / "wf", 16)
    run = served.call("run.prepare", {"workflow": workflow, "start": True})["run_id"]
    seed = served.call("job.claim", {"run": run})
    (served.repo / "seed.md").write_text("seed\n")
    held = {"run": run, "job": seed["job"], "lease": seed["lease"]}
    served.call("job.publish", {**held, "artifact": "seed.md"})
    served.call("job.complete", held)

    def lane(n: int) -> str:
        claim = served.call("job.claim", {"run": run, "lane": "worker", "owner": f"lane{n}"})
        job = claim["job"]
        (served.repo / f"{job}.md").write_text(f"{job} by lane {n}\n")
        mine = {"run": run, "job": job, "lease": claim["lease"]}
        with served.client("none") as agent:
            agent.call("job.publish", {**mine, "artifact": f"{job}.md"})
            return str(agent.call("job.complete", mine)["status"])

    with ThreadPoolExecutor(16) as pool:
        assert list(pool.map(lane, range(16))) == ["succeeded"] * 16
    jobs = {j["job"]: j for j in served.call("run.status", {"run": run})["jobs"]}
    assert all(jobs[f"t{i:02d}"]["status"] == "succeeded" for i in range(16))
    assert jobs["gate"]["status"] == "ready"
    claims = [e["job"] for e in served.call("run.events", {"run": run})["events"]
              if e["type"] == "job.claim"]
    assert sorted(claims) == sorted(["seed", *[f"t{i:02d}" for i in range(16)]])
    assert served.call("doctor", {"anchors": False})["ok"] is True


def test_a_stop_lets_the_calls_in_progress_finish(served: Served) -> None:
    run = prepared(served)
    claim = served.call("job.claim", {"run": run})
    (served.repo / "answer.md").write_text("done\n")
    lane = {"run": run, "job": claim["job"], "lease": claim["lease"]}
    served.call("job.publish", {**lane, "artifact": "answer.md"}, "none")
    answers: list[Any] = []
    with owner_connection(served.dsn) as blocker:
        # Hold the job's row: the completion, once in the daemon, waits for it.
        blocker.execute("BEGIN")
        blocker.execute("SELECT 1 FROM striatum.jobs WHERE run_id = %s FOR UPDATE", (run,))
        calling = threading.Thread(target=lambda: answers.append(
            served.call("job.complete", lane, "none")))
        calling.start()
        deadline = time.monotonic() + 30
        while not _waiting_on_lock(served.dsn):
            assert time.monotonic() < deadline, "the completion never reached the database"
            time.sleep(0.05)
        served.daemon.stop()
        while served.place.socket.exists():
            assert time.monotonic() < deadline, "the daemon did not stop listening"
            time.sleep(0.05)
        assert served.thread.is_alive()  # still finishing the call in progress
        blocker.execute("COMMIT")
    calling.join(30)
    served.thread.join(60)
    assert answers and answers[0]["status"] == "succeeded"
    assert not served.thread.is_alive()


def _waiting_on_lock(dsn: str) -> bool:
    with owner_connection(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = "
                           "'Lock' AND application_name = 'striatum daemon'").fetchone()
    return bool(row and row[0])


def test_a_client_reads_the_tokens_again_after_the_daemon_restarted(dsn: str,
                                                                    tmp_path: Path) -> None:
    place = RuntimeDir(tmp_path / "h" / "run")
    daemon, thread = serve(dsn, place)
    with Client(place) as client:
        assert client.call("server.status")["face"] == "daemon"
        daemon.stop()
        thread.join(60)
        with pytest.raises(DaemonUnavailable):
            client.call("server.status")
        daemon, thread = serve(dsn, place)  # new tokens
        try:
            assert client.call("run.list", {})["runs"] == []
        finally:
            daemon.stop()
            thread.join(60)


def test_a_frame_of_exactly_the_maximum_is_served_and_one_byte_more_refused(
        served: Served) -> None:
    token = served.place.client_token.read_text().strip()
    head = ('{"jsonrpc": "2.0", "id": 7, "method": "server.status", "striatum": {"token": "'
            + token + '"}}').encode()

    def frame(size: int) -> bytes:  # the request, padded with spaces to size, newline included
        return head + b" " * (size - len(head) - 1) + b"\n"

    exact = frame(protocol.MAX_FRAME)
    assert len(exact) == protocol.MAX_FRAME
    answers = served.raw(exact)
    assert len(answers) == 1 and answers[0]["result"]["face"] == "daemon", answers
    over = served.raw(frame(protocol.MAX_FRAME + 1))
    assert len(over) == 1, over
    assert over[0]["error"]["code"] == protocol.INVALID_REQUEST and over[0]["id"] is None
    assert f"longer than {protocol.MAX_FRAME} bytes" in over[0]["error"]["message"]
    assert served.call("server.status")["pid"] == os.getpid()


def test_a_client_that_sends_half_a_line_and_stalls_or_trickles_is_closed(
        dsn: str, tmp_path: Path) -> None:
    place = RuntimeDir(tmp_path / "h" / "run")
    daemon, thread = serve(dsn, place, idle_seconds=1.0)
    try:
        stalled, trickling = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
        with stalled, trickling:
            for sock in (stalled, trickling):
                sock.settimeout(30)
                sock.connect(str(place.socket))
                sock.sendall(b'{"jsonrpc": "2.0", "id": 1, "meth')
            began = time.monotonic()
            closed = None
            # One byte every 0.2 s: never idle for a second, yet never a whole line.
            while time.monotonic() - began < 10:
                try:
                    trickling.sendall(b" ")
                except OSError:  # the daemon closed it
                    closed = time.monotonic() - began
                    break
                time.sleep(0.2)
            assert closed is not None and closed < 5, closed
            with Client(place) as client:  # the others are served meanwhile
                assert client.call("server.status")["face"] == "daemon"
            assert stalled.recv(1) == b""  # closed too, without a word
    finally:
        daemon.stop()
        thread.join(60)


def test_a_limit_of_connections_beyond_the_open_file_limit_is_lowered_to_fit(
        dsn: str, tmp_path: Path) -> None:
    import resource

    from striatum.server.daemon import SPARE_FILES

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit to fit under")
    place = RuntimeDir(tmp_path / "h" / "run")
    daemon, thread = serve(dsn, place, max_connections=hard + 1000)
    try:
        status = Served(daemon, place, thread, dsn, tmp_path).call("server.status")
        # Raised to the hard limit, and the connections it serves fitted under it.
        assert status["open_files"] == hard == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert status["max_connections"] == hard - 4 - SPARE_FILES
    finally:
        daemon.stop()
        thread.join(60)
