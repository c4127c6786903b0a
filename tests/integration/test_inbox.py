"""The inbox: everything that waits for a human, across runs and repositories, oldest
first, each with the command that answers it; and nothing that does not."""

from __future__ import annotations

import json
from pathlib import Path

from striatum.runtime import leases, runs
from striatum.runtime.inbox import inbox
from striatum.runtime.store import Store

from ..unit.test_cli import invoke as cli
from .helpers import Agent, example, owner_connection, scripted, start_run, to_checkpoint


def test_the_inbox_gathers_checkpoints_escalations_and_quiet_leases_of_every_repository(
        store: Store, dsn: str, tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    first.mkdir()
    second.mkdir()
    assert inbox(store)["items"] == []

    asked = to_checkpoint(store, first, tmp_path)
    blocked = start_run(store, example("code-change"), second)
    Agent(store, blocked, tmp_path,
          verdict=scripted({"check": ["needs_revision", "needs_revision"]})).drive()
    quiet = start_run(store, example("minimal"), second)
    claim = leases.claim(store, quiet, owner="worker-9", lease_seconds=300)
    assert claim is not None
    healthy = start_run(store, example("minimal"), first)
    assert leases.claim(store, healthy, owner="worker-1", lease_seconds=300) is not None
    ended = start_run(store, example("minimal"), first)
    Agent(store, ended, tmp_path).drive()
    with owner_connection(dsn) as conn:
        conn.execute("UPDATE striatum.jobs SET heartbeat_at = now() - interval '200 seconds' "
                     "WHERE run_id = %s", (quiet,))

    items = inbox(store)["items"]
    assert [(i["kind"], i["run"], i["job"]) for i in items] == [
        ("checkpoint", asked, "decide"), ("escalated", blocked, "check"),
        ("lease_stale", quiet, "answer")]
    by_kind = {i["kind"]: i for i in items}
    assert by_kind["checkpoint"]["command"] == \
        f"striatum checkpoint decide {asked} decide cancel|continue"
    assert by_kind["checkpoint"]["repo"] == str(first.resolve())
    assert by_kind["escalated"]["run_status"] == "blocked"
    assert by_kind["escalated"]["command"] == \
        f"striatum run resume {blocked} --job check --decision accept|fail|revise"
    assert by_kind["lease_stale"]["age_seconds"] >= 200
    assert "worker-9" in by_kind["lease_stale"]["text"]

    here = inbox(store, str(second))["items"]
    assert [i["run"] for i in here] == [blocked, quiet]

    with owner_connection(dsn) as conn:
        conn.execute("UPDATE striatum.jobs SET lease_expires_at = now() - interval '1 second'"
                     " WHERE run_id = %s", (quiet,))
    assert inbox(store, str(second))["items"][-1]["kind"] == "lease_expired"

    runs.decide(store, asked, "decide", "continue")  # answered: it leaves the inbox...
    runs.cancel(store, blocked, "abandoned")  # ended: so does what held it
    after = inbox(store)["items"]
    # ... and what the answer made ready waits for a worker that nobody runs.
    assert [(i["kind"], i["run"], i["job"]) for i in after] == [
        ("lease_expired", quiet, "answer"), ("no_worker", asked, "implement")]
    assert after[1]["command"] == f"striatum run work {asked}"
    assert "no running worker serves lane analyst" in after[1]["text"]


def test_the_cli_lists_the_inbox_and_says_when_nothing_waits(
        store: Store, dsn: str, repo: Path, tmp_path: Path) -> None:
    empty = cli("--dsn", dsn, "inbox")
    assert empty.code == 0 and empty.out == "" and "nothing waits for a human" in empty.err
    asked = to_checkpoint(store, repo, tmp_path)
    shown = cli("--dsn", dsn, "inbox")
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    assert lines[0].startswith(f"checkpoint    {asked} decide (")
    assert lines[-1].strip() == f"→ striatum checkpoint decide {asked} decide cancel|continue"
    document = json.loads(cli("--dsn", dsn, "--repo", str(tmp_path), "inbox", "--here",
                              "--json").out)
    assert document["items"] == [] and document["count"] == 0
