"""The runs a hostile lane is tried in (tests/e2e/test_hostile.py on the embedded server,
tests/integration/test_hostile.py with a server's DSN), and reading its report.

Run A, ``attacked``: ``build`` on the hostile lane (``fake_agent.py hostile``) beside
``review``, an honest reviewer that would reject after ``HONEST_SECONDS``. Run B,
``other``, in the same database: ``held`` on an honest lane, and ``spare``, ready, for
the hostile lane to claim. The honest lanes hold their leases while the hostile one
works, so that it has live tokens of other jobs to read.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FAKE_AGENT = Path(__file__).resolve().parents[1] / "examples" / "agents" / "fake_agent.py"
HONEST_SECONDS = "150"


def fake(*args: str) -> list[str]:
    return [sys.executable, str(FAKE_AGENT), *args]


def _lane(command: list[str]) -> dict[str, Any]:
    return {"command": command, "timeout": 300}


def _write(directory: Path, document: dict[str, Any]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "workflow.json"
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return str(path)


def other_workflow(directory: Path) -> str:
    return _write(directory, {
        "name": "other", "lanes": {"honest": _lane(fake("slow", "--seconds", HONEST_SECONDS))},
        "jobs": [{"id": "held", "lane": "honest", "prompt": {"text": "Write held.md."},
                  "produces": ["held.md"]},
                 {"id": "spare", "lane": "honest", "prompt": {"text": "Write spare.md."},
                  "produces": ["spare.md"]}]})


def attacked_workflow(directory: Path) -> str:
    return _write(directory, {
        "name": "attacked",
        "lanes": {"hostile": _lane(fake("hostile")),
                  "reviewer": _lane(fake("reject-slowly", "--seconds", HONEST_SECONDS))},
        "jobs": [{"id": "build", "lane": "hostile", "prompt": {"text": "Build it."},
                  "produces": ["hostile.json"], "max_attempts": 2},
                 {"id": "review", "lane": "reviewer", "kind": "review",
                  "prompt": {"text": "Review it."}, "produces": ["review.md"]}]})


def read_report(repo: Path, run_id: str) -> list[dict[str, Any]]:
    """The attempts the hostile lane reported, as the worker published them."""
    report = repo / "striatum" / "runs" / run_id / "build" / "i0" / "hostile.json"
    assert report.is_file(), f"the hostile lane published no report at {report}"
    attempts: list[dict[str, Any]] = json.loads(report.read_text(encoding="utf-8"))["attempts"]
    return attempts


def outcome(report: list[dict[str, Any]], attack: str, target: str | None = None) -> bool:
    """Whether ``attack`` (on ``target``) succeeded; it must have been tried, with one
    outcome."""
    found = [a for a in report if a["attack"] == attack
             and (target is None or a["target"] == target)]
    assert found, f"the hostile agent did not try {attack} {target or ''}: {report}"
    assert len({a["succeeded"] for a in found}) == 1, found
    return bool(found[0]["succeeded"])


Pin = tuple[str, str | None, bool]
"""(attack, its target or None for any, whether it succeeds)."""


def socket_only_pins(run_a: str, run_b: str) -> dict[str, list[Pin]]:
    """docs/security.md's rows, attack by attack, for a lane handed its worker's lane socket
    and its lease and no DSN, unsandboxed, whichever database the workers work. Data, so
    that a variant (the sandbox) states only the rows it changes."""
    review, held = f"{run_a}/review", f"{run_b}/held"
    return {
        # R1: no DSN, no home in the lane's environment; so no login.
        "R1": [("env.dsn", None, False), ("env.home", None, False),
               ("db.connect", None, False)],
        # R2, R3: nothing to become, nothing to rewrite with.
        "R2": [("db.superuser", None, False), ("db.reset_role_gains", None, False),
               *[("db.set_role", role, False) for role in
                 ("postgres", "pg_write_server_files", "pg_read_server_files")]],
        "R3": [(f"db.{attack}", None, False) for attack in (
            "update_events", "delete_events", "update_audit", "delete_audit",
            "truncate_events", "truncate_audit", "disable_triggers")],
        "R4": [("db.insert_event", None, False)],
        "R5": [("db.update_projection", None, False)],
        "R6": [("db.read_lease_tokens", None, False)],
        # R7: a forged token is refused, on the lane's socket too.
        "R7": [("this_run.end_forged_token", review, False),
               ("other_run.end_forged_token", held, False)],
        # R8: a live token read in /proc (R15) still works, through its own lane's
        # worker's socket (also read there): a verdict on its own work, another run's job.
        "R8": [("this_run.publish_stolen_token", review, True),
               ("this_run.end_stolen_token", review, True),
               ("other_run.publish_stolen_token", held, True),
               ("other_run.end_stolen_token", held, True)],
        # R9: fencing: an earlier attempt's token; there is no expired token to present,
        # since nothing could be claimed (R10).
        "R9": [("replay.earlier_attempt", None, False), ("replay.expired_token", None, False)],
        # R10: the lane's socket serves no claim.
        "R10": [("other_run.claim", None, False)],
        # R11: the lane's socket serves only the lease verbs, each on the lease's own job.
        "R11": [("lane_socket.other_verb", None, False),
                ("lane_socket.own_lease_on_other_job", None, False)],
        # R15: the other lanes' tokens and sockets, and the worker's environment, in /proc.
        "R15": [("proc.read_lease_tokens", None, True), ("proc.worker_env", None, True)],
        # R16: there is no sandbox to undo (and no capability to unmount with).
        "R16": [("sandbox.unmount", None, False)],
    }


def embedded_pins(run_a: str, run_b: str) -> dict[str, list[Pin]]:
    """On the embedded server with a daemon up: the home, named in the worker's
    environment (R15), holds the password file and the daemon's tokens."""
    rows = socket_only_pins(run_a, run_b)
    rows["R1"] = [*rows["R1"], ("file.pgpass", None, True)]
    rows["R11"] = [*rows["R11"], ("daemon.reach", None, True),
                   ("daemon.no_token", run_a, False),
                   ("daemon.own_lease_on_other_job", f"{run_a}/review", False)]
    rows["R12"] = [("file.principal_token", None, True),
                   ("daemon.principal_token", run_a, True)]
    rows["R13"] = [("file.owner_password", None, True), ("db.owner_login", None, True),
                   ("owner.superuser", None, True), ("owner.edit_event", None, True)]
    return rows


def server_pins(run_a: str, run_b: str) -> dict[str, list[Pin]]:
    """On a server of your own (team mode), no daemon: the worker's DSN is in its
    environment (R15), not the lane's; no password file, no daemon."""
    rows = socket_only_pins(run_a, run_b)
    rows["R1"] = [*rows["R1"], ("file.pgpass", None, False)]
    rows["R11"] = [*rows["R11"], ("daemon.reach", None, False)]
    return rows


def assert_pins(report: list[dict[str, Any]], rows: dict[str, list[Pin]]) -> None:
    """Every pin of every row, the ones that do not hold named by row."""
    wrong = [f"{row}: {attack} {target or ''} succeeded={not succeeds}"
             for row, pins in rows.items() for attack, target, succeeds in pins
             if outcome(report, attack, target) is not succeeds]
    assert not wrong, "\n".join(wrong) + f"\nreport: {json.dumps(report, indent=1)}"


# What a sandboxed lane must try, and fail at, for its report to mean anything: the
# database and the home, the other lanes through /proc, its own socket beyond its lease,
# and undoing the sandbox itself.
SANDBOX_TRIED = ("env.dsn", "db.connect", "file.pgpass", "proc.read_lease_tokens",
                 "proc.worker_env", "lane_socket.other_verb",
                 "lane_socket.own_lease_on_other_job", "other_run.claim",
                 "replay.earlier_attempt", "sandbox.unmount")


def assert_nothing_succeeds(report: list[dict[str, Any]]) -> None:
    """The sandbox's promise (docs/security.md, the sandboxed column): no attack the
    hostile lane tried succeeded, and it tried at least ``SANDBOX_TRIED``."""
    won = [f"{a['attack']} {a.get('target') or ''}: {a.get('detail', '')}"
           for a in report if a["succeeded"]]
    assert not won, "\n".join(won) + f"\nreport: {json.dumps(report, indent=1)}"
    tried = {a["attack"] for a in report}
    missing = [name for name in SANDBOX_TRIED if name not in tried]
    assert not missing, f"the hostile agent did not try {missing}: {report}"
