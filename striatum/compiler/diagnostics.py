"""Diagnostics: what the compiler says about a workflow, each with a place and a code.

A diagnostic points into the document by *path* (a JSON-pointer-like tuple);
the loader's locator turns a path into file:line:col only when the diagnostic
is shown, so a valid 10,000-job workflow never pays for positions.
Codes are stable: docs/lint-rules.md documents every one of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Path = tuple[str | int, ...]


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


# code -> (severity, short name). The name is the rule's id in SARIF output.
CODES: dict[str, tuple[Severity, str]] = {
    # STR0xx: reading the file
    "STR001": (Severity.ERROR, "file-not-found"),
    "STR002": (Severity.ERROR, "not-a-file"),
    "STR003": (Severity.ERROR, "not-text"),
    "STR004": (Severity.ERROR, "empty-file"),
    "STR005": (Severity.ERROR, "file-too-large"),
    "STR006": (Severity.ERROR, "unknown-format"),
    "STR007": (Severity.ERROR, "unreadable-file"),
    "STR010": (Severity.ERROR, "json-syntax"),
    "STR011": (Severity.ERROR, "dsl-syntax"),
    "STR012": (Severity.ERROR, "too-deeply-nested"),
    # STR1xx: the contract (JSON Schema)
    "STR100": (Severity.ERROR, "schema"),
    "STR101": (Severity.ERROR, "unknown-key"),
    "STR102": (Severity.ERROR, "missing-key"),
    "STR103": (Severity.ERROR, "wrong-type"),
    "STR104": (Severity.ERROR, "bad-value"),
    "STR105": (Severity.ERROR, "bad-identifier"),
    "STR106": (Severity.ERROR, "key-not-allowed-here"),
    # STR2xx: meaning and proofs (the workflow cannot run)
    "STR200": (Severity.ERROR, "duplicate-job-id"),
    "STR201": (Severity.ERROR, "unknown-lane"),
    "STR202": (Severity.ERROR, "unknown-need"),
    "STR203": (Severity.ERROR, "needs-self"),
    "STR204": (Severity.ERROR, "cycle"),
    "STR205": (Severity.ERROR, "unknown-revise-target"),
    "STR206": (Severity.ERROR, "revise-target-not-upstream"),
    "STR207": (Severity.ERROR, "choice-not-a-successor"),
    "STR208": (Severity.ERROR, "duplicate-artifact"),
    "STR209": (Severity.ERROR, "consumes-not-upstream"),
    "STR210": (Severity.ERROR, "checkpoint-in-revision-loop"),
    "STR211": (Severity.ERROR, "unbounded-loop"),
    "STR212": (Severity.ERROR, "unknown-final-job"),
    # STR3xx: lint (the workflow runs, but probably not as meant)
    "STR301": (Severity.WARNING, "unreachable-job"),
    "STR302": (Severity.WARNING, "dead-end"),
    "STR303": (Severity.WARNING, "reviewer-same-lane"),
    "STR304": (Severity.WARNING, "reviewer-same-vendor"),
    "STR305": (Severity.WARNING, "parallel-writes-overlap"),
    "STR306": (Severity.WARNING, "artifact-unused"),
    "STR307": (Severity.WARNING, "prompt-file-missing"),
    "STR308": (Severity.WARNING, "undefined-template-variable"),
    "STR309": (Severity.WARNING, "checkpoint-single-choice"),
    "STR310": (Severity.WARNING, "revision-budget-large"),
    "STR311": (Severity.WARNING, "lane-unused"),
    "STR312": (Severity.WARNING, "template-syntax"),
    "STR313": (Severity.WARNING, "checkpoint-successor-never-chosen"),
    "STR314": (Severity.INFO, "plan-bound-not-exact"),
    "STR315": (Severity.WARNING, "agent-flag-unknown"),
    "STR316": (Severity.WARNING, "reviewer-cannot-record-verdict"),
    "STR317": (Severity.WARNING, "lane-cannot-write-produces"),
    "STR318": (Severity.WARNING, "agent-lane-will-not-start"),
    "STR319": (Severity.WARNING, "reviewer-same-family"),
    "STR320": (Severity.WARNING, "review-chain-same-judge"),
    "STR330": (Severity.WARNING, "budget-below-worst-case"),
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    path: Path = ()
    hint: str | None = None
    severity: Severity = field(default=Severity.ERROR)
    # Filled in by ``locate``; a diagnostic about the file itself has line 1, col 1.
    file: str | None = None
    line: int | None = None
    column: int | None = None
    key: bool = False  # point at the key of ``path`` rather than its value

    @property
    def name(self) -> str:
        return CODES[self.code][1]

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "code": self.code,
            "rule": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": "/" + "/".join(str(p) for p in self.path),
        }
        if self.hint:
            doc["hint"] = self.hint
        return doc


def diag(code: str, message: str, path: Path = (), *, hint: str | None = None,
         key: bool = False) -> Diagnostic:
    """Make a diagnostic with the code's registered severity."""
    return Diagnostic(code=code, message=message, path=path, hint=hint,
                      severity=CODES[code][0], key=key)


Locator = Callable[[Path, bool], tuple[int, int]]


def locate(diagnostics: Iterable[Diagnostic], file: str, locator: Locator | None
           ) -> list[Diagnostic]:
    """Give each diagnostic its file, line and column."""
    out = []
    for d in diagnostics:
        if d.line is not None:
            out.append(d)
            continue
        line, column = locator(d.path, d.key) if locator else (1, 1)
        out.append(Diagnostic(d.code, d.message, d.path, d.hint, d.severity, file, line,
                              column, d.key))
    return sorted(out, key=_order)


def _order(d: Diagnostic) -> tuple[int, int, str]:
    return (d.line or 0, d.column or 0, d.code)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    return any(d.severity is Severity.ERROR for d in diagnostics)
