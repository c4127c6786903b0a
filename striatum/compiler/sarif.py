"""Diagnostics as SARIF 2.1.0, the format code-scanning tools (GitHub's among them) read.

One run; the driver lists every rule in ``CODES`` (not only those that fired),
so a viewer can show any rule's description and link to docs/lint-rules.md.
Results point at the file as the diagnostic names it: a relative path stays
relative, which is what lets GitHub resolve it against the repository root.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any
from urllib.parse import quote

from .diagnostics import CODES, Diagnostic, Severity

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/striatum-dev/striatum"
RULES_DOC = f"{INFORMATION_URI}/blob/main/docs/lint-rules.md"

_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}

# One line per rule for viewers; docs/lint-rules.md has the long form.
SUMMARIES: dict[str, str] = {
    "STR001": "The workflow file does not exist.",
    "STR002": "The path names a directory, not a workflow file.",
    "STR003": "The file is not UTF-8 text.",
    "STR004": "The file is empty.",
    "STR005": "The file is larger than the 48 MiB limit.",
    "STR006": "The format is neither json nor dsl.",
    "STR007": "The file cannot be read.",
    "STR010": "The file is not valid JSON.",
    "STR011": "The file is not valid workflow DSL.",
    "STR012": "The document is nested too deeply.",
    "STR100": "The document does not match the workflow contract.",
    "STR101": "A key the contract does not know.",
    "STR102": "A required key is missing.",
    "STR103": "A value has the wrong type.",
    "STR104": "A value is out of range or not one of the allowed values.",
    "STR105": "A name is not a valid identifier.",
    "STR106": "A key that is not allowed on this kind of job or lane.",
    "STR200": "Two jobs have the same id.",
    "STR201": "A job runs on a lane that is not declared.",
    "STR202": "A job needs a job that does not exist.",
    "STR203": "A job needs itself.",
    "STR204": "The needs form a cycle.",
    "STR205": "A review revises a job that does not exist.",
    "STR206": "A review revises a job that is not upstream of it.",
    "STR207": "A checkpoint choice names a job that does not need the checkpoint.",
    "STR208": "Two jobs produce the same artifact.",
    "STR209": "A job consumes an artifact no upstream job produces.",
    "STR210": "A checkpoint sits inside a revision loop.",
    "STR211": "A revision loop has no bound.",
    "STR212": "A final job is not a job.",
    "STR301": "A job never runs, whatever the checkpoints decide.",
    "STR302": "Work that does not lead to the end of the workflow.",
    "STR303": "A reviewer runs on the same lane as the work it reviews.",
    "STR304": "A reviewer runs the same agent and model as the work it reviews.",
    "STR305": "Jobs that can run at the same time may write the same paths.",
    "STR306": "An artifact nobody consumes.",
    "STR307": "A prompt file is missing or unreadable.",
    "STR308": "A prompt uses a variable the run will not have.",
    "STR309": "A checkpoint with fewer than two choices.",
    "STR310": "A revision budget larger than 5.",
    "STR311": "A lane no job uses.",
    "STR312": "A prompt is not a valid Jinja2 template.",
    "STR313": "A checkpoint successor that no choice lists.",
    "STR314": "The plan's worst case is an upper bound, not exact.",
    "STR315": "A lane passes an agent CLI an option it does not have.",
    "STR316": "A review's agent can record no verdict.",
    "STR317": "A job's agent may not write the files the job produces.",
    "STR318": "A lane's agent CLI will not start headless.",
    "STR319": "A reviewer runs a model of the same family as the work it reviews.",
    "STR320": "The reviewer that drove the revisions gives the final acceptance.",
    "STR330": "A declared budget is below the plan's worst case.",
}


def rule_descriptors() -> list[dict[str, Any]]:
    return [
        {
            "id": code,
            "name": name,
            "shortDescription": {"text": SUMMARIES.get(code, name.replace("-", " "))},
            "helpUri": f"{RULES_DOC}#{code.lower()}",
            "defaultConfiguration": {"level": _LEVELS[severity]},
        }
        for code, (severity, name) in CODES.items()
    ]


def artifact_uri(file: str) -> str:
    """A URI reference for a file path: relative stays relative, absolute becomes file://.

    ``PurePath`` is the host's flavour, so a backslash separates folders on
    Windows and is an ordinary (percent-encoded) character elsewhere.
    """
    path = PurePath(file)
    if path.is_absolute():
        return path.as_uri()
    # Encoding ':' keeps "c:w.json"-like names from reading as a URI scheme.
    return quote(path.as_posix(), safe="/")


def _result(d: Diagnostic, rule_index: dict[str, int]) -> dict[str, Any]:
    text = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    result: dict[str, Any] = {
        "ruleId": d.code,
        "ruleIndex": rule_index[d.code],
        "level": _LEVELS[d.severity],
        "message": {"text": text},
    }
    if d.file is not None:
        result["locations"] = [{"physicalLocation": {
            "artifactLocation": {"uri": artifact_uri(d.file)},
            "region": {"startLine": max(1, d.line or 1), "startColumn": max(1, d.column or 1)},
        }}]
    result["properties"] = {"path": "/" + "/".join(str(p) for p in d.path)}
    return result


def to_sarif(diagnostics: list[Diagnostic], *, tool_version: str) -> dict[str, Any]:
    """A SARIF 2.1.0 log of located diagnostics (``Compilation.diagnostics``)."""
    rules = rule_descriptors()
    rule_index = {rule["id"]: i for i, rule in enumerate(rules)}
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "striatum",
                "informationUri": INFORMATION_URI,
                "version": tool_version,
                "rules": rules,
            }},
            # The locator counts columns in characters of the decoded text.
            "columnKind": "unicodeCodePoints",
            "results": [_result(d, rule_index) for d in diagnostics],
        }],
    }
