"""The replayable projection: what events record is what doctor compares."""

from __future__ import annotations

from striatum.runtime.records import REPLAYED_JOB_COLUMNS, initial_job_state


def test_a_new_jobs_recorded_state_names_every_replayed_column() -> None:
    assert set(initial_job_state()) == set(REPLAYED_JOB_COLUMNS)
