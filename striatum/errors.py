"""The package's one exception hierarchy; each error knows its exit code.

Exit codes are a stable contract (docs/cli.md): scripts and agents branch on
them, so a code is never reused for a different meaning.
"""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_LEASE_LOST = 5
EXIT_STORE_UNAVAILABLE = 6
EXIT_RUN_NOT_COMPLETED = 7
EXIT_INTERNAL = 70


class StriatumError(Exception):
    """Base of every error striatum raises on purpose."""

    exit_code = EXIT_INTERNAL
    code = "internal"

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.hint:
            doc["hint"] = self.hint
        if self.details:
            doc["details"] = self.details
        return doc


class UsageError(StriatumError):
    exit_code = EXIT_USAGE
    code = "usage"


class WorkflowInvalid(StriatumError):
    """The workflow did not pass validation; the diagnostics say where."""

    exit_code = EXIT_INVALID
    code = "invalid"


class NotFound(StriatumError):
    exit_code = EXIT_NOT_FOUND
    code = "not_found"


class Conflict(StriatumError):
    exit_code = EXIT_CONFLICT
    code = "conflict"
