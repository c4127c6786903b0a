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


def assert_common_pins(report: list[dict[str, Any]], run_a: str, run_b: str) -> None:
    """The rows of docs/security.md that hold whichever DSN the lane was handed."""
    # R4: INSERT on the events is granted: a forged event goes in (doctor names it).
    assert outcome(report, "db.insert_event") is True
    # R5: the projection tables are the runtime role's to write: a job of another run is
    # changed behind the state machines' back.
    assert outcome(report, "db.update_projection", f"{run_b}/held") is True
    # R6: other jobs' live lease tokens are readable in striatum.jobs.
    assert outcome(report, "db.read_lease_tokens") is True
    # R7: a forged token is refused.
    assert outcome(report, "this_run.end_forged_token", f"{run_a}/review") is False
    assert outcome(report, "other_run.end_forged_token", f"{run_b}/held") is False
    # R8: a stolen live token works: a verdict on its own work, another run's job.
    assert outcome(report, "this_run.publish_stolen_token", f"{run_a}/review") is True
    assert outcome(report, "this_run.end_stolen_token", f"{run_a}/review") is True
    assert outcome(report, "other_run.publish_stolen_token", f"{run_b}/held") is True
    assert outcome(report, "other_run.end_stolen_token", f"{run_b}/held") is True
    # R9: fencing holds for tokens it held once: an earlier attempt's, an expired one.
    assert outcome(report, "replay.earlier_attempt") is False
    assert outcome(report, "replay.expired_token") is False
    # R10: it may claim a ready job of any run.
    assert outcome(report, "other_run.claim") is True
