"""Contract errors speak the user's terms and point at the right place."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from striatum.compiler.compile import Compilation, check

LANES = {"a": {"command": ["codex", "exec", "-"]}, "b": {"command": ["claude", "-p"]}}


def run(tmp_path: Path, document: Any) -> Compilation:
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(document, indent=2))
    return check(str(path))


def codes(comp: Compilation) -> list[str]:
    return [d.code for d in comp.diagnostics]


def test_unknown_key_suggests_the_near_one_and_points_at_the_key(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES,
                          "jobs": [{"id": "j", "lane": "a", "nedds": []}]})
    [d] = comp.diagnostics
    assert d.code == "STR101"
    assert d.message == "unknown key 'nedds' in job 'j'"
    assert d.hint == "did you mean 'needs'?"
    assert (d.line, d.column) == (22, 7)


def test_bad_enum_suggests(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES,
                          "jobs": [{"id": "j", "lane": "a", "kind": "reveiw"}]})
    [d] = comp.diagnostics
    assert d.code == "STR104" and d.hint == "did you mean 'review'?"


def test_revise_on_a_task_and_choices_on_a_review(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": [
        {"id": "j", "lane": "a", "revise": {"target": "j", "max": 1}},
        {"id": "k", "lane": "a", "kind": "review", "choices": {"x": []}}]})
    messages = [d.message for d in comp.diagnostics]
    assert "job 'j' has 'revise', which only a review job may have" in messages
    assert "job 'k' has 'choices', which only a checkpoint may have" in messages
    assert set(codes(comp)) == {"STR106"}


def test_checkpoint_without_choices_and_lane_without_command(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": {"a": {"timeout": 5}},
                          "jobs": [{"id": "c", "lane": "a", "kind": "checkpoint"}]})
    messages = [d.message for d in comp.diagnostics]
    assert "lane 'a' has no 'command'" in messages
    assert "job 'c' is a checkpoint but has no 'choices'" in messages


def test_human_lane_with_a_command(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": {"h": {"kind": "human", "command": ["x"]}},
                          "jobs": [{"id": "c", "lane": "h"}]})
    [d] = comp.diagnostics
    assert d.code == "STR106" and "apply only to command lanes" in d.message


def test_paths_must_stay_inside(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": [
        {"id": "j", "lane": "a", "produces": ["/etc/passwd", "x/../../y", "ok/../fine"]}]})
    assert codes(comp) == ["STR104", "STR104", "STR104"]


def test_bad_names(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "my flow", "lanes": {"bad lane": {"command": ["x"]}},
                          "jobs": [{"id": "1st", "lane": "bad lane"}]})
    assert set(codes(comp)) == {"STR105"}
    assert len(comp.diagnostics) == 4


def test_unbounded_loop_is_refused(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": [
        {"id": "d", "lane": "a"},
        {"id": "r", "lane": "b", "kind": "review", "needs": ["d"], "revise": {"target": "d"}}]})
    [d] = comp.diagnostics
    assert d.code == "STR102" and "'max'" in d.message


def test_many_errors_are_capped(tmp_path: Path) -> None:
    jobs = [{"id": f"j{i}", "lane": "a", "bogus": 1} for i in range(80)]
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": jobs})
    assert len(comp.diagnostics) == 51
    assert "30 more" in comp.diagnostics[-1].message or "more schema errors" in str(
        [d.message for d in comp.diagnostics])
