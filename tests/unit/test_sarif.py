"""SARIF output: valid against the SARIF 2.1.0 schema, and shaped as GitHub code scanning reads it.

``SARIF_SUBSET`` is a trimmed copy of the OASIS schema (sarif-schema-2.1.0.json,
draft-07): the definitions striatum writes, with their required properties,
types, enums, minimums and ``additionalProperties: false`` as in the original,
and only the properties striatum uses listed (so a misspelt key fails).
jsonschema checks the "uri" formats only with optional packages installed,
so ``assert_uri_reference`` checks them here (RFC 3986 characters).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from jsonschema import Draft7Validator

from striatum.compiler.compile import check
from striatum.compiler.diagnostics import CODES, Diagnostic, Severity, diag
from striatum.compiler.lint import lint
from striatum.compiler.sarif import SUMMARIES, artifact_uri, to_sarif

LEVELS = {"enum": ["none", "note", "warning", "error"]}

SARIF_SUBSET: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "runs"],
    "properties": {
        "$schema": {"type": "string", "format": "uri"},
        "version": {"enum": ["2.1.0"]},
        "runs": {"type": "array", "items": {"$ref": "#/definitions/run"}},
    },
    "definitions": {
        "run": {
            "type": "object",
            "additionalProperties": False,
            "required": ["tool"],
            "properties": {
                "tool": {"$ref": "#/definitions/tool"},
                "results": {"type": "array", "items": {"$ref": "#/definitions/result"}},
                "columnKind": {"enum": ["utf16CodeUnits", "unicodeCodePoints"]},
            },
        },
        "tool": {
            "type": "object",
            "additionalProperties": False,
            "required": ["driver"],
            "properties": {"driver": {"$ref": "#/definitions/toolComponent"}},
        },
        "toolComponent": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "string"},
                "informationUri": {"type": "string", "format": "uri"},
                "rules": {"type": "array", "uniqueItems": True,
                          "items": {"$ref": "#/definitions/reportingDescriptor"}},
            },
        },
        "reportingDescriptor": {
            "type": "object",
            "additionalProperties": False,
            "required": ["id"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "shortDescription": {"$ref": "#/definitions/multiformatMessageString"},
                "helpUri": {"type": "string", "format": "uri"},
                "defaultConfiguration": {"$ref": "#/definitions/reportingConfiguration"},
            },
        },
        "reportingConfiguration": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "level": LEVELS,
                "rank": {"type": "number", "minimum": -1.0, "maximum": 100.0},
            },
        },
        "multiformatMessageString": {
            "type": "object",
            "additionalProperties": False,
            "required": ["text"],
            "properties": {"text": {"type": "string"}, "markdown": {"type": "string"}},
        },
        "message": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"text": {"type": "string"}, "id": {"type": "string"}},
            "anyOf": [{"required": ["text"]}, {"required": ["id"]}],
        },
        "result": {
            "type": "object",
            "additionalProperties": False,
            "required": ["message"],
            "properties": {
                "ruleId": {"type": "string"},
                "ruleIndex": {"type": "integer", "minimum": -1},
                "level": LEVELS,
                "message": {"$ref": "#/definitions/message"},
                "locations": {"type": "array", "items": {"$ref": "#/definitions/location"}},
                "properties": {"$ref": "#/definitions/propertyBag"},
            },
        },
        "location": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"physicalLocation": {"$ref": "#/definitions/physicalLocation"}},
        },
        "physicalLocation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "artifactLocation": {"$ref": "#/definitions/artifactLocation"},
                "region": {"$ref": "#/definitions/region"},
            },
            "anyOf": [{"required": ["address"]}, {"required": ["artifactLocation"]}],
        },
        "artifactLocation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "uri": {"type": "string", "format": "uri-reference"},
                "uriBaseId": {"type": "string"},
                "index": {"type": "integer", "minimum": -1},
            },
        },
        "region": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "startLine": {"type": "integer", "minimum": 1},
                "startColumn": {"type": "integer", "minimum": 1},
                "endLine": {"type": "integer", "minimum": 1},
                "endColumn": {"type": "integer", "minimum": 1},
            },
        },
        "propertyBag": {"type": "object", "additionalProperties": True},
    },
}

VALIDATOR = Draft7Validator(SARIF_SUBSET, format_checker=Draft7Validator.FORMAT_CHECKER)


URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*")


def assert_uri_reference(uri: str, *, absolute: bool = False) -> None:
    assert URI_CHARS.fullmatch(uri), uri
    parsed = urlparse(uri)
    if absolute or parsed.scheme:
        assert parsed.scheme in ("https", "file"), uri
    else:  # a relative reference: its first segment must not read as a scheme
        assert ":" not in uri.split("/")[0], uri


def assert_valid(log: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(log)]
    assert not errors, errors
    json.dumps(log)  # plain JSON all the way down
    driver = log["runs"][0]["tool"]["driver"]
    assert_uri_reference(driver["informationUri"], absolute=True)
    for rule in driver["rules"]:
        assert_uri_reference(rule["helpUri"], absolute=True)
    for result in log["runs"][0]["results"]:
        for location in result.get("locations", []):
            assert_uri_reference(location["physicalLocation"]["artifactLocation"]["uri"])


def assert_code_scanning_ready(log: dict[str, Any]) -> None:
    """What GitHub code scanning needs of each result to show it as an alert."""
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note")
        assert result["message"]["text"].strip()
        (location,) = result["locations"]
        physical = location["physicalLocation"]
        assert physical["artifactLocation"]["uri"]
        assert physical["region"]["startLine"] >= 1
        assert physical["region"]["startColumn"] >= 1


def located(code: str, message: str, *, file: str = "workflow.json", line: int | None = 3,
            column: int | None = 5, hint: str | None = None) -> Diagnostic:
    d = diag(code, message, ("jobs", 0), hint=hint)
    return Diagnostic(d.code, d.message, d.path, d.hint, d.severity, file, line, column)


def test_an_empty_log_lists_every_rule() -> None:
    log = to_sarif([], tool_version="0.1.0")
    assert_valid(log)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "striatum"
    assert driver["version"] == "0.1.0"
    assert driver["informationUri"] == "https://github.com/striatum-dev/striatum"
    assert [rule["id"] for rule in driver["rules"]] == list(CODES)
    assert run["results"] == []


def test_rule_descriptors() -> None:
    rules = {r["id"]: r for r in to_sarif([], tool_version="x")["runs"][0]["tool"]["driver"]
             ["rules"]}
    assert rules["STR303"]["name"] == "reviewer-same-lane"
    assert rules["STR303"]["helpUri"].endswith("docs/lint-rules.md#str303")
    assert rules["STR303"]["defaultConfiguration"] == {"level": "warning"}
    assert rules["STR204"]["defaultConfiguration"] == {"level": "error"}
    assert rules["STR314"]["defaultConfiguration"] == {"level": "note"}
    for rule in rules.values():
        assert urlparse(rule["helpUri"]).scheme == "https"
        assert rule["shortDescription"]["text"].endswith(".")


def test_every_code_has_a_summary() -> None:
    assert set(SUMMARIES) == set(CODES)


def test_a_result() -> None:
    d = located("STR303", "review 'check' runs on lane 'coder'", hint="use another lane")
    log = to_sarif([d], tool_version="0.1.0")
    assert_valid(log)
    assert_code_scanning_ready(log)
    (result,) = log["runs"][0]["results"]
    assert result["ruleId"] == "STR303"
    assert result["ruleIndex"] == list(CODES).index("STR303")
    assert result["level"] == "warning"
    assert result["message"]["text"] == ("review 'check' runs on lane 'coder'\n"
                                         "hint: use another lane")
    physical = result["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "workflow.json"},
                        "region": {"startLine": 3, "startColumn": 5}}
    assert result["properties"] == {"path": "/jobs/0"}


@pytest.mark.parametrize(("severity", "level"), [
    (Severity.ERROR, "error"), (Severity.WARNING, "warning"), (Severity.INFO, "note")])
def test_levels(severity: Severity, level: str) -> None:
    code = next(c for c, (s, _) in CODES.items() if s is severity)
    (result,) = to_sarif([located(code, "m")], tool_version="0")["runs"][0]["results"]
    assert result["level"] == level


def test_a_missing_position_defaults_to_line_one() -> None:
    log = to_sarif([located("STR001", "no such file", line=None, column=None)],
                   tool_version="0")
    assert_valid(log)
    assert_code_scanning_ready(log)
    region = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]
    assert region == {"startLine": 1, "startColumn": 1}


def test_an_unlocated_diagnostic_has_no_location_but_is_valid() -> None:
    log = to_sarif([diag("STR311", "lane 'x' is unused")], tool_version="0")
    assert_valid(log)
    assert "locations" not in log["runs"][0]["results"][0]


@pytest.mark.parametrize(("file", "uri"), [
    ("workflow.json", "workflow.json"),
    ("examples/review/workflow.json", "examples/review/workflow.json"),
    ("./a/workflow.json", "a/workflow.json"),
    ("my flows/w.json", "my%20flows/w.json"),
    ("c:w.json", "c%3Aw.json"),
    ("/srv/repo/workflow.json", "file:///srv/repo/workflow.json"),
])
def test_artifact_uris(file: str, uri: str) -> None:
    assert artifact_uri(file) == uri
    assert_valid(to_sarif([located("STR302", "m", file=file)], tool_version="0"))


def test_the_subset_schema_is_not_vacuous() -> None:
    good = to_sarif([located("STR302", "m")], tool_version="0")
    broken = json.loads(json.dumps(good))
    result = broken["runs"][0]["results"][0]
    result["locations"][0]["physicalLocation"]["region"]["startLine"] = 0
    result["level"] = "fatal"
    result["ruleIndex"] = -2
    del broken["runs"][0]["tool"]["driver"]["rules"][0]["id"]
    broken["runs"][0]["tool"]["driver"]["rule"] = []
    found = {e.validator for e in VALIDATOR.iter_errors(broken)}
    assert {"minimum", "enum", "required", "additionalProperties"} <= found
    assert not VALIDATOR.is_valid({"runs": []})


def test_a_linted_workflow_as_sarif(tmp_path: Path) -> None:
    doc = {"name": "w",
           "lanes": {"coder": {"command": ["codex", "exec"]}, "spare": {"kind": "human"}},
           "jobs": [{"id": "draft", "lane": "coder", "prompt": "missing.md"},
                    {"id": "check", "lane": "coder", "kind": "review", "needs": ["draft"],
                     "revise": {"target": "draft", "max": 9}}]}
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    comp = check(str(path))
    comp.add(lint(comp))
    log = to_sarif(comp.diagnostics, tool_version="0.1.0")
    assert_valid(log)
    assert_code_scanning_ready(log)
    results = log["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"STR303", "STR307", "STR310", "STR311", "STR316"}
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in results} == {artifact_uri(str(path))}
