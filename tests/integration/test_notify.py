"""--notify CMD: each item that enters the inbox is told once, as JSON on the command's
stdin; a failing or hanging command is said and never holds the caller up."""

from __future__ import annotations

import json
import time
from pathlib import Path

from striatum.runtime import runs
from striatum.runtime.notify import Notifier
from striatum.runtime.store import Store

from .helpers import example, to_checkpoint
from .worker_helpers import fake, start_run, wait_for, worker_thread


def told(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_each_item_is_told_once_while_it_stays_and_again_if_it_comes_back(
        store: Store, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "told.jsonl"
    said: list[str] = []
    notifier = Notifier(f"cat >> {out}", said.append)
    run_id = to_checkpoint(store, repo, tmp_path)
    fresh = notifier.check(store)
    assert [(i["kind"], i["job"]) for i in fresh] == [("checkpoint", "decide")]
    assert notifier.check(store) == []  # still there: not told again
    notifier.wait()
    assert [(i["kind"], i["run"], i["command"]) for i in told(out)] == [
        ("checkpoint", run_id, f"striatum checkpoint decide {run_id} decide cancel|continue")]
    runs.decide(store, run_id, "decide", "cancel")
    assert notifier.check(store) == [] and said == []


def test_a_failing_or_hanging_command_is_said_and_does_not_hold_the_caller(
        store: Store, repo: Path, tmp_path: Path) -> None:
    to_checkpoint(store, repo, tmp_path)
    said: list[str] = []
    failing = Notifier("echo no route to the webhook >&2; exit 3", said.append)
    failing.check(store)
    failing.wait()
    assert len(said) == 1 and "exited 3: no route to the webhook" in said[0]

    said.clear()
    hanging = Notifier("sleep 30", said.append, timeout=0.5)
    started = time.monotonic()
    assert len(hanging.check(store)) == 1
    assert time.monotonic() - started < 5  # the check returned; the command runs aside
    hanging.wait()
    assert said and "took longer than 0.5 s" in said[0]


def test_a_worker_with_notify_tells_the_checkpoint_its_run_reached(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "told.jsonl"
    lanes = {lane: {"command": fake("work")} for lane in ("analyst", "reviewer")}
    run_id = start_run(store, example("human-checkpoint"), repo, lanes)
    worker = worker_thread(dsn, run_id, until_run_ends=True, lease_seconds=6,
                           notify=f"cat >> {out}")
    try:
        items = wait_for(lambda: told(out), 60, "the checkpoint to be told")
        assert [(i["kind"], i["run"], i["job"]) for i in items] == [
            ("checkpoint", run_id, "decide")]
        runs.decide(store, run_id, "decide", "continue")
    finally:
        worker.join(90)
    assert runs.status(store, run_id).run.status == "completed"
    assert len(told(out)) == 1


def test_a_daemon_with_notify_tells_an_item_that_enters_the_inbox_while_it_serves(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    from striatum.server.place import RuntimeDir

    from .test_daemon import serve

    out = tmp_path / "told.jsonl"
    daemon, thread = serve(dsn, RuntimeDir(tmp_path / "h" / "run"), notify=f"cat >> {out}")
    try:
        run_id = to_checkpoint(store, repo, tmp_path)  # after the daemon's first look
        items = wait_for(lambda: told(out), 30, "the daemon to tell the checkpoint")
        assert [(i["kind"], i["run"], i["job"]) for i in items] == [
            ("checkpoint", run_id, "decide")]
    finally:
        daemon.stop()
        thread.join(60)
    assert not thread.is_alive()


def test_the_web_ui_with_notify_tells_what_waits_while_it_serves(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    from striatum.server.place import RuntimeDir
    from striatum.web.server import _notifying, web_face

    out = tmp_path / "told.jsonl"
    run_id = to_checkpoint(store, repo, tmp_path)
    with web_face(dsn, RuntimeDir(tmp_path / "h" / "run"), mutations=False) as face, \
            _notifying(face, f"cat >> {out}"):
        items = wait_for(lambda: told(out), 30, "the web UI to tell the checkpoint")
    assert [(i["kind"], i["run"]) for i in items] == [("checkpoint", run_id)]
