"""The CLI's own behaviour, in process (``striatum.cli.main.run``): no database needed."""

from __future__ import annotations

import hashlib
import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from striatum.cli.main import run

UNFORMATTED = '{"name":"w","lanes":{"a":{"command":["x"]}},"jobs":[{"id":"j","lane":"a"}]}'


@dataclass
class Result:
    code: int
    out: str
    err: str


def invoke(*argv: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(list(argv))
    return Result(code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("how", ["-o", "-w"])
def test_fmt_json_names_the_syntax_written_when_it_writes_a_file(tmp_path: Path,
                                                                 how: str) -> None:
    source = tmp_path / "w.json"
    source.write_text(UNFORMATTED, encoding="utf-8")
    written = tmp_path / "out.stm" if how == "-o" else source
    where = ["-o", str(written), "--to", "dsl"] if how == "-o" else ["-w"]
    result = invoke("workflow", "fmt", "--json", *where, str(source))
    assert result.code == 0, result.err
    document = json.loads(result.out)
    assert document["to"] == ("dsl" if how == "-o" else "json")
    assert document["output"] == (str(written) if how == "-o" else None)
    assert document["changed"] is True and written.read_text(encoding="utf-8") != UNFORMATTED


def test_json_is_chosen_per_command_line_not_per_process(tmp_path: Path) -> None:
    source = tmp_path / "w.json"
    source.write_text(UNFORMATTED, encoding="utf-8")
    with_json = invoke("workflow", "validate", "--json", str(source))
    assert with_json.code == 0 and json.loads(with_json.out)["valid"] is True
    # The same process, a command line without --json: its error is text.
    refused = invoke("workflow", "fmt", "--write", "--to", "dsl", str(source))
    assert refused.code == 1
    assert refused.err.startswith("striatum: error: --write would put dsl into a json file")
    assert "  hint: use -o NEW_FILE to convert" in refused.err
    # And with --json again, JSON.
    again = invoke("workflow", "fmt", "--write", "--to", "dsl", "--json", str(source))
    assert again.code == 1 and json.loads(again.err)["error"] == "usage"


USAGE_ERRORS = {
    "a missing option": (["job", "claim", "--json"], "Missing option '--run'.",
                         "striatum job claim"),
    "a bad choice": (["workflow", "graph", "--json", "--format", "png", "w.json"],
                     "Invalid value for '--format': 'png' is not one of 'mermaid', 'dot', "
                     "'json'.", "striatum workflow graph"),
    "an unknown command": (["workflow", "nosuchverb", "--json"],
                           "No such command 'nosuchverb'.", "striatum workflow"),
    "a bad int": (["job", "claim", "--json", "--run", "r", "--lease-seconds", "soon"],
                  "Invalid value for '--lease-seconds': 'soon' is not a valid integer range.",
                  "striatum job claim"),
    "an unknown option": (["workflow", "plan", "--nope", "w.json", "--json"],
                          "No such option '--nope'.", "striatum workflow plan"),
    "a missing argument": (["workflow", "validate", "--json"], "Missing argument 'FILE'.",
                           "striatum workflow validate"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_a_usage_error_with_json_anywhere_is_one_json_document_on_stderr(case: str) -> None:
    argv, message, command = USAGE_ERRORS[case]
    result = invoke(*argv)
    assert result.code == 1 and result.out == ""
    assert json.loads(result.err) == {"error": "usage", "message": message,
                                      "hint": f"see `{command} --help`"}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_a_usage_error_without_json_is_clicks_text(case: str) -> None:
    argv, message, _ = USAGE_ERRORS[case]
    result = invoke(*[a for a in argv if a != "--json"])
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("Usage: striatum") and f"Error: {message}" in result.err


def test_json_after_a_double_dash_is_an_operand_not_the_option() -> None:
    result = invoke("workflow", "validate", "--", "--json", "extra")
    assert result.code == 1 and result.err.startswith("Usage: striatum workflow validate")


def test_an_argument_that_is_not_utf8_is_a_json_usage_error_with_json() -> None:
    result = invoke("run", "status", "r\udcff", "--json")
    assert result.code == 1 and result.out == ""
    assert json.loads(result.err) == {"error": "usage",
                                      "message": "argument 3 is not valid UTF-8"}


MINIMAL = str(Path(__file__).resolve().parents[2] / "examples" / "minimal" / "workflow.json")


def test_counts_of_one_are_singular() -> None:
    validated = invoke("workflow", "validate", MINIMAL)
    assert validated.out.strip().endswith(": valid (1 job, 1 lane)"), validated.out
    planned = invoke("workflow", "plan", MINIMAL, "--verdicts", "")
    assert planned.code == 0, planned.err
    lines = planned.out.splitlines()
    assert "plan for minimal: 1 job in 1 wave" in lines
    assert "worst case: 1 job execution (exact)" in lines
    assert "paths: 1 distinct verdict/choice outcome" in lines
    assert "walk: completed after 1 job execution" in lines


def test_counts_other_than_one_are_plural(tmp_path: Path) -> None:
    source = tmp_path / "w.json"
    source.write_text(json.dumps({
        "name": "w", "lanes": {"a": {"command": ["x"]}, "b": {"command": ["y"]}},
        "jobs": [{"id": "j", "lane": "a"}, {"id": "k", "lane": "b", "needs": ["j"]}]}),
        encoding="utf-8")
    assert invoke("workflow", "validate", str(source)).out.strip().endswith(
        ": valid (2 jobs, 2 lanes)")
    assert "plan for w: 2 jobs in 2 waves" in invoke("workflow", "plan", str(source)).out


def test_compile_to_stdout_prints_exactly_the_bytes_its_digest_is_of() -> None:
    result = invoke("workflow", "compile", MINIMAL)
    assert result.code == 0, result.err
    digest = result.err.strip().removeprefix("sha256:")
    assert hashlib.sha256(result.out.encode("utf-8")).hexdigest() == digest
    assert json.loads(result.out)["workflow"]["name"] == "minimal"


def test_init_onto_existing_files_counts_and_names_them_exactly(tmp_path: Path) -> None:
    target = tmp_path / "flow"
    assert invoke("workflow", "init", "--style", "code-change", str(target)).code == 0
    refused = invoke("workflow", "init", "--style", "code-change", str(target))
    assert refused.code == 4
    named = ", ".join(str(target / p) for p in ("workflow.json", "prompts/apply.md",
                                                  "prompts/check.md"))
    assert refused.err.splitlines()[0] == (
        f"striatum: error: 4 files already exist: {named} and 1 more")
    as_json = json.loads(invoke("workflow", "init", "--json", str(target)).err)
    assert as_json["details"]["files"] == [
        str(target / p) for p in ("workflow.json", "prompts/apply.md", "prompts/check.md",
                                  "prompts/draft.md")]

    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "workflow.json").write_text("{}", encoding="utf-8")
    one = invoke("workflow", "init", "--style", "minimal", str(lone))
    assert one.err.splitlines()[0] == (
        f"striatum: error: 1 file already exists: {lone / 'workflow.json'}")


def test_init_offers_exactly_the_starters_styles() -> None:
    from striatum.cli.workflow import init
    from striatum.compiler.starters import STYLES

    [style] = [p for p in init.params if p.name == "style"]
    assert isinstance(style.type, click.Choice) and tuple(style.type.choices) == STYLES
