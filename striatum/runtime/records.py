"""Rows as the runtime holds them in memory during one transition."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class RunRow:
    id: str
    repo_id: int
    workflow_digest: str
    workflow_name: str
    status: str
    vars: dict[str, Any]
    artifact_root: str
    worst_case: int
    blocked_on: str | None
    repo_path: str
    base_commit: str | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> RunRow:
        return cls(*row)

    def state(self) -> dict[str, Any]:
        """What the event records and doctor replays."""
        return {"status": self.status, "blocked_on": self.blocked_on}


@dataclass
class JobRow:
    job_id: str
    position: int
    kind: str
    lane: str
    lane_kind: str
    status: str
    iteration: int
    attempt: int
    max_attempts: int
    executions: int
    revisions_used: int
    fence: int
    lease_token: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    chosen: str | None
    verdict: str | None
    reason: str | None
    lease_expired: bool

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> JobRow:
        return cls(*row)

    def state(self) -> dict[str, Any]:
        """The replayable projection (never the secret lease token)."""
        return {"status": self.status, "iteration": self.iteration, "attempt": self.attempt,
                "executions": self.executions, "revisions_used": self.revisions_used,
                "fence": self.fence, "lease_owner": self.lease_owner, "chosen": self.chosen,
                "verdict": self.verdict}


def initial_job_state() -> dict[str, Any]:
    """A new job's replayable state, as ``run.prepare`` records it for every job."""
    return {"status": "pending", "iteration": 0, "attempt": 0, "executions": 0,
            "revisions_used": 0, "fence": 0, "lease_owner": None, "chosen": None,
            "verdict": None}


REPLAYED_JOB_COLUMNS = ("status", "iteration", "attempt", "executions", "revisions_used",
                        "fence", "lease_owner", "chosen", "verdict")
REPLAYED_RUN_COLUMNS = ("status", "blocked_on")
