"""The verb registry: the table is well formed, parameters are checked before the core
runs, capabilities nest as documented, and the CLI's --json prints the very document a
verb returns (the compiler's verbs here; the runtime's in
tests/integration/test_registry_cli.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest
from jsonschema import Draft202012Validator

from striatum.errors import EXIT_USAGE, UsageError, WorkflowInvalid
from striatum.server.registry import COVERS, VERBS, Session, bind, invoke, permitted

from .test_cli import invoke as cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(str(p) for p in (REPO / "examples").glob("*/workflow.*"))
CODE_CHANGE = str(REPO / "examples" / "code-change" / "workflow.json")


def no_store() -> NoReturn:
    raise AssertionError("the call opened a store")


NO_STORE = Session(str(REPO), no_store)


def test_the_table_holds_each_verb_once_in_the_order_faces_list_them() -> None:
    assert list(VERBS) == [
        "run.prepare", "run.start", "run.status", "run.resolve", "run.list", "run.events",
        "run.cancel", "run.resume", "run.retry", "run.plan", "run.waiting", "run.why", "inbox",
        "stats",
        "run.graph", "run.history", "run.artifact", "job.show",
        "job.claim", "job.heartbeat", "job.publish", "job.verdict", "job.complete",
        "job.release", "job.fail", "job.escalate", "checkpoint.decide", "job.unlease",
        "workflow.validate", "workflow.lint", "workflow.plan", "doctor", "server.status"]
    assert all(name == verb.name for name, verb in VERBS.items())
    assert all(verb.summary and "\n" not in verb.summary for verb in VERBS.values())


@pytest.mark.parametrize("name", list(VERBS))
def test_schemas_are_draft_2020_12_objects_and_parameters_are_closed(name: str) -> None:
    verb = VERBS[name]
    for schema in (verb.params, verb.result):
        Draft202012Validator.check_schema(schema)
        assert schema["type"] == "object"  # what MCP requires of a tool's schemas
        assert set(schema["required"]) <= set(schema["properties"])
    assert verb.params["additionalProperties"] is False
    for field in verb.params["properties"].values():
        assert field.get("description"), f"{name}: every parameter says what it is"


def test_capabilities_nest_and_match_what_each_verb_changes() -> None:
    viewer = {verb.name for verb in permitted("viewer")}
    assert viewer == {name for name, verb in VERBS.items() if not verb.mutates}
    assert {verb.name for verb in permitted("principal")} == set(VERBS)
    lease = permitted("lease")
    assert {verb.name for verb in lease} == {"job.heartbeat", "job.publish", "job.verdict",
                                             "job.complete", "job.release", "job.fail",
                                             "job.escalate"}
    for verb in lease:  # acts on one held job: run, job and its token, every time
        assert {"run", "job", "lease"} <= set(verb.params["required"])
    assert all(verb.capability in COVERS["principal"] for verb in VERBS.values())


BAD = {
    "a missing parameter": ("job.claim", {}, "'run' is a required property", None),
    "a wrong type": ("run.status", {"run": 3}, "3 is not of type 'string'", "run"),
    "an unknown name": ("workflow.plan", {"file": CODE_CHANGE, "verdict": "check=accept"},
                        "('verdict' was unexpected)", None),
    "out of range": ("job.heartbeat", {"run": "r", "job": "j", "lease": "1-a",
                                       "lease_seconds": 1}, "1 is less than the minimum of 5",
                     "lease_seconds"),
    "not a choice": ("job.verdict", {"run": "r", "job": "j", "lease": "1-a",
                                     "outcome": "maybe", "reason": "?"},
                     "'maybe' is not one of", "outcome"),
    "an empty id": ("checkpoint.decide", {"run": "", "job": "go", "choice": "continue"},
                    "should be non-empty", "run"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_arguments_that_break_the_schema_are_a_usage_error_before_the_core_runs(
        case: str) -> None:
    name, arguments, said, parameter = BAD[case]
    with pytest.raises(UsageError) as refused:
        invoke(VERBS[name], arguments, NO_STORE)
    assert refused.value.exit_code == EXIT_USAGE
    document = refused.value.to_json()
    assert document["error"] == "usage" and said in document["message"], document
    assert document["details"] == {"verb": name, "parameter": parameter}
    assert document["hint"].startswith("parameters: ")


def test_defaults_come_from_the_schema_and_null_leaves_a_parameter_to_its_default() -> None:
    assert bind(VERBS["job.claim"], {"run": "r"}) == {
        "run": "r", "lane": None, "owner": None, "lease_seconds": 300, "model": None}
    assert bind(VERBS["workflow.plan"], {"file": "w.json", "syntax": None})["verdicts"] is None
    first = bind(VERBS["run.prepare"], {"workflow": "w.json"})
    first["vars"]["changed"] = "by a caller"
    assert bind(VERBS["run.prepare"], {"workflow": "w.json"})["vars"] == {}


def document_of(*argv: str) -> Any:
    result = cli(*argv, "--json")
    assert result.code in (0, 2), result.err
    return json.loads(result.out)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: "/".join(Path(p).parts[-2:]))
def test_the_cli_prints_the_registrys_document_for_validate_lint_and_plan(example: str) -> None:
    for verb, argv in (("workflow.validate", ["validate", example]),
                       ("workflow.lint", ["lint", example]),
                       ("workflow.plan", ["plan", example])):
        assert document_of("workflow", *argv) == invoke(VERBS[verb], {"file": example},
                                                        NO_STORE), verb


def test_a_walk_and_an_invalid_workflow_agree_too(tmp_path: Path) -> None:
    walked = "check=needs_revision,check=accept"
    assert document_of("workflow", "plan", CODE_CHANGE, "--verdicts", walked) == invoke(
        VERBS["workflow.plan"], {"file": CODE_CHANGE, "verdicts": walked}, NO_STORE)
    broken = tmp_path / "w.json"
    broken.write_text('{"name": "w", "lanes": {}, "jobs": [{"id": "j", "lane": "x"}]}',
                      encoding="utf-8")
    for verb in ("validate", "lint"):
        document = invoke(VERBS[f"workflow.{verb}"], {"file": str(broken)}, NO_STORE)
        assert document["valid"] is False and document["diagnostics"]
        assert document_of("workflow", verb, str(broken)) == document
    # plan has nothing to show for it: the diagnostics travel in the error
    with pytest.raises(WorkflowInvalid) as refused:
        invoke(VERBS["workflow.plan"], {"file": str(broken)}, NO_STORE)
    assert refused.value.to_json()["details"]["diagnostics"][0]["code"] == "STR104"


def test_every_verb_of_the_table_is_in_the_docs_with_its_capability() -> None:
    text = (REPO / "docs" / "surfaces.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `([a-z.]+)` \| `[a-z_]+` \| (viewer|lease|principal) \|",
                           text, re.MULTILINE))
    assert rows == {name: verb.capability for name, verb in VERBS.items()}


def test_a_cli_verb_imports_neither_the_registry_nor_the_mcp_sdk() -> None:
    probe = ("import sys\nfrom striatum.cli.main import run\n"
             f"run(['workflow', 'validate', {CODE_CHANGE!r}])\nrun(['run', 'status', '--help'])\n"
             "print(sorted(m for m in ('mcp', 'pydantic', 'starlette', 'anyio', "
             "'striatum.server.registry') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_server_status_is_the_faces_own_and_a_session_without_one_says_so() -> None:
    with pytest.raises(UsageError, match="serves no server status"):
        invoke(VERBS["server.status"], {}, NO_STORE)
    described = Session(str(REPO), no_store, lambda: {"face": "mcp", "pid": 1})
    assert invoke(VERBS["server.status"], {}, described) == {"face": "mcp", "pid": 1}


def test_the_claim_schema_names_every_reason_a_claim_can_give() -> None:
    from striatum.runtime.runs import IDLE_REASONS
    from striatum.server import schemas

    assert schemas.CLAIMED["properties"]["reason"]["enum"] == list(IDLE_REASONS)


def test_the_mcp_server_fills_a_model_the_call_leaves_out_from_its_sessions_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from striatum.server.mcp import stated

    claim = VERBS["job.claim"]
    monkeypatch.delenv("STRIATUM_MODEL", raising=False)
    assert stated(claim, {"run": "r"}) == {"run": "r"}  # unknown: nothing is guessed
    monkeypatch.setenv("STRIATUM_MODEL", "gemini-2.5-pro")
    assert stated(claim, {"run": "r"})["model"] == "gemini-2.5-pro"
    assert stated(claim, {"run": "r", "model": None})["model"] == "gemini-2.5-pro"
    assert stated(claim, {"run": "r", "model": "o3"})["model"] == "o3"  # the call's own
    assert "model" not in stated(VERBS["run.status"], {"run": "r"})  # no such parameter
