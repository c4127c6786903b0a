"""Where a diagnostic points, whatever ends the lines (\\r\\n, \\r or \\n), and how much of
what the user wrote a message quotes back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from striatum.cli.output import format_diagnostic, source_line
from striatum.compiler.compile import Compilation, check
from striatum.compiler.diagnostics import Diagnostic
from striatum.compiler.lint import lint

BREAKS = {"lf": "\n", "crlf": "\r\n", "cr": "\r"}


def compiled(tmp_path: Path, text: str | bytes, name: str = "workflow.json") -> Compilation:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return check(str(path))


def located(comp: Compilation) -> list[tuple[str, int | None, int | None]]:
    return [(d.code, d.line, d.column) for d in comp.diagnostics]


# ---------------------------------------------------------------- line breaks


@pytest.mark.parametrize("eol", BREAKS)
def test_json_positions_count_every_line_break(tmp_path: Path, eol: str) -> None:
    text = BREAKS[eol].join(['{"name": "w",', '"lanes": {"a": {"command": ["x"]}},',
                             '"jobs": [{"id": "j", "lane": "b"}]}'])
    assert located(compiled(tmp_path, text)) == [("STR201", 3, 30)]


@pytest.mark.parametrize("eol", BREAKS)
def test_json_syntax_errors_count_every_line_break(tmp_path: Path, eol: str) -> None:
    text = BREAKS[eol].join(["{", '  "name": "w",', "}"])
    assert located(compiled(tmp_path, text)) == [("STR010", 3, 1)]


@pytest.mark.parametrize("eol", BREAKS)
def test_a_nul_byte_is_found_on_its_line(tmp_path: Path, eol: str) -> None:
    raw = BREAKS[eol].join(["{", '  "name": "w\x00"}']).encode()
    assert located(compiled(tmp_path, raw)) == [("STR003", 2, 13)]


@pytest.mark.parametrize("eol", BREAKS)
def test_dsl_positions_count_every_line_break(tmp_path: Path, eol: str) -> None:
    text = BREAKS[eol].join(["workflow w  # a comment", "lane a = human", "task t by b"])
    assert located(compiled(tmp_path, text, "w.stm")) == [("STR201", 3, 11)]


@pytest.mark.parametrize("eol", BREAKS)
def test_dsl_syntax_errors_count_every_line_break(tmp_path: Path, eol: str) -> None:
    text = BREAKS[eol].join(["workflow w", "# a comment", "task a by { }"])
    assert located(compiled(tmp_path, text, "w.stm")) == [("STR011", 3, 11)]


def test_a_bare_cr_ends_a_dsl_comment(tmp_path: Path) -> None:
    comp = compiled(tmp_path, "workflow w # a comment\rlane a = human\rtask t by a\r", "w.stm")
    assert comp.ok and comp.workflow is not None and comp.workflow.job_ids == ("t",)


def test_an_unterminated_string_ends_at_a_crlf(tmp_path: Path) -> None:
    comp = compiled(tmp_path, 'workflow w\r\ntask t by a { prompt "p.md\r\n}\r\n', "w.stm")
    [d] = comp.diagnostics
    assert (d.code, d.line, d.column) == ("STR011", 2, 22)
    assert d.message.startswith("unterminated string")


def test_the_caret_line_is_the_line_the_locator_counted(tmp_path: Path) -> None:
    # U+2028 is a line break to str.splitlines, not to an editor or to the locator.
    text = '{"name": "w", "title": "a\u2028b",\n"lanes": {"a": {"command": ["x"]}},\n' \
           '"jobs": [{"id": "j", "lane": "b"}]}'
    comp = compiled(tmp_path, text)
    [d] = comp.diagnostics
    assert d.line == 3
    assert source_line(text, 3) == '"jobs": [{"id": "j", "lane": "b"}]}'
    assert '    3 | "jobs"' in format_diagnostic(d, text)
    assert [source_line("a\rb\r\nc\nd", n) for n in (1, 2, 3, 4, 5)] == ["a", "b", "c", "d", None]


# ---------------------------------------------------------------- long values are cut

LONG = "x" * 10_000


def assert_short(found: list[Diagnostic]) -> None:
    assert found
    for d in found:
        assert len(d.message) <= 300, d.message[:100]
        assert len(d.hint or "") <= 300, (d.hint or "")[:100]


def workflow(*jobs: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": list(jobs),
                       **extra})


@pytest.mark.parametrize("doc", [
    workflow({"id": LONG, "lane": "a"}),
    workflow({"id": "j", "lane": LONG}),
    workflow({"id": "j", "lane": "a", LONG: 1}),
    workflow({"id": "j", "lane": "a", "kind": LONG}),
    workflow({"id": "j", "lane": "a", "title": LONG}),
    workflow({"id": "j", "lane": "a", "produces": [LONG]}),
    workflow({"id": "j", "lane": "a", "produces": ["../" + "x" * 1000]}),
    workflow({"id": "j", "lane": "a", "prompt": "/" + "x" * 1000}),
    workflow({"id": "j", "lane": "a"}, vars={LONG: 1}),
    workflow({"id": "j", "lane": "a"}, final=[LONG]),
    '{"name": "w", "' + LONG + '": 1, "' + LONG + '": 2}',
], ids=["id", "lane", "key", "enum", "title", "path", "climbing", "prompt", "var", "final",
        "duplicate"])
def test_a_long_value_is_cut_in_contract_errors(tmp_path: Path, doc: str) -> None:
    assert_short(compiled(tmp_path, doc).diagnostics)


@pytest.mark.parametrize("text", [
    "workflow w\ntask t by a { " + LONG + " }",
    "workflow w\nlane " + LONG + " = human\nlane " + LONG + " = human",
    "workflow w\ntask " + LONG + " by a { attempts 1 attempts 2 }",
    "workflow w\nlane a = " + LONG,
    'workflow w\nlane a = "' + LONG + '"',
    "workflow " + LONG + "\ntask t by a",
])
def test_a_long_value_is_cut_in_dsl_errors(tmp_path: Path, text: str) -> None:
    assert_short(compiled(tmp_path, text, "w.stm").diagnostics)


def test_a_long_value_is_cut_in_graph_errors(tmp_path: Path) -> None:
    path = "p/" + "x" * 1000
    doc = workflow({"id": "j", "lane": "a", "produces": [path]},
                   {"id": "k", "lane": "a", "produces": [path], "consumes": ["q/" + "y" * 1000]})
    assert_short(compiled(tmp_path, doc).diagnostics)


def test_a_long_value_is_cut_in_lint_findings(tmp_path: Path) -> None:
    glob, model = "src/" + "x" * 1000, "m" * 4000
    (tmp_path / "p.md").write_text("{{ " + "v" * 5000 + " }}\n" + "{% if %}" + "z" * 5000)
    doc = json.dumps({"name": "w", "final": ["k", "r"], "lanes": {
        "a": {"command": ["claude", "--model", model]},
        "b": {"command": ["claude", "--model", model]}}, "jobs": [
        {"id": "j", "lane": "a", "writes": [glob], "prompt": "p.md", "produces": [glob]},
        {"id": "k", "lane": "a", "writes": [glob], "prompt": "q/" + "y" * 1000},
        {"id": "r", "lane": "b", "kind": "review", "needs": ["j"],
         "prompt": {"text": "{{ " + "w" * 5000 + " }}"}}]})
    comp = compiled(tmp_path, doc)
    assert comp.ok, comp.diagnostics
    found = lint(comp)
    assert {d.code for d in found} >= {"STR304", "STR305", "STR306", "STR307", "STR308"}
    assert_short(found)
