"""The dashboard drawn from documents alone: what a pipe or an agent reads (plain text)."""

from __future__ import annotations

from typing import Any

from striatum.cli.dashboard import Board, _parse
from striatum.dashboard_view import fingerprint, plain

RUN = "20261205-054354-ecbebc"
OLDER = "20261204-101010-abcdef"


def job(job_id: str, status: str, lane: str, **more: Any) -> dict[str, Any]:
    return {"job": job_id, "kind": more.pop("kind", "task"), "lane": lane, "status": status,
            "iteration": 0, "attempt": 0, "executions": 0, "fence": 0, "lease_owner": None,
            "lease_expires_at": None, "chosen": None, "verdict": None, "reason": None,
            "log": None, **more}


def snapshot(**changes: Any) -> dict[str, Any]:
    """A running run of human-checkpoint: analysis leased, the rest waiting on needs."""
    checkpoint = {"kind": "checkpoint", "run": OLDER, "job": "decide", "repo": "/r",
                  "workflow": "human-checkpoint", "run_status": "running",
                  "text": "checkpoint decide waits for a human to choose cancel or continue",
                  "command": f"striatum checkpoint decide {OLDER} decide cancel|continue",
                  "since": "2026-12-05T05:00:00+00:00", "age_seconds": 600}
    base: dict[str, Any] = {
        "runs": [{"run": RUN, "workflow": "human-checkpoint", "status": "running",
                  "created_at": "x", "updated_at": "x", "executions": 1, "worst_case": 8,
                  "repo": "/work/target"},
                 {"run": OLDER, "workflow": "human-checkpoint", "status": "running",
                  "created_at": "x", "updated_at": "x", "executions": 3, "worst_case": 8,
                  "repo": "/r"}],
        "selected": RUN,
        "run": {"run": RUN, "workflow": "human-checkpoint", "status": "running",
                "executions": 1, "worst_case": 8,
                "jobs": [job("analysis", "leased", "analyst", attempt=1,
                             lease_owner="worker-7", executions=1),
                         job("review", "pending", "reviewer", kind="review"),
                         job("decide", "pending", "principal", kind="checkpoint"),
                         job("implement", "pending", "analyst")]},
        "plan": {"run": RUN, "waves": [["analysis"], ["review"], ["decide"], ["implement"]]},
        "why": {"run": RUN, "status": "running",
                "summary": f"run {RUN} is running: 1 job(s) in a worker's hands (analysis)",
                "holds": [{"kind": "leased", "job": "analysis", "command": None,
                           "text": "analysis, attempt 1, is leased to worker-7 until 05:45:00",
                           "owner": "worker-7", "heartbeat_age_seconds": 4,
                           "expires_in_seconds": 56},
                          {"kind": "needs", "job": "review", "command": None,
                           "text": "review waits for analysis (leased)"}],
                "next": None, "at": "2026-12-05T05:44:03+00:00"},
        "inbox": {"items": [checkpoint], "count": 1, "at": "2026-12-05T05:44:03+00:00"},
    }
    return base | changes


def test_the_jobs_show_as_a_tree_by_wave_with_lane_pass_attempt_and_the_lease() -> None:
    text = plain(snapshot())
    lines = text.splitlines()
    waves = [n for n, line in enumerate(lines) if "wave " in line]
    assert [lines[n].split("wave ")[1] for n in waves] == ["1", "2", "3", "4"]
    analysis = next(line for line in lines if "analysis " in line and "leased" in line)
    assert lines.index(analysis) == waves[0] + 1  # under wave 1
    assert "lane analyst    pass 1  attempt 2  lease worker-7 (beat 4 s ago, expires in 56 s)" \
        in analysis
    implement = next(line for line in lines if "implement" in line and "pending" in line)
    assert lines.index(implement) == waves[3] + 1


def test_runs_newest_first_with_the_selected_one_marked_state_repo_and_budget() -> None:
    lines = plain(snapshot(selected=OLDER)).splitlines()
    rows = [line for line in lines if RUN in line or OLDER in line][:2]
    assert RUN in rows[0] and OLDER in rows[1]
    assert rows[1].startswith("▶") and not rows[0].startswith("▶")
    assert "running" in rows[0] and "1 of 8" in rows[0] and "/work/target" in rows[0]


def test_why_and_the_inbox_say_what_holds_the_run_and_the_command_that_answers() -> None:
    text = plain(snapshot())
    assert f"run {RUN} is running: 1 job(s) in a worker's hands (analysis)" in text
    assert "needs         review waits for analysis (leased)" in text
    assert "inbox (1)" in text
    assert f"checkpoint    {OLDER} decide (10 min, human-checkpoint)" in text
    assert f"→ striatum checkpoint decide {OLDER} decide cancel|continue" in text


def test_plain_text_has_no_escape_sequences() -> None:
    assert "\x1b" not in plain(snapshot())


def test_a_stale_or_expired_lease_says_so() -> None:
    stale = snapshot()
    stale["why"]["holds"][0]["kind"] = "lease_stale"
    assert "lease worker-7 (beat 4 s ago, expires in 56 s, stale)" in plain(stale)
    stale["why"]["holds"][0]["kind"] = "lease_expired"
    assert "lease worker-7 (beat 4 s ago, expired)" in plain(stale)


def test_nothing_to_show_says_how_to_start_and_that_nothing_waits() -> None:
    text = plain(snapshot(runs=[], selected=None, run=None, plan=None, why=None,
                          inbox={"items": [], "count": 0, "at": "x"}))
    assert "no runs yet: striatum run prepare --workflow FILE --start" in text
    assert "nothing waits for a human" in text and "wave" not in text


def test_a_change_of_state_changes_the_fingerprint_and_an_age_does_not() -> None:
    before = snapshot()
    older = snapshot()
    older["inbox"]["items"][0]["age_seconds"] = 660
    older["why"]["holds"][0]["heartbeat_age_seconds"] = 9
    assert fingerprint(older) == fingerprint(before)
    moved = snapshot()
    moved["run"]["jobs"][0]["status"] = "succeeded"
    assert fingerprint(moved) != fingerprint(before)


def test_keys_arrows_letters_and_several_in_one_read() -> None:
    assert _parse(b"\x1b[B\x1b[Aj") == ["down", "up", "down"]
    assert _parse(b"\x1bOBkx") == ["down", "up"]
    assert _parse(b"q") == ["q"]


def test_moving_the_selection_stops_at_either_end() -> None:
    board = Board(None, False, runs=["a", "b", "c"])
    board.selected = "a"
    board.move(-1)
    assert board.selected == "a"
    board.move(1)
    board.move(1)
    board.move(1)
    assert board.selected == "c"
    board.selected = "elsewhere"  # --run named a run the list does not hold
    board.move(1)
    assert board.selected == "a"


def test_a_long_repository_path_keeps_its_end_on_the_runs_line() -> None:
    long = "/tmp/" + "deep/" * 20 + "target"
    runs = snapshot()["runs"]
    runs[0]["repo"] = long
    row = next(line for line in plain(snapshot(runs=runs)).splitlines() if RUN in line)
    assert row.rstrip().endswith("deep/deep/target") and "…" in row and len(row) <= 120


def test_a_window_of_runs_holds_the_selected_one_and_says_which_it_shows() -> None:
    many = [{**snapshot()["runs"][0], "run": f"20261205-0000{n:02d}-aaaaaa"} for n in range(20)]
    chosen = many[15]["run"]
    text = plain(snapshot(runs=many, selected=chosen), rows=8)
    shown = [run["run"] for run in many if run["run"] in text]
    assert shown == [run["run"] for run in many[11:19]]
    assert "runs (newest first): 12 to 19 of 20" in text
    last = plain(snapshot(runs=many, selected=many[19]["run"]), rows=8)
    assert "runs (newest first): 13 to 20 of 20" in last
    everything = plain(snapshot(runs=many, selected=chosen))
    assert all(run["run"] in everything for run in many)
