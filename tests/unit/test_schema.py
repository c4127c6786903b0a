"""Contract errors speak the user's terms and point at the right place."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from striatum.compiler import schema
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


UNBOUNDED_JSON = """{"name": "w", "lanes": {"a": {"command": ["x"]}, "b": {"command": ["y"]}},
 "jobs": [{"id": "d", "lane": "a"},
          {"id": "r", "lane": "b", "kind": "review", "needs": ["d"],
           "revise": {"target": "d"}}]}
"""
UNBOUNDED_DSL = """workflow w
lane a = ["x"]
lane b = ["y"]
task d by a
review r by b after d {
  revise d
}
"""


def test_an_unbounded_loop_is_one_diagnostic_whichever_syntax(tmp_path: Path) -> None:
    found = {}
    for name, text in (("w.json", UNBOUNDED_JSON), ("w.stm", UNBOUNDED_DSL)):
        (tmp_path / name).write_text(text, encoding="utf-8")
        [found[name]] = check(str(tmp_path / name)).diagnostics
    json_d, dsl_d = found["w.json"], found["w.stm"]
    assert (json_d.code, json_d.message, json_d.hint, json_d.path, json_d.key) == (
        dsl_d.code, dsl_d.message, dsl_d.hint, dsl_d.path, dsl_d.key)
    assert json_d.code == "STR211"
    assert json_d.message == "the revision loop of job 'r' has no bound"
    assert json_d.path == ("jobs", 1, "revise") and json_d.key
    # Each points at the word `revise` in its own file.
    assert (json_d.line, json_d.column) == (4, 12)
    assert (dsl_d.line, dsl_d.column) == (6, 3)


def test_a_revise_without_target_or_max_gets_both(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": [
        {"id": "d", "lane": "a"},
        {"id": "r", "lane": "b", "kind": "review", "needs": ["d"], "revise": {}}]})
    assert sorted(codes(comp)) == ["STR102", "STR211"]


def test_many_errors_are_capped(tmp_path: Path) -> None:
    jobs = [{"id": f"j{i}", "lane": "a", "bogus": 1} for i in range(80)]
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": jobs})
    assert len(comp.diagnostics) == 51
    assert "30 more" in comp.diagnostics[-1].message or "more schema errors" in str(
        [d.message for d in comp.diagnostics])


# ---------------------------------------------------------------- both validators agree


def _patterns(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        return own + [p for value in node.values() for p in _patterns(value)]
    if isinstance(node, list):
        return [p for value in node for p in _patterns(value)]
    return []


PATTERNS = sorted(set(_patterns(schema.contract())))
PROBES = ["draft", "draft\n", "draft\r", "\ndraft", "dr\naft", "a" * 64, "a" * 65 + "\n",
          "docs/a.md", "docs/a.md\n", "x\n/../../etc/passwd", "x/..\n", "..\n", "a/..",
          "x\r\n/../y", "x\u2028/../y", "/abs", "\n/abs", "a\x00b", ""]


def _agree(pattern: str, value: str) -> None:
    fast = jsonschema_rs.validator_for({"pattern": pattern}).is_valid(value)
    detailed = Draft202012Validator({"pattern": pattern}).is_valid(value)
    assert fast is detailed, (pattern, value)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_every_pattern_means_the_same_to_both_validators(pattern: str) -> None:
    for value in PROBES:
        _agree(pattern, value)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATTERNS), st.text(alphabet="ab_-./\\\n\r\t \x00", max_size=12))
def test_both_validators_agree_on_any_text(pattern: str, value: str) -> None:
    _agree(pattern, value)


def _stays_inside(path: str) -> bool:
    """The relpath rule in words: not empty, no leading separator, no NUL, no '..' segment."""
    return (bool(path) and path[0] not in "/\\" and "\x00" not in path
            and ".." not in re.split(r"[/\\]", path))


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="a./\\\n\r\x00", max_size=10))
def test_the_relpath_pattern_is_the_rule_in_words(path: str) -> None:
    pattern = schema.contract()["$defs"]["relpath"]["pattern"]
    assert Draft202012Validator({"pattern": pattern}).is_valid(path) is _stays_inside(path)
    assert jsonschema_rs.validator_for({"pattern": pattern}).is_valid(path) is _stays_inside(path)


def test_a_document_the_fast_validator_refuses_is_never_let_through(
        monkeypatch: pytest.MonkeyPatch) -> None:
    class Refuses:
        def is_valid(self, document: Any) -> bool:
            return False

    monkeypatch.setattr(schema, "_fast_validator", lambda: Refuses())
    [d] = schema.validate_document({"name": "w", "lanes": LANES,
                                    "jobs": [{"id": "j", "lane": "a"}]})
    assert d.code == "STR100"


# ---------------------------------------------------------------- a line break ends nothing

GOOD: dict[str, Any] = {
    "name": "w", "vars": {"v": "1"}, "final": ["e"],
    "lanes": {"a": {"command": ["x"], "env": {"K": "v"}}, "h": {"kind": "human"}},
    "jobs": [{"id": "d", "lane": "a", "produces": ["o.md"], "writes": ["src/**"]},
             {"id": "r", "lane": "b", "kind": "review", "needs": ["d"], "consumes": ["o.md"],
              "revise": {"target": "d", "max": 1}},
             {"id": "c", "lane": "h", "kind": "checkpoint", "needs": ["r"],
              "choices": {"go": ["e"], "stop": []}},
             {"id": "e", "lane": "a", "needs": ["c"]}],
}
GOOD["lanes"]["b"] = {"command": ["claude", "-p"]}


def _with(path: tuple[Any, ...], value: Any, *, rename: bool = False) -> dict[str, Any]:
    doc = json.loads(json.dumps(GOOD))
    *parents, last = path
    node = doc
    for part in parents:
        node = node[part]
    if rename:
        node[value] = node.pop(last)
    else:
        node[last] = value
    return doc


NEWLINE_NAMES = {
    "workflow name": _with(("name",), "w\n"),
    "job id": _with(("jobs", 0, "id"), "d\n"),
    "lane name": _with(("lanes", "h"), "h\n", rename=True),
    "job lane": _with(("jobs", 0, "lane"), "a\n"),
    "need": _with(("jobs", 1, "needs", 0), "d\n"),
    "variable": _with(("vars", "v"), "v\n", rename=True),
    "choice name": _with(("jobs", 2, "choices", "go"), "go\n", rename=True),
    "choice successor": _with(("jobs", 2, "choices", "go", 0), "e\n"),
    "env key": _with(("lanes", "a", "env", "K"), "K\n", rename=True),
    "final job": _with(("final", 0), "e\n"),
    "revise target": _with(("jobs", 1, "revise", "target"), "d\n"),
}


def test_the_document_the_cases_start_from_is_valid(tmp_path: Path) -> None:
    assert run(tmp_path, GOOD).ok


@pytest.mark.parametrize("place", NEWLINE_NAMES)
def test_a_name_ending_in_a_newline_is_not_a_name(tmp_path: Path, place: str) -> None:
    comp = run(tmp_path, NEWLINE_NAMES[place])
    assert not comp.ok
    assert codes(comp) == ["STR105"], [d.message for d in comp.diagnostics]
    assert "is not a valid name" in comp.diagnostics[0].message


CLIMBING = "x\n/../../etc/passwd"


@pytest.mark.parametrize("key", ["produces", "writes", "consumes", "prompt"])
def test_a_path_climbing_out_after_a_line_break_is_refused(tmp_path: Path, key: str) -> None:
    job = 1 if key == "consumes" else 0
    value: Any = CLIMBING if key == "prompt" else [CLIMBING]
    comp = run(tmp_path, _with(("jobs", job, key), value))
    assert codes(comp) == ["STR104"], [d.message for d in comp.diagnostics]


@pytest.mark.parametrize("item", ['produces "x\\n/../../etc/passwd"',
                                  'writes "x\\n/../../etc/passwd"',
                                  'prompt "x\\n/../../etc/passwd"'])
def test_the_dsl_refuses_a_path_climbing_out_after_a_line_break(tmp_path: Path,
                                                                 item: str) -> None:
    path = tmp_path / "workflow.stm"
    path.write_text(f"workflow w\nlane a = human\ntask t by a {{ {item} }}\n", encoding="utf-8")
    comp = check(str(path))
    assert [(d.code, d.line) for d in comp.diagnostics] == [("STR104", 3)]


# ---------------------------------------------------------------- one error, not its echoes


@pytest.mark.parametrize("lane", ["claude", ["claude", "-p"], 5, None, True])
def test_a_lane_of_the_wrong_type_is_one_wrong_type(tmp_path: Path, lane: Any) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": {"coder": lane},
                          "jobs": [{"id": "j", "lane": "coder"}]})
    [d] = comp.diagnostics
    assert d.code == "STR103" and d.message.startswith("lane 'coder' should be an object, not")
    assert "should not be valid under" not in d.message


def test_a_misspelt_lane_kind_asks_for_no_command(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": {"me": {"kind": "humna"}},
                          "jobs": [{"id": "j", "lane": "me"}]})
    [d] = comp.diagnostics
    assert (d.code, d.hint) == ("STR104", "did you mean 'human'?")


@pytest.mark.parametrize("kind", ["reveiw", 5, None])
def test_a_review_with_a_bad_kind_is_not_told_to_drop_revise(tmp_path: Path, kind: Any) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": [
        {"id": "d", "lane": "a"},
        {"id": "r", "lane": "b", "kind": kind, "needs": ["d"],
         "revise": {"target": "d", "max": 1}}]})
    assert codes(comp) == ["STR104"], [d.message for d in comp.diagnostics]


def test_a_checkpoint_with_a_bad_kind_is_not_told_to_drop_choices(tmp_path: Path) -> None:
    comp = run(tmp_path, {"name": "w", "lanes": LANES, "jobs": [
        {"id": "c", "lane": "a", "kind": ["checkpoint"], "choices": {"go": []}}]})
    assert codes(comp) == ["STR104"], [d.message for d in comp.diagnostics]


def _places(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children: list[tuple[Any, Any]] = (list(node.items()) if isinstance(node, dict) else
                                       list(enumerate(node)) if isinstance(node, list) else [])
    return [here] + [p for key, value in children for p in _places(value, (*here, key))]


@pytest.mark.parametrize("place", _places(GOOD), ids=str)
def test_a_value_of_the_wrong_type_anywhere_is_said_in_words(place: tuple[Any, ...]) -> None:
    for wrong in ("text", 7, 2.5, [], ["x"], {}, True, None):
        doc = json.loads(json.dumps(GOOD))
        if not place:
            doc = wrong
        else:
            *parents, last = place
            node = doc
            for part in parents:
                node = node[part]
            node[last] = wrong
        found = schema.validate_document(doc)
        assert not [d.message for d in found if d.code == "STR100"], (place, wrong)
