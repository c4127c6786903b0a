"""``job claim`` through the installed command records who claimed: the operator, its
owner, and a model only as stated (``--model``, else ``STRIATUM_MODEL``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .conftest import executable

pytestmark = pytest.mark.e2e


def test_a_claim_records_the_model_stated_by_option_or_variable_and_none_otherwise(
        tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps({
        "name": "three", "lanes": {"op": {"kind": "operator"}},
        "jobs": [{"id": name, "lane": "op", "prompt": {"text": name}}
                 for name in ("one", "two", "three")]}), encoding="utf-8")
    base = {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "STRIATUM_DEBUG", "STRIATUM_MODEL")}

    def striatum(*args: str, **env: str) -> dict[str, Any]:
        done = subprocess.run([executable(), "--repo", str(repo), *args, "--json"],
                              env={**base, **env}, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, (args, done.stderr)
        return dict(json.loads(done.stdout))

    run_id = striatum("run", "prepare", "--workflow", str(workflow), "--start")["run"]
    claimed = [striatum("job", "claim", "--run", run_id, "--owner", "a", "--model", "gpt-5"),
               striatum("job", "claim", "--run", run_id, "--owner", "b",
                        STRIATUM_MODEL="gemini-2.5-pro"),
               striatum("job", "claim", "--run", run_id, "--owner", "c")]
    events = striatum("run", "events", run_id)["events"]
    started = {e["job"]: e["payload"]["data"] for e in events if e["type"] == "attempt.start"}
    assert {c["job"]: (started[c["job"]]["owner"], started[c["job"]]["model"])
            for c in claimed} == {claimed[0]["job"]: ("a", "gpt-5"),
                                  claimed[1]["job"]: ("b", "gemini-2.5-pro"),
                                  claimed[2]["job"]: ("c", None)}
    assert {(d["by"], d["executable"]) for d in started.values()} == {("operator", None)}
