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
        "doctor's one pass (doctor_event_contents: hash, columns, replay)",
        "doctor's link pass (doctor_event_links)"}
    assert all(micros >= 0 for micros in cost.values())
