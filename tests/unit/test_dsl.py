"""The DSL: parsing into the JSON document, positions, syntax errors in words,
and the IR -> DSL -> IR round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum import resources
from striatum.compiler.dsl import loader, parse_dsl
from striatum.compiler.dsl.printer import to_dsl
from striatum.compiler.ir import (
    BUDGET_KEYS,
    Budget,
    Job,
    Lane,
    Prompt,
    Revision,
    Workflow,
    normalize,
    to_document,
)
from striatum.compiler.load import Source, parse_bytes
from striatum.compiler.text import line_starts

EXAMPLE = """\
workflow code-change "optional title"
var audience = "maintainers"        # value: string | integer | true | false
var rounds = 2
var strict = false
final apply, report
lane coder    = ["codex", "exec", "--full-auto", "{prompt_file}"] timeout 1800 env { OPENAI_MODEL = "x", FOO = "bar" }
lane reviewer = ["claude", "-p"] stdin "{prompt_file}" sandbox
lane me       = human
lane bot      = operator
task draft by coder {
  title "Write the draft"
  prompt "prompts/draft.md"          # a template file
  produces "draft.md", "notes.md"
  consumes "spec.md"
  writes "src/**", "tests/**"
  isolation worktree
  attempts 5
}
review check by reviewer after draft {
  prompt text "Review {{ artifacts['draft.md'] }}"
  revise draft max 1 on_exhausted escalate
}
checkpoint go by me after check {
  choice continue -> apply, report
  choice cancel
}
task apply by coder after go
task report by coder after go, check
"""  # noqa: E501 - line 6 is as long as a real lane line

EXAMPLE_DOCUMENT: dict[str, Any] = {
    "name": "code-change",
    "title": "optional title",
    "vars": {"audience": "maintainers", "rounds": 2, "strict": False},
    "final": ["apply", "report"],
    "lanes": {
        "coder": {"command": ["codex", "exec", "--full-auto", "{prompt_file}"],
                  "timeout": 1800, "env": {"OPENAI_MODEL": "x", "FOO": "bar"}},
        "reviewer": {"command": ["claude", "-p"], "stdin": "{prompt_file}", "sandbox": True},
        "me": {"kind": "human"},
        "bot": {"kind": "operator"},
    },
    "jobs": [
        {"id": "draft", "lane": "coder", "kind": "task", "title": "Write the draft",
         "prompt": "prompts/draft.md", "produces": ["draft.md", "notes.md"],
         "consumes": ["spec.md"], "writes": ["src/**", "tests/**"], "isolation": "worktree",
         "max_attempts": 5},
        {"id": "check", "lane": "reviewer", "kind": "review", "needs": ["draft"],
         "prompt": {"text": "Review {{ artifacts['draft.md'] }}"},
         "revise": {"target": "draft", "max": 1, "on_exhausted": "escalate"}},
        {"id": "go", "lane": "me", "kind": "checkpoint", "needs": ["check"],
         "choices": {"continue": ["apply", "report"], "cancel": []}},
        {"id": "apply", "lane": "coder", "kind": "task", "needs": ["go"]},
        {"id": "report", "lane": "coder", "kind": "task", "needs": ["go", "check"]},
    ],
}


def parsed(text: str) -> Source:
    source = parse_dsl(text, "flows/w.stm")
    assert source.diagnostics == [], source.diagnostics
    return source


def only(text: str) -> tuple[int | None, int | None, str, str]:
    """The one diagnostic ``text`` gets: line, column, message, hint."""
    source = parse_dsl(text, "w.stm")
    assert len(source.diagnostics) == 1, source.diagnostics
    d = source.diagnostics[0]
    assert d.file == "w.stm" and source.document is None
    return d.line, d.column, d.message, d.hint or ""


# ---------------------------------------------------------------------------
# The document


def test_example_parses_into_the_json_document() -> None:
    source = parsed(EXAMPLE)
    assert source.document == EXAMPLE_DOCUMENT
    assert list(source.document["lanes"]) == ["coder", "reviewer", "me", "bot"]
    assert source.format == "dsl" and str(source.directory) == "flows"


def test_var_values_keep_their_type() -> None:
    document = parsed('workflow w\nvar a = 1\nvar b = true\nvar c = "1"\nvar d = -7').document
    assert [(k, type(v)) for k, v in document["vars"].items()] == [
        ("a", int), ("b", bool), ("c", str), ("d", int)]


def test_keys_only_when_written() -> None:
    document = parsed('workflow w\nlane a = ["x"]\ntask t by a').document
    assert document == {"name": "w", "lanes": {"a": {"command": ["x"]}},
                        "jobs": [{"id": "t", "lane": "a", "kind": "task"}]}
    assert parsed("workflow w").document == {"name": "w"}


def test_statements_in_any_order_and_on_one_line() -> None:
    text = 'workflow w task t by a { attempts 2 prompt "p.md" } lane a = human final t'
    document = parsed(text).document
    assert document["lanes"] == {"a": {"kind": "human"}}
    assert document["final"] == ["t"]
    assert document["jobs"][0] == {"id": "t", "lane": "a", "kind": "task", "max_attempts": 2,
                                   "prompt": "p.md"}


def test_keywords_are_names_where_only_a_name_fits() -> None:
    text = """workflow task
lane lane = ["x"] env { env = "1", timeout = "2" }
task review by lane after checkpoint, by {
  revise max max 2
}
checkpoint checkpoint by lane { choice choice -> after, workflow }
task on_repeat by lane after continue
"""
    document = parsed(text).document
    assert document["name"] == "task"
    assert document["lanes"]["lane"]["env"] == {"env": "1", "timeout": "2"}
    assert document["jobs"][0]["needs"] == ["checkpoint", "by"]
    assert document["jobs"][0]["revise"] == {"target": "max", "max": 2}
    assert document["jobs"][1]["choices"] == {"choice": ["after", "workflow"]}
    assert document["jobs"][2]["id"] == "on_repeat"
    assert document["jobs"][2]["needs"] == ["continue"]


def test_strings_decode_json_escapes() -> None:
    document = parsed('workflow w "tab\\there \\"q\\" \\u00e9 \\\\ # not a comment"').document
    assert document["title"] == 'tab\there "q" é \\ # not a comment'


def test_choices_and_revise_are_accepted_on_any_kind() -> None:
    # The contract check rejects them with a better message than a syntax error could.
    document = parsed('workflow w\ntask t by a { revise x max 1 choice go -> t }').document
    assert document["jobs"][0]["revise"] == {"target": "x", "max": 1}
    assert document["jobs"][0]["choices"] == {"go": ["t"]}


# ---------------------------------------------------------------------------
# Positions


@pytest.mark.parametrize(("path", "key", "where"), [
    ((), False, (1, 1)),
    (("name",), False, (1, 10)),
    (("name",), True, (1, 1)),
    (("title",), False, (1, 22)),
    (("vars", "audience"), False, (2, 16)),
    (("vars", "audience"), True, (2, 5)),
    (("vars", "rounds"), False, (3, 14)),
    (("final", 0), False, (5, 7)),
    (("final", 1), False, (5, 14)),
    (("lanes", "coder"), False, (6, 1)),
    (("lanes", "coder"), True, (6, 6)),
    (("lanes", "coder", "command", 2), False, (6, 35)),
    (("lanes", "coder", "timeout"), True, (6, 67)),
    (("lanes", "coder", "timeout"), False, (6, 75)),
    (("lanes", "coder", "env", "FOO"), True, (6, 106)),
    (("lanes", "reviewer", "stdin"), False, (7, 40)),
    (("lanes", "me", "kind"), False, (8, 17)),
    (("jobs", 0), False, (10, 1)),
    (("jobs", 0, "id"), False, (10, 6)),
    (("jobs", 0, "lane"), False, (10, 15)),
    (("jobs", 0, "lane"), True, (10, 12)),
    (("jobs", 0, "prompt"), True, (12, 3)),
    (("jobs", 0, "prompt"), False, (12, 10)),
    (("jobs", 0, "produces", 1), False, (13, 24)),
    (("jobs", 0, "max_attempts"), True, (17, 3)),
    (("jobs", 1), False, (19, 1)),
    (("jobs", 1, "needs", 0), False, (19, 32)),
    (("jobs", 1, "prompt", "text"), False, (20, 15)),
    (("jobs", 1, "revise"), True, (21, 3)),
    (("jobs", 1, "revise", "target"), False, (21, 10)),
    (("jobs", 1, "revise", "max"), True, (21, 16)),
    (("jobs", 1, "revise", "max"), False, (21, 20)),
    (("jobs", 1, "revise", "on_exhausted"), False, (21, 35)),
    (("jobs", 2, "choices"), False, (24, 3)),
    (("jobs", 2, "choices", "continue"), True, (24, 10)),
    (("jobs", 2, "choices", "continue", 1), False, (24, 29)),
    (("jobs", 2, "choices", "cancel"), True, (25, 10)),
    (("jobs", 4, "needs", 1), False, (28, 32)),
])
def test_locator(path: tuple[str | int, ...], key: bool, where: tuple[int, int]) -> None:
    locator = parsed(EXAMPLE).locator
    assert locator is not None
    assert locator(path, key) == where


def test_locator_falls_back_to_the_nearest_written_ancestor() -> None:
    locator = parsed(EXAMPLE).locator
    assert locator is not None
    # Not written: a default, or a key the schema would say is missing.
    assert locator(("jobs", 3, "max_attempts"), True) == locator(("jobs", 3), False) == (27, 1)
    assert locator(("jobs", 1, "revise", "nope", 3), False) == (21, 3)
    assert locator(("jobs", 0, "id"), True) == (10, 6)  # no keyword: the value itself
    assert locator(("nothing",), False) == (1, 1)


# ---------------------------------------------------------------------------
# Syntax errors: one STR011, where the mistake is, in words


def test_missing_by() -> None:
    line, column, message, hint = only('workflow w\ntask draft coder { prompt "p.md" }')
    assert (line, column) == (2, 12)
    assert message == "expected `by` and a lane name after `task draft`, found `coder`"
    assert "task ID by LANE" in hint


def test_trailing_comma_in_after_list() -> None:
    line, column, message, hint = only('workflow w\ntask b by c after a, {\n}')
    assert (line, column) == (2, 20)
    assert message == "expected a job id after `,`, found `{`"
    assert "trailing comma" in hint


def test_trailing_comma_swallowing_the_next_keyword() -> None:
    line, column, message, _ = only('workflow w\ntask b by c after a,\ntask d by c')
    assert (line, column) == (2, 20)
    assert message == "a trailing comma before `task`: the list took `task` as its last item"


def test_unknown_body_item_with_did_you_mean() -> None:
    line, column, message, hint = only('workflow w\ntask a by c {\n  promt "x"\n}')
    assert (line, column) == (3, 3)
    assert message.startswith("`promt` is not a job body item; expected a job body item "
                              "(title, prompt, produces")
    assert hint == "did you mean `prompt`?"


def test_json_words_in_a_body_are_coached() -> None:
    _, _, _, hint = only('workflow w\ntask a by c { needs "b" }')
    assert "after A, B" in hint
    _, _, _, hint = only('workflow w\ntask a by c { max_attempts 2 }')
    assert hint == "write `attempts N`"


def test_json_given_to_the_dsl() -> None:
    line, column, message, hint = only('{\n  "name": "w",\n  "lanes": {}\n}')
    assert (line, column) == (1, 1)
    assert message == "this looks like a JSON workflow, not the DSL"
    assert ".json" in hint


def test_missing_workflow_header() -> None:
    line, column, message, hint = only('# my flow\nlane a = human\n')
    assert (line, column) == (2, 1)
    assert message == "a DSL workflow starts with `workflow NAME`, found `lane`"
    assert "workflow code-change" in hint


def test_missing_equals_after_lane_name() -> None:
    line, column, message, _ = only('workflow w\nlane coder ["x"]')
    assert (line, column) == (2, 12)
    assert message == "expected `=` after `lane coder`, found `[`"


def test_missing_lane_name_after_by() -> None:
    line, column, message, _ = only('workflow w\ntask a by { }')
    assert (line, column) == (2, 11)
    assert message == "expected a lane name after `by`, found `{`"


def test_unterminated_string() -> None:
    line, column, message, hint = only('workflow w\ntask a by c {\n  prompt "p.md\n}')
    assert (line, column) == (3, 10)
    assert message.startswith("unterminated string")
    assert "\\n" in hint


def test_bad_escape_points_at_the_backslash() -> None:
    line, column, message, _ = only('workflow w "a\\qb"')
    assert (line, column) == (1, 14)
    assert message == "invalid escape `\\q` in a string"


def test_single_quotes_and_colons() -> None:
    assert only("workflow w\nlane a = ['x']")[:3] == (2, 11, "strings take double quotes, "
                                                            "found `'`")
    line, column, message, _ = only('workflow w\ntask a by c { prompt: "x" }')
    assert (line, column) == (2, 21)
    assert message == "unexpected `:` after `prompt`: the DSL has no colons"


def test_equals_in_a_body() -> None:
    line, column, message, hint = only('workflow w\ntask a by c { prompt = "x" }')
    assert (line, column) == (2, 22)
    assert message == 'expected a "string" or `text` after `prompt`, found `=`'
    assert "without `=`" in hint


def test_wrong_enum_value_with_did_you_mean() -> None:
    line, column, message, hint = only('workflow w\ntask a by c { isolation worktre }')
    assert (line, column) == (2, 25)
    assert message == "expected `none` or `worktree` after `isolation`, found `worktre`"
    assert hint == "did you mean `worktree`?"
    _, _, message, hint = only('workflow w\nlane a = humna')
    assert message == "expected `[`, `human` or `operator` after `=`, found `humna`"
    assert hint == "did you mean `human`?"


def test_command_must_be_a_list() -> None:
    _, _, message, hint = only('workflow w\nlane a = "codex"')
    assert message.endswith('found the string "codex"')
    assert "list of strings" in hint


def test_unclosed_body_at_end_of_file() -> None:
    line, column, message, hint = only('workflow w\ntask a by c {\n  attempts 2\n')
    assert (line, column) == (3, 13)
    assert message.startswith("the file ends early: expected a job body item")
    assert "not closed" in hint


def test_missing_closing_brace_before_next_job() -> None:
    line, column, _, hint = only('workflow w\ntask a by c { attempts 2\ntask b by c')
    assert (line, column) == (3, 1)
    assert "`}`" in hint


def test_second_workflow_header() -> None:
    line, column, message, _ = only("workflow w\nworkflow v")
    assert (line, column) == (2, 1)
    assert message.startswith("`workflow` again")


def test_empty_text() -> None:
    assert only("")[:3] == (1, 1, "a DSL workflow starts with `workflow NAME`, found the end "
                                  "of the file")


def test_oversized_number() -> None:
    line, column, message, _ = only("workflow w\nvar n = " + "9" * 5000)
    assert (line, column) == (2, 9)
    assert "too large" in message


# ---------------------------------------------------------------------------
# What the document cannot hold


@pytest.mark.parametrize(("text", "where", "message"), [
    ('workflow w\nlane a = human\nlane b = human\nlane a = ["x"]', (4, 6),
     "lane `a` is declared twice"),
    ('workflow w\nvar x = 1\nvar x = "1"', (3, 5), "variable `x` is declared twice"),
    ('workflow w\ntask t by a {\n  prompt "a.md"\n  prompt text "b"\n}', (4, 3),
     "`prompt` is given twice in job `t`"),
    ('workflow w\ntask t by a { attempts 1 attempts 2 }', (2, 26),
     "`attempts` is given twice in job `t`"),
    ('workflow w\ncheckpoint c by a {\n  choice go -> x\n  choice go\n}', (4, 10),
     "choice `go` is given twice in job `c`"),
    ("workflow w\nfinal a\nfinal b", (3, 1), "`final` is given twice in the workflow"),
    ('workflow w\nlane a = ["x"] timeout 1 timeout 2', (2, 26),
     "`timeout` is given twice in lane `a`"),
    ('workflow w\nlane a = ["x"] env { K = "1", K = "2" }', (2, 31),
     "`K` is given twice in one env"),
    ("workflow w\nreview r by a { revise t max 1 max 2 }", (2, 32),
     "`max` is given twice in a revise"),
])
def test_given_twice(text: str, where: tuple[int, int], message: str) -> None:
    line, column, said, hint = only(text)
    assert ((line, column), said) == (where, message)
    assert hint.startswith("the first is at line")


def test_unexpected_failure_is_still_a_diagnostic(monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(text: str) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(loader, "parse_nodes", explode)
    source = parse_dsl("workflow w", "w.stm")
    assert [(d.code, d.line, d.column) for d in source.diagnostics] == [("STR011", 1, 1)]
    assert "RecursionError" in source.diagnostics[0].message


def test_parse_bytes_dispatches_dsl_by_suffix() -> None:
    source = parse_bytes(b"workflow w\nlane a = human\ntask t by a\n", "w.stm")
    assert source.ok and source.format == "dsl"


# ---------------------------------------------------------------------------
# Nothing raises

PIECES = ("workflow", "var", "final", "lane", "task", "review", "checkpoint", "by", "after",
          "title", "prompt", "text", "produces", "consumes", "writes", "isolation", "attempts",
          "revise", "max", "on_exhausted", "on_repeat", "continue", "choice", "human",
          "operator", "timeout", "env",
          "stdin", "worktree", "none", "escalate", "true", "{", "}", "[", "]", ",", "=", "->",
          '"x"', '"a\\nb"', '"', "'", ":", "1", "-2", "0" * 5000, "w", "a-b", "é", "#c\n", "\n",
          "\t", "\\", "@", "\x00", "\r\n", '"\\u12"')


def check_never_raises(text: str) -> None:
    source = parse_dsl(text, "w.stm")
    lines = len(line_starts(text))  # a line ends at \r\n, \r or \n
    for d in source.diagnostics:
        assert d.code == "STR011"
        assert d.file == "w.stm" and d.message
        assert d.line is not None and 1 <= d.line <= lines
        assert d.column is not None and d.column >= 1
    assert (source.document is None) == bool(source.diagnostics)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    check_never_raises(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.sampled_from((" ", "", "\n")))
def test_token_soup_never_raises(pieces: list[str], glue: str) -> None:
    check_never_raises(glue.join(pieces))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(EXAMPLE)), st.integers(0, 8), st.text(max_size=3))
def test_damaged_example_never_raises(at: int, cut: int, insert: str) -> None:
    check_never_raises(EXAMPLE[:at] + insert + EXAMPLE[at + cut:])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise(raw: bytes) -> None:
    source = parse_bytes(raw, "w.stm")
    assert source.document is not None or source.diagnostics


# ---------------------------------------------------------------------------
# Round trips

KEYWORDS = ("task", "review", "max", "after", "by", "env", "choice", "workflow", "none")
names = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,12}", fullmatch=True),
                  st.sampled_from(KEYWORDS))
env_keys = st.one_of(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
                     st.sampled_from(KEYWORDS))
texts = st.text(max_size=20)
paths = st.lists(texts, max_size=3, unique=True).map(tuple)
id_lists = st.lists(names, max_size=3, unique=True).map(tuple)


@st.composite
def lanes(draw: st.DrawFn, name: str) -> Lane:
    kind = draw(st.sampled_from(("command", "command", "operator", "human")))
    if kind != "command":
        return Lane(name, kind)
    env = draw(st.lists(st.tuples(env_keys, texts), max_size=3, unique_by=lambda p: p[0]))
    return Lane(name, "command", tuple(draw(st.lists(texts, min_size=1, max_size=4))),
                stdin=draw(st.none() | texts), timeout=draw(st.none() | st.integers(1, 604800)),
                env=tuple(env), sandbox=draw(st.booleans()))


@st.composite
def jobs(draw: st.DrawFn, job_id: str, index: int) -> Job:
    prompt = draw(st.none() | st.builds(Prompt, st.sampled_from(("file", "text")), texts))
    revise = draw(st.none() | st.builds(Revision, names, st.integers(1, 1000),
                                        st.sampled_from(("escalate", "fail", "accept"))))
    choices = draw(st.lists(st.tuples(names, id_lists), max_size=3, unique_by=lambda c: c[0]))
    return Job(job_id, draw(names), draw(st.sampled_from(("task", "review", "checkpoint"))),
               title=draw(st.none() | texts), needs=draw(id_lists), prompt=prompt,
               produces=draw(paths), consumes=draw(paths), writes=draw(paths),
               isolation=draw(st.sampled_from(("none", "worktree"))),
               max_attempts=draw(st.integers(1, 100)), revise=revise, choices=tuple(choices),
               index=index)


@st.composite
def workflows(draw: st.DrawFn) -> Workflow:
    lane_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    job_ids = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    scalars = st.one_of(texts, st.integers(-10**20, 10**20), st.booleans())
    variables = draw(st.lists(st.tuples(names, scalars), max_size=3, unique_by=lambda v: v[0]))
    return Workflow(
        name=draw(names),
        lanes=tuple(draw(lanes(name)) for name in lane_names),
        jobs=tuple(draw(jobs(job_id, i)) for i, job_id in enumerate(job_ids)),
        title=draw(st.none() | texts), vars=tuple(variables),
        final=draw(id_lists), budget=draw(st.none() | budgets))


limits = st.none() | st.integers(1, 10**9)
budgets = st.builds(Budget, limits, limits, limits).filter(
    lambda b: any(getattr(b, key) is not None for key in BUDGET_KEYS))


def round_trip(workflow: Workflow) -> str:
    text = to_dsl(workflow)
    source = parsed(text)
    again = normalize(source.document)
    assert again == workflow
    # True == 1 in Python, so the IR comparison alone would miss a bool read as an int.
    assert [type(v) for _, v in again.vars] == [type(v) for _, v in workflow.vars]
    assert to_dsl(again) == text
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_ir_round_trips_through_the_dsl(workflow: Workflow) -> None:
    text = round_trip(workflow)
    assert text.endswith("\n") and not text.endswith("\n\n")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_json_document_round_trips_through_the_dsl(workflow: Workflow) -> None:
    document = json.loads(json.dumps(to_document(workflow)))
    round_trip(normalize(document))


def test_example_json_documents_round_trip() -> None:
    workflow = normalize(EXAMPLE_DOCUMENT)
    round_trip(workflow)
    for path in sorted(resources.examples_dir().glob("*/workflow.json")):
        round_trip(normalize(json.loads(path.read_text(encoding="utf-8"))))


def test_canonical_text() -> None:
    text = to_dsl(normalize(EXAMPLE_DOCUMENT))
    assert text.startswith('workflow code-change "optional title"\n\nvar audience = '
                           '"maintainers"\nvar rounds = 2\nvar strict = false\n\n'
                           "final apply, report\n\nlane coder    = [")
    assert "\nlane me       = human\n" in text
    assert "review check by reviewer after draft {\n" \
           '  prompt text "Review {{ artifacts[\'draft.md\'] }}"\n' \
           "  revise draft max 1\n}\n" in text  # the default on_exhausted is left out
    assert text.endswith("task apply by coder after go\ntask report by coder after go, check\n")


def test_on_repeat_is_written_after_the_revise_and_formats_back() -> None:
    text = ("workflow w\nlane a = operator\nlane b = operator\ntask d by a\n"
            "review c by b after d {\n  revise d max 3 on_repeat escalate\n}\n")
    source = parsed(text)
    assert source.document["jobs"][1]["revise"] == {"target": "d", "max": 3,
                                                    "on_repeat": "escalate"}
    workflow = normalize(source.document)
    assert workflow.jobs[1].revise == Revision("d", 3, "escalate", "escalate")
    assert "  revise d max 3 on_repeat escalate\n" in to_dsl(workflow)
    # The default is left out, in both syntaxes.
    plain = normalize(parsed(text.replace(" on_repeat escalate", "")).document)
    assert plain.jobs[1].revise == Revision("d", 3)
    assert "on_repeat" not in to_dsl(plain)
    assert "on_repeat" not in json.dumps(to_document(plain))


def test_a_wrong_on_repeat_is_a_diagnostic() -> None:
    source = parse_dsl("workflow w\nlane a = operator\ntask d by a\n"
                       "review c by a after d { revise d max 1 on_repeat fail }\n", "w.stm")
    assert source.diagnostics and source.diagnostics[0].line == 4


def test_the_parsed_example_is_valid_under_the_contract() -> None:
    schema = pytest.importorskip("striatum.compiler.schema")
    assert schema.validate_document(parsed(EXAMPLE).document) == []


def test_to_dsl_refuses_a_name_it_cannot_spell() -> None:
    workflow = Workflow("w", (Lane("a", "command", ("x",), env=(("NOT OK", "1"),)),),
                        (Job("t", "a"),))
    with pytest.raises(ValueError, match="not an identifier"):
        to_dsl(workflow)


def _said(source_text: str, name: str, folder: str) -> list[tuple[Any, ...]]:
    from striatum.compiler.compile import check

    path = f"{folder}/{name}"
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(source_text)
    return sorted((d.code, d.message, d.hint, d.path, d.key)
                  for d in check(path).diagnostics)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_the_same_mistake_gets_the_same_diagnostic_in_either_syntax(workflow: Workflow) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        as_json = _said(json.dumps(to_document(workflow)), "w.json", folder)
        assert as_json == _said(to_dsl(workflow), "w.stm", folder)
