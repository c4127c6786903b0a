"""JSON Schema (Draft 2020-12) for the registry: parameter fields and result documents.

A verb's parameters are a closed object (an unknown name is refused, so a typo
does not pass as a default); a result lists the fields ``results`` writes, and
stays open so that a field added later breaks no client. The shapes here are
the documents of ``results`` and of the core's own ``to_json``.
"""

from __future__ import annotations

from typing import Any

from ..compiler.ir import VERDICTS
from ..runtime.machine import RUN_STATES  # a list of names: imports neither psycopg nor transitions

Schema = dict[str, Any]


def params(properties: dict[str, Schema], *required: str) -> Schema:
    """A verb's parameters: exactly ``properties``, ``required`` among them."""
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def document(properties: dict[str, Schema], *required: str) -> Schema:
    """A result document: ``properties``, all of them present unless ``required`` says."""
    return {"type": "object", "properties": properties,
            "required": list(required) if required else list(properties)}


def text(description: str, **more: Any) -> Schema:
    return {"type": "string", "description": description, **more}


def name(description: str) -> Schema:
    return text(description, minLength=1)


def nullable(schema: Schema) -> Schema:
    """``schema`` or null, as ``anyOf`` branches of one ``type`` each: a client that maps
    tool schemas onto a single-type dialect (Gemini's function declarations) keeps them."""
    return {"anyOf": [schema, {"type": "null"}]}


def optional(schema: Schema) -> Schema:
    """A parameter that may be left out or null (its default)."""
    inner = {key: value for key, value in schema.items() if key != "description"}
    return {**nullable(inner), "description": schema["description"], "default": None}


def integer(description: str, low: int, high: int | None = None, **more: Any) -> Schema:
    bounds = {"minimum": low} | ({"maximum": high} if high is not None else {})
    return {"type": "integer", "description": description, **bounds, **more}


def flag(description: str, default: bool = False) -> Schema:
    return {"type": "boolean", "description": description, "default": default}


def one_of(description: str, choices: tuple[str, ...] | list[str]) -> Schema:
    return {"type": "string", "description": description, "enum": list(choices)}


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NULLABLE_STRING = nullable(STRING)
NULLABLE_INTEGER = nullable(INTEGER)
BOOLEAN: Schema = {"type": "boolean"}
STRINGS: Schema = {"type": "array", "items": STRING}

# -- parameters shared by many verbs -----------------------------------------------------------

RUN = name("The run id (`run list` shows them).")
RAISED_BUDGET: Schema = {
    "type": "object", "minProperties": 1, "additionalProperties": False,
    "description": "With decision 'raise': the new limits of a run its budget stopped.",
    "properties": {key: integer(f"The new {key}.", 1)
                   for key in ("max_job_runs", "max_wall_seconds", "max_cost")}}
JOB = name("The job id within the run.")
LEASE = name("The lease token the claim returned (e.g. '3-5f0c...').")
MODEL = text("The model doing the work, as the operator states it (default: "
             "$STRIATUM_MODEL); left out, the record says it is unknown.", minLength=1,
             maxLength=200)
LEASE_SECONDS = integer("Lease length in seconds; heartbeat before it runs out.", 5, 86400,
                        default=300)
FILE = name("The workflow file (workflow.json or a .stm DSL file), relative to the server's "
            "working directory or absolute.")
SYNTAX = optional(one_of("Input syntax (default: from the file name, then the content).",
                         ["json", "dsl"]))
HELD = {"run": RUN, "job": JOB, "lease": LEASE}
VERDICT = one_of("The review's verdict.", VERDICTS)
RUN_STATE = one_of("Only runs in this state.", RUN_STATES)

# -- results -----------------------------------------------------------------------------------

JOB_VIEW = document({
    "job": STRING, "kind": STRING, "lane": STRING, "status": STRING, "iteration": INTEGER,
    "attempt": INTEGER, "executions": INTEGER, "fence": INTEGER,
    "lease_owner": NULLABLE_STRING, "lease_expires_at": NULLABLE_STRING,
    "chosen": NULLABLE_STRING, "verdict": NULLABLE_STRING, "reason": NULLABLE_STRING,
    # The newest lane log published for the job (repository-relative), if any.
    "log": NULLABLE_STRING,
    # Only for a checkpoint waiting for its decision.
    "title": NULLABLE_STRING, "choices": STRINGS},
    "job", "kind", "lane", "status", "iteration", "attempt", "executions", "fence",
    "lease_owner", "lease_expires_at", "chosen", "verdict", "reason", "log")

RUN_VIEW_FIELDS: dict[str, Schema] = {
    "run": STRING, "workflow": STRING, "digest": STRING, "status": STRING, "repo": STRING,
    "artifact_root": STRING, "blocked_on": NULLABLE_STRING,
    "reason": NULLABLE_STRING,  # why the run failed or was cancelled
    "executions": INTEGER, "worst_case": INTEGER,
    "granted": INTEGER,  # passes humans granted beyond the plan
    "jobs": {"type": "array", "items": JOB_VIEW},
    "chain_head": nullable(document({"seq": INTEGER, "hash": STRING}))}
RUN_VIEW = document(RUN_VIEW_FIELDS)
PREPARED = document({"run_id": STRING, **RUN_VIEW_FIELDS})

RUN_LIST = document({"runs": {"type": "array", "items": document({
    "run": STRING, "workflow": STRING, "status": STRING, "created_at": STRING,
    "updated_at": STRING, "executions": INTEGER, "worst_case": INTEGER, "repo": STRING})}})

RUN_PLAN = document({
    "run": STRING, "workflow": STRING, "digest": STRING,
    "waves": {"type": "array", "items": STRINGS},
    "needs": {"type": "object", "additionalProperties": STRINGS},
    "worst_case": INTEGER, "worst_case_exact": BOOLEAN})

RUN_EVENTS = document({"run": STRING, "events": {"type": "array", "items": document({
    "seq": INTEGER, "type": STRING, "job": NULLABLE_STRING, "payload": {"type": "object"},
    "hash": STRING, "at": STRING})}})

WAITING = {"type": "array", "items": document({
    "job": STRING, "iteration": INTEGER,
    "kind": {"enum": ["checkpoint", "review", "escalation"]}, "command": STRING})}

RUN_WAITING = document({"run": STRING, "waiting": WAITING})

RUN_WHY = document({
    "run": STRING, "workflow": STRING, "status": STRING, "summary": STRING,
    "holds": {"type": "array", "items": document({
        "kind": {"enum": ["not_started", "checkpoint", "escalated", "lapsed", "blocked",
                          "over_budget", "leased", "lease_stale", "lease_expired", "ready",
                          "no_worker", "needs", "failed", "cancelled", "completed",
                          "findings_repeated"]},
        "job": NULLABLE_STRING, "text": STRING, "command": NULLABLE_STRING,
        "after": STRING},
        "kind", "job", "text", "command")},
    "next": NULLABLE_STRING, "at": STRING})

INBOX = document({
    "items": {"type": "array", "items": document({
        "kind": {"enum": ["checkpoint", "escalated", "lapsed", "over_budget", "lease_stale",
                          "lease_expired", "no_worker", "findings_repeated"]},
        "run": STRING, "job": NULLABLE_STRING, "repo": STRING, "workflow": STRING,
        "run_status": STRING, "text": STRING, "command": NULLABLE_STRING, "since": STRING,
        "age_seconds": INTEGER, "after": STRING},
        "kind", "run", "job", "repo", "workflow", "run_status", "text", "command", "since",
        "age_seconds")},
    "count": INTEGER, "at": STRING})

NULLABLE_NUMBER = nullable({"type": "number"})
COUNTS: Schema = {"type": "object", "additionalProperties": INTEGER}
STATS = document({
    "pairs": {"type": "array", "items": document({
        "author_lane": STRING, "reviewer_lane": STRING, "runs": INTEGER, "reviews": INTEGER,
        "verdicts": COUNTS, "needs_revision_rate": NULLABLE_NUMBER,
        "revision_depth_mean": NULLABLE_NUMBER, "revision_depth_max": INTEGER,
        "accepted": INTEGER, "seconds_per_accepted": NULLABLE_NUMBER,
        "cost_per_accepted": NULLABLE_NUMBER, "cost_known": BOOLEAN})},
    "checkpoints": {"type": "array", "items": document({
        "job": STRING, "lane": STRING, "runs": INTEGER, "decided": INTEGER,
        "waiting": INTEGER, "skipped": INTEGER, "choices": COUNTS})},
    "cost_known": BOOLEAN, "repo": NULLABLE_STRING})

RUN_GRAPH_FIELDS: dict[str, Schema] = {
    **RUN_VIEW_FIELDS,
    "waves": {"type": "array", "items": STRINGS},
    "edges": {"type": "array", "items": document({"from": STRING, "to": STRING})},
    # A review's loop back to the job it revises: its bound and the passes left.
    "revisions": {"type": "array", "items": document({
        "from": STRING, "to": STRING, "max": INTEGER, "left": INTEGER})},
    "verdicts": {"type": "array", "items": document({
        "job": STRING, "iteration": INTEGER, "verdict": STRING, "reason": STRING,
        "at": STRING})}}
RUN_GRAPH = document({**RUN_GRAPH_FIELDS, "why": RUN_WHY}, *RUN_GRAPH_FIELDS)  # why: asked for

RUN_HISTORY = document({
    "run": STRING,
    "events": {"type": "array", "items": document({
        "seq": INTEGER, "type": STRING, "job": NULLABLE_STRING, "payload": {"type": "object"},
        "hash": STRING, "at": STRING, "intact": BOOLEAN})},
    "intact": BOOLEAN, "broken": INTEGER,
    # The seq to ask `before` for the next, older page; null on the oldest page.
    "older": NULLABLE_INTEGER})

RUN_ARTIFACT = document({
    "run": STRING, "path": STRING, "job": STRING, "iteration": INTEGER, "stored_at": STRING,
    "sha256": STRING, "bytes": INTEGER,
    "kind": {"enum": ["markdown", "json", "diff", "text", "binary"]},
    "text": NULLABLE_STRING, "truncated": BOOLEAN})

JOB_SHOW = document({
    "run": STRING, "job": JOB_VIEW, "max_attempts": INTEGER,
    "prompt": NULLABLE_STRING, "log": NULLABLE_STRING, "log_tail": NULLABLE_STRING,
    "artifacts": {"type": "array", "items": document({
        "iteration": INTEGER, "path": STRING, "stored_at": STRING, "sha256": STRING,
        "bytes": INTEGER})},
    "verdicts": {"type": "array", "items": document({
        "iteration": INTEGER, "verdict": STRING, "reason": STRING, "at": STRING})},
    "leases": {"type": "array", "items": document({
        "fence": INTEGER, "owner": STRING, "iteration": INTEGER, "attempt": INTEGER,
        "acquired_at": STRING, "ended_at": NULLABLE_STRING, "outcome": NULLABLE_STRING,
        "executable": NULLABLE_STRING, "model": NULLABLE_STRING,
        "started_by": {"enum": ["worker", "operator", None]}})},
    "lease": nullable(document({
        "owner": NULLABLE_STRING, "expires_at": STRING, "expires_in_seconds": INTEGER,
        "heartbeat_age_seconds": NULLABLE_INTEGER, "expired": BOOLEAN})),
    "database_now": NULLABLE_STRING})

DECIDED = document({"run": STRING, "job": STRING, "choice": STRING, "run_status": STRING,
                    "skipped": STRINGS})

CLAIMED = document({
    "claimed": BOOLEAN, "run": STRING, "run_status": STRING, "job": STRING, "kind": STRING,
    "lane": STRING, "lease": STRING, "fence": INTEGER, "iteration": INTEGER,
    "attempt": INTEGER, "expires_at": STRING, "prompt_file": STRING, "artifact_dir": STRING,
    "produces": STRINGS,
    # When nothing was claimed: why, and what to do (docs/cli.md, `job claim`).
    "reason": {"enum": ["run_ended", "run_not_started", "no_such_lane", "waiting_for_human",
                        "nothing_ready_yet"]},
    "detail": STRING, "waiting": WAITING, "in_flight": STRINGS, "lanes": STRINGS},
    "claimed", "run")

HEARTBEAT = document({"run": STRING, "job": STRING, "expires_at": STRING})

PUBLISHED = document({"run": STRING, "job": STRING, "path": STRING, "sha256": STRING,
                      "bytes": INTEGER, "stored_at": STRING, "iteration": INTEGER})

JOB_OUTCOME = document({"run": STRING, "job": STRING, "status": STRING, "iteration": INTEGER,
                        "run_status": STRING, "blocked_on": NULLABLE_STRING})

DIAGNOSTICS: Schema = {"type": "array", "items": document({
    "code": STRING, "rule": STRING, "severity": {"enum": ["error", "warning", "info"]},
    "message": STRING, "file": NULLABLE_STRING, "line": NULLABLE_INTEGER,
    "column": NULLABLE_INTEGER, "path": STRING, "hint": STRING},
    "code", "severity", "message")}

VALIDATION = document({"file": STRING, "format": STRING, "valid": BOOLEAN,
                       "jobs": NULLABLE_INTEGER, "diagnostics": DIAGNOSTICS,
                       "summary": STRING})

LINT = document({"file": STRING, "valid": BOOLEAN, "diagnostics": DIAGNOSTICS,
                 "summary": STRING})

PLAN = document({
    "workflow": STRING, "jobs": INTEGER, "waves": {"type": "array", "items": STRINGS},
    "regions": {"type": "array", "items": document({
        "reviewer": STRING, "target": STRING, "max": INTEGER, "on_exhausted": STRING,
        "loop": STRINGS, "reruns": STRINGS})},
    "worst_case_job_executions": INTEGER, "worst_case_exact": BOOLEAN,
    "worst_case_choices": {"type": "object", "additionalProperties": STRING},
    "worst_case_wall_seconds": NULLABLE_INTEGER, "worst_case_wall_exact": BOOLEAN,
    "wall_unbounded_by": STRINGS,
    "worst_case_agent_calls": {"type": "object", "additionalProperties": INTEGER},
    "worst_case_agent_calls_exact": BOOLEAN,
    "paths": NULLABLE_INTEGER, "paths_exact": BOOLEAN,
    "walk": document({
        "status": STRING, "executions": INTEGER, "unused_verdicts": STRINGS,
        "steps": {"type": "array", "items": document({
            "job": STRING, "kind": STRING, "outcome": NULLABLE_STRING, "execution": INTEGER,
            "note": NULLABLE_STRING})}})},
    "workflow", "jobs", "waves", "regions", "worst_case_job_executions", "worst_case_exact",
    "worst_case_choices", "paths", "paths_exact")

DOCTOR = document({
    "ok": BOOLEAN, "anchored": BOOLEAN, "events": INTEGER, "audit_rows": INTEGER,
    "findings": {"type": "array", "items": document({
        "check": STRING, "status": {"enum": ["ok", "fail", "unanchored"]}, "ok": BOOLEAN,
        "message": STRING, "table": NULLABLE_STRING, "seq": NULLABLE_INTEGER})}})

SERVER_STATUS = document({
    "face": {"enum": ["daemon", "mcp"]}, "pid": INTEGER, "version": STRING,
    "started_at": STRING, "uptime_seconds": INTEGER, "database": STRING,
    "socket": NULLABLE_STRING})
