"""The benchmark harness's own machinery against a real server: a figure that waits for
workers that never count as ready, or a ceiling that replays other statements than the
client sent, would print numbers that mean nothing (bench/ asserts on no time)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench.common import Context
from bench.figures import replay_ceiling, start_workers, stop_workers, wait_listening


def test_a_worker_counts_as_listening_once_it_listens(dsn: str, tmp_path: Path) -> None:
    # A worker LISTENs on more than one channel; its connection's last statement is the
    # last LISTEN, whichever channel that is.
    ctx = Context(dsn=dsn, repeat=1, quick=True, tmp=tmp_path)
    procs = start_workers(ctx, dsn, "", 1)
    try:
        wait_listening(dsn, 1, procs, timeout=60)
    finally:
        stop_workers(procs)


@pytest.mark.skipif(shutil.which("pgbench") is None, reason="pgbench is not installed")
def test_the_ceiling_replays_exactly_what_the_client_sent(admin_dsn: str, tmp_path: Path
                                                          ) -> None:
    # replay_ceiling raises when the replay did not complete every recorded pair's job,
    # or when pgbench timed another number of statements than were recorded.
    ctx = Context(dsn=admin_dsn, repeat=1, quick=True, tmp=tmp_path)
    got = replay_ceiling(ctx, fanout=40, pairs=20, reps=1)
    assert set(got) == {"claim", "complete", "pair"}
    assert all(len(rates) == 1 and rates[0] > 0 for rates in got.values())


def test_the_doctor_breakdown_runs_doctors_own_queries_over_the_record(dsn: str) -> None:
    # The breakdown times doctor's queries as doctor binds them: a parameter added to
    # them, or a query renamed, must break it here rather than print a figure of
    # nothing. The generated record is one doctor passes, and the floor finds it whole.
    import psycopg

    from bench.doctor_cost import FLOOR, breakdown
    from bench.figures import generate_record

    _, _, events, _ = generate_record(dsn, 1000)
    with psycopg.connect(dsn) as conn:
        assert conn.execute(FLOOR).fetchone() == (events, 0)
    cost = breakdown(dsn, repeat=1)
    if cost is None:
        pytest.skip("the server's backend is not on this machine: its CPU cannot be read")
    assert cost["events"] == events
    assert {label for label in cost if label.startswith("doctor's")} == {
        "doctor's replay over the typed columns (doctor_event_columns)",
        "doctor's chain pass: links and hashes (doctor_event_links)",
        "doctor's pass with --strict or without the proof (doctor_event_contents: parse, "
        "hash, columns, replay)"}
    assert all(micros >= 0 for micros in cost.values())


def test_the_mcp_figure_times_tool_calls_that_did_their_work(dsn: str, tmp_path: Path
                                                             ) -> None:
    # A tool call that returned an error result is as quick as one that worked: the figure
    # must refuse it, and every timed claim must have completed its job.
    import anyio

    from bench.common import fanout_jobs, new_repo, striatum_argv, striatum_env, write_workflow
    from bench.figures import ready_fanout
    from bench.mcp_calls import VERBS, _over_stdio
    from striatum.runtime.store import Store

    ctx = Context(dsn=dsn, repeat=1, quick=True, tmp=tmp_path)
    store = Store.connect(dsn)
    try:
        repo = new_repo(ctx, "mcp")
        run = ready_fanout(store, str(write_workflow(tmp_path, "f", fanout_jobs(6), ["true"])),
                           str(repo))
        ready, times = anyio.run(_over_stdio, striatum_argv(), striatum_env(dsn, ctx),
                                 str(repo), run, 2, 1)
        status = store._conn.execute(
            "SELECT count(*) FROM striatum.jobs WHERE run_id = %s AND status = 'succeeded'",
            (run,)).fetchone()
    finally:
        store.close()
    assert ready > 0 and {verb: len(spent) for verb, spent in times.items()} == {
        verb: 2 for verb in VERBS}
    assert status == (1 + 3,)  # the root, then one job in each of the three rounds
    # The last task and the join it readies, then nothing: the third round is refused.
    with pytest.raises(RuntimeError, match="job_claim found nothing"):
        anyio.run(_over_stdio, striatum_argv(), striatum_env(dsn, ctx), str(repo), run, 3, 0)


def test_the_startup_figure_stops_the_embedded_server_it_starts_and_removes_its_home(
        ) -> None:
    # Each repetition starts a server in a fresh home: one left running would hold its
    # port folder and memory after the run, and a later repetition would time a reuse.
    import os

    from bench.startup import _probe, embedded_home

    with embedded_home() as env:
        home = Path(env["STRIATUM_HOME"])
        assert "STRIATUM_DSN" not in env
        assert _probe(env) > 0
        pid = int((home / "pg" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, 0)  # running
    assert not home.exists()
    # pg_ctl's wait ends when the pid file is gone, a moment before the postmaster's exit:
    # allow that moment (a server left running never ends it).
    assert _gone_within(pid, seconds=15.0)


def _gone_within(pid: int, seconds: float) -> bool:
    import os
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # an exited child not yet reaped by its parent counts as gone
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.05)
    return False



def test_the_web_figure_writes_events_the_record_accepts_and_doctor_verifies(
        dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The figure continues a run's chain by COPY: rows the events table refuses (a time
    # not the row's, columns not the payload's) ended the figure with no page timed.
    import psycopg

    import bench.web
    from striatum.runtime.doctor import doctor
    from striatum.runtime.store import Store

    monkeypatch.setattr(bench.web, "JOBS", 20)
    monkeypatch.setattr(bench.web, "EVENTS", 300)
    ctx = Context(dsn=dsn, repeat=1, quick=True, tmp=tmp_path)
    run, _job = bench.web.big_run(dsn, ctx)
    with psycopg.connect(dsn) as conn:
        (count,) = conn.execute("SELECT count(*) FROM striatum.events WHERE run_id = %s",
                                [run]).fetchone()  # type: ignore[misc]
    store = Store.connect(dsn)
    try:
        found = [f.message for f in doctor(store).findings if not f.ok]
    finally:
        store.close()
    assert count == 300
    assert found == []
