"""The package's one exception hierarchy; each error knows its exit code.

Exit codes are a stable contract (docs/cli.md): scripts and agents branch on
them, so a code is never reused for a different meaning. Every error striatum
raises on purpose is defined here; driver errors become these at one
boundary (``runtime.store.wrap_errors``).
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
EXIT_ATTEMPT_FAILED = 8
EXIT_FORBIDDEN = 9
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


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


class BundleInvalid(StriatumError):
    """A corpus bundle does not verify; ``details`` name the file, the line and what."""

    exit_code = EXIT_INVALID
    code = "bundle_invalid"


class NotFound(StriatumError):
    exit_code = EXIT_NOT_FOUND
    code = "not_found"


class Conflict(StriatumError):
    exit_code = EXIT_CONFLICT
    code = "conflict"


class NotWaiting(Conflict):
    """A job named to be answered (``run resume --job``) does not wait for that answer."""

    code = "not_waiting"


class PromptError(Conflict):
    """A job's prompt cannot be rendered with what its run has."""

    code = "prompt_error"


class AttemptNotPrepared(Conflict):
    """A job was claimed, but its attempt could not be prepared (failed, to be retried)."""

    code = "attempt_not_prepared"


class SandboxUnavailable(Conflict):
    """A lane must run sandboxed, and bubblewrap cannot run here: never run unsandboxed."""

    code = "sandbox_unavailable"


class LeaseLost(StriatumError):
    """The fencing token does not hold the job's current, live lease."""

    exit_code = EXIT_LEASE_LOST
    code = "lease_lost"


class StoreUnavailable(StriatumError):
    """PostgreSQL cannot be reached (refused, lost, shutting down)."""

    exit_code = EXIT_STORE_UNAVAILABLE
    code = "store_unavailable"


class DaemonUnavailable(StriatumError):
    """The daemon cannot be reached, or is stopping."""

    exit_code = EXIT_STORE_UNAVAILABLE
    code = "daemon_unavailable"


class Forbidden(StriatumError):
    """The caller's capability does not permit the verb."""

    exit_code = EXIT_FORBIDDEN
    code = "forbidden"


class StoreError(StriatumError):
    """A working server refused a statement; ``details["sqlstate"]`` says how."""

    code = "store_error"


class RetriesExhausted(StoreError):
    code = "retries_exhausted"


class MigrationEdited(StriatumError):
    code = "migration_edited"


class SchemaTooNew(StriatumError):
    exit_code = EXIT_CONFLICT
    code = "schema_too_new"
