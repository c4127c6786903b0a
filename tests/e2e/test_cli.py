"""The command's contract: exit codes, --json, stderr for errors, no tracebacks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, Cli, executable

pytestmark = pytest.mark.e2e
CODE_CHANGE = str(REPO / "examples" / "code-change" / "workflow.json")


def assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr


def test_help_and_version(cli: Cli) -> None:
    for args in (("--help",), ("workflow", "--help"), ("workflow", "plan", "--help")):
        result = cli(*args)
        assert result.returncode == 0 and "Usage" in result.stdout
    version = cli("--version")
    assert version.returncode == 0 and "striatum" in version.stdout


def test_help_imports_no_heavy_module() -> None:
    probe = ("import sys\nfrom striatum.cli.main import run\nrun(['--help'])\n"
             "print(sorted(m for m in ('networkx','jsonschema','lark','jinja2','psycopg',"
             "'transitions') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_usage_errors_exit_1(cli: Cli) -> None:
    for args in (("workflow", "validate"), ("workflow", "nosuchverb"), ("--nope",),
                 ("workflow", "graph", "--format", "png", CODE_CHANGE),
                 ("workflow", "plan", CODE_CHANGE, "--verdicts", "check=maybe"),
                 ("workflow", "plan", CODE_CHANGE, "--verdicts", "draft=accept")):
        result = cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr and not result.stdout
        assert_clean(result)


def test_usage_errors_with_json_are_one_json_document_on_stderr(cli: Cli) -> None:
    for args in (("workflow", "validate", "--json"), ("workflow", "nosuchverb", "--json"),
                 ("job", "claim", "--json"), ("workflow", "plan", "--json", "--nope", "x"),
                 ("workflow", "graph", "--format", "png", "--json", CODE_CHANGE),
                 ("job", "claim", "--run", "r", "--lease-seconds", "soon", "--json"),
                 ("workflow", "plan", CODE_CHANGE, "--verdicts", "check=maybe", "--json")):
        result = cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert not result.stdout
        document = json.loads(result.stderr)
        assert document["error"] == "usage" and document["message"], (args, document)


@pytest.mark.parametrize("lane", ["coder=" + "[" * 5000 + "]" * 5000,
                                  'coder={"command": ["a"], "command": ["b"]}',
                                  "coder=[NaN]", "coder=[" + "9" * 5000 + "]"])
def test_junk_lane_json_is_a_usage_error_before_any_database(cli: Cli, lane: str) -> None:
    """--lane JSON gets the workflow loader's guards (depth, duplicate keys, NaN, huge
    numbers): refused as a usage error, before a database is even looked for."""
    result = cli("--dsn", "host=127.0.0.1 port=1 connect_timeout=1", "run", "prepare",
                 "--workflow", CODE_CHANGE, "--lane", lane)
    assert result.returncode == 1, result.stderr
    assert "--lane coder: not usable JSON" in result.stderr
    assert_clean(result)


@pytest.mark.parametrize("verb", ["validate", "lint", "compile", "graph", "plan", "fmt"])
def test_bad_files_exit_2_with_a_located_code(cli: Cli, tmp_path: Path, verb: str) -> None:
    cases = {
        "missing.json": None,
        "empty.json": b"",
        "binary.json": bytes(range(256)),
        "latin1.json": '{"name": "caf\u00e9"}'.encode("latin-1"),
        "broken.json": b'{"name": "x", "lanes": {',
        "broken.stm": b"workflow w\nlane = [\n",
    }
    for name, content in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        result = cli("workflow", verb, str(tmp_path / name))
        assert result.returncode == 2, (verb, name, result.stdout, result.stderr)
        out = result.stdout + result.stderr
        assert f"{tmp_path / name}:" in out and "[STR0" in out, out
        assert_clean(result)
    directory = cli("workflow", verb, str(tmp_path))
    assert directory.returncode == 2 and "STR002" in directory.stdout + directory.stderr


def test_fifty_megabyte_file(cli: Cli, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with open(big, "wb") as handle:
        handle.write(b'{"name": "' + b"x" * (50 * 1024 * 1024) + b'"}')
    result = cli("workflow", "validate", "--json", str(big))
    assert result.returncode == 2
    [d] = json.loads(result.stdout)["diagnostics"]
    assert d["code"] == "STR005"


def test_validate_json_document(cli: Cli, tmp_path: Path) -> None:
    wf = tmp_path / "w.json"
    wf.write_text('{"name": "w", "lanes": {"a": {"command": ["x"]}},\n'
                  ' "jobs": [{"id": "j", "lane": "a", "needs": ["k"]}]}')
    result = cli("workflow", "validate", "--json", str(wf))
    assert result.returncode == 2
    document = json.loads(result.stdout)
    assert document["valid"] is False
    [d] = document["diagnostics"]
    assert (d["code"], d["line"], d["column"], d["severity"]) == ("STR202", 2, 46, "error")
    assert d["message"] == "job 'j' needs 'k', which is not a job"


def test_a_job_id_ending_in_a_newline_is_refused_by_every_verb(cli: Cli, tmp_path: Path) -> None:
    wf = tmp_path / "w.json"
    wf.write_text(json.dumps({"name": "w", "lanes": {"a": {"command": ["x"]}},
                              "jobs": [{"id": "draft\n", "lane": "a"}]}))
    result = cli("workflow", "validate", "--json", str(wf))
    assert result.returncode == 2
    assert [d["code"] for d in json.loads(result.stdout)["diagnostics"]] == ["STR105"]
    converted = cli("workflow", "fmt", "--to", "dsl", str(wf))
    assert converted.returncode == 2 and "STR105" in converted.stderr, converted.stderr
    assert_clean(converted)


def test_text_diagnostic_shows_the_line_and_a_caret(cli: Cli, tmp_path: Path) -> None:
    wf = tmp_path / "w.json"
    wf.write_text('{"name": "w", "lanes": {"a": {"command": ["x"]}},\n'
                  ' "jobs": [{"id": "j", "lane": "b"}]}')
    result = cli("workflow", "validate", str(wf))
    assert result.returncode == 2
    assert f"{wf}:2:31: error[STR201] job 'j' runs on lane 'b', which is not declared" in (
        result.stdout)
    assert "    2 |  \"jobs\"" in result.stdout and "^" in result.stdout


def test_cycle_is_named(cli: Cli, tmp_path: Path) -> None:
    wf = tmp_path / "w.json"
    wf.write_text(json.dumps({"name": "w", "lanes": {"a": {"command": ["x"]}}, "jobs": [
        {"id": "a", "lane": "a", "needs": ["c"]}, {"id": "b", "lane": "a", "needs": ["a"]},
        {"id": "c", "lane": "a", "needs": ["b"]}]}))
    result = cli("workflow", "plan", str(wf))
    assert result.returncode == 2 and "STR204" in result.stderr
    assert "cycle" in result.stderr and "→" in result.stderr


def test_plan_walk(cli: Cli) -> None:
    result = cli("workflow", "plan", "--json", CODE_CHANGE,
                 "--verdicts", "check=needs_revision,check=accept")
    walk = json.loads(result.stdout)["walk"]
    assert [s["job"] for s in walk["steps"]] == ["draft", "check", "draft", "check", "apply"]
    assert walk["status"] == "completed" and walk["executions"] == 5
    text = cli("workflow", "plan", CODE_CHANGE, "--verdicts", "check=needs_revision").stdout
    assert "revision 1 of 1: back to draft" in text and "(default)" in text


def test_lint_sarif_and_strict(cli: Cli, tmp_path: Path) -> None:
    wf = tmp_path / "w.json"
    wf.write_text(json.dumps({"name": "w", "lanes": {"a": {"command": ["claude", "-p"]},
                                                     "unused": {"kind": "human"}},
                              "jobs": [{"id": "j", "lane": "a"}]}))
    plain = cli("workflow", "lint", str(wf))
    assert plain.returncode == 0 and "STR311" in plain.stdout
    assert cli("workflow", "lint", "--strict", str(wf)).returncode == 2
    sarif = json.loads(cli("workflow", "lint", "--format", "sarif", str(wf)).stdout)
    assert sarif["version"] == "2.1.0"
    assert any(r["ruleId"] == "STR311" for r in sarif["runs"][0]["results"])


def test_fmt_check_and_write(cli: Cli, tmp_path: Path) -> None:
    wf = tmp_path / "w.json"
    wf.write_text('{"name":"w","lanes":{"a":{"command":["x"]}},"jobs":[{"id":"j","lane":"a"}]}')
    checked = cli("workflow", "fmt", "--check", str(wf))
    assert checked.returncode == 2
    # What would change, as a unified diff a user can read (and `patch` could apply).
    assert checked.stdout.startswith(f"--- {wf} (as it is)\n+++ {wf} (formatted)\n@@ ")
    assert "\n\\ No newline at end of file\n" in checked.stdout
    assert '\n+  "name": "w",\n' in checked.stdout
    assert cli("workflow", "fmt", "--write", str(wf)).returncode == 0
    unchanged = cli("workflow", "fmt", "--check", str(wf))
    assert (unchanged.returncode, unchanged.stdout) == (0, "")
    assert cli("workflow", "fmt", "--write", "--to", "dsl", str(wf)).returncode == 1


@pytest.mark.parametrize("style", ["minimal", "review", "code-change", "human-checkpoint",
                                   "support-ledger", "multi-review"])
def test_init_each_style(cli: Cli, tmp_path: Path, style: str) -> None:
    for syntax, name in (("json", "workflow.json"), ("dsl", "workflow.stm")):
        target = tmp_path / syntax
        created = cli("workflow", "init", "--style", style, "--syntax", syntax, str(target))
        assert created.returncode == 0, created.stderr
        assert cli("workflow", "lint", "--strict", str(target / name)).returncode == 0
    again = cli("workflow", "init", "--style", style, str(tmp_path / "json"))
    assert again.returncode == 4 and "--force" in again.stderr
    assert cli("workflow", "init", "--force", "--style", style,
               str(tmp_path / "json")).returncode == 0
    assert not (tmp_path / ".gitignore").exists()  # no git repository: nothing to ignore


def test_init_in_a_git_repository_ignores_the_scratch_and_says_what_to_commit(
        cli: Cli, tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("node_modules/", encoding="utf-8")  # the user's
    created = cli("workflow", "init", "flow")
    assert created.returncode == 0, created.stderr
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n.striatum/\n"
    assert "added .striatum/ to .gitignore (striatum's scratch: never commit it)" in created.stdout
    assert "commit: flow/ (the workflow) and, once runs have ended, striatum/runs/" \
        in created.stdout
    again = cli("workflow", "init", "--force", "flow", "--json")
    assert json.loads(again.stdout)["gitignore"] is None  # already there: left alone
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n.striatum/\n"


def test_compile_redirected_to_a_file_hashes_to_the_printed_digest(tmp_path: Path) -> None:
    """`striatum workflow compile F > out.json; sha256sum out.json` shows the digest."""
    out = tmp_path / "out.json"
    with open(out, "wb") as handle:
        done = subprocess.run([executable(), "workflow", "compile", CODE_CHANGE], stdout=handle,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == f"sha256:{hashlib.sha256(out.read_bytes()).hexdigest()}\n"


def test_the_agent_verbs_help_names_the_variables_they_read(cli: Cli) -> None:
    said = cli("job", "--help").stdout
    for name in ("STRIATUM_RUN", "STRIATUM_JOB", "STRIATUM_LEASE", "STRIATUM_ARTIFACT_DIR",
                 "STRIATUM_ACTOR", "STRIATUM_MODEL", "STRIATUM_DSN"):
        assert name in said, name
    assert "$STRIATUM_LEASE" in cli("job", "complete", "--help").stdout
