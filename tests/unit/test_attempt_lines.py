"""The order of a worker's lines: a job's "started" waits for the lines of the attempts
that were ending when it was claimed (the verdict that released it may be among them),
but its lane does not wait for that line."""

from __future__ import annotations

import time

import pytest

from striatum.runtime.attempt import Told


def test_the_line_waits_for_the_tickets_out_and_the_caller_does_not() -> None:
    told, said = Told(), []
    ending = told.take()
    before = time.monotonic()
    due = told.say_after(told.out(), lambda: said.append("task1: started"))
    assert time.monotonic() - before < 1.0 and said == []
    said.append("check0: accept")
    told.give_back(ending)
    assert said == ["check0: accept", "task1: started"]
    due()  # its own next line: already said, not said again
    assert said == ["check0: accept", "task1: started"]


def test_a_line_with_nothing_out_is_said_at_once_and_one_held_is_said_before_the_next(
        ) -> None:
    told, said = Told(), []
    told.say_after(frozenset(), lambda: said.append("a: started"))
    assert said == ["a: started"]
    stuck = told.take()
    due = told.say_after(told.out(), lambda: said.append("b: started"))
    later = told.take()  # an attempt ending after b was claimed: b never waits for it
    told.give_back(later)
    assert said == ["a: started"]
    due()  # b ends while the stuck attempt still holds its ticket
    said.append("b: succeeded")
    told.give_back(stuck)
    assert said == ["a: started", "b: started", "b: succeeded"]


def test_a_line_held_by_a_stuck_attempt_is_said_after_the_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Told, "WAIT", 0.05)
    told, said = Told(), []
    told.take()
    told.say_after(told.out(), lambda: said.append("b: started"))
    deadline = time.monotonic() + 5
    while not said and time.monotonic() < deadline:
        time.sleep(0.01)
    assert said == ["b: started"]
