"""The CLI's own behaviour, in process (``striatum.cli.main.run``): no database needed."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

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
