"""``--sandbox`` on the verbs that run lanes, through the installed CLI on the embedded
server: the lane runs under bwrap though its workflow does not ask for it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from striatum.runtime import sandbox

from . import test_hostile
from .test_hostile import Home

home = test_hostile.home  # its fixture: a striatum home of the test's own, with its server

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300),
              pytest.mark.skipif(sandbox.probe() is not None,
                                 reason=f"no usable bubblewrap: {sandbox.probe()}")]

# What the lane reports: who its pid 1 is, and whether the home's pgpass is readable.
LOOK = ("import os, pathlib, sys; home = sys.argv[1]; out = os.environ['STRIATUM_ARTIFACT_DIR']; "
        "pid1 = os.path.basename(pathlib.Path('/proc/1/cmdline').read_bytes().split(b'\\0')[0]"
        ".decode()); "
        "pathlib.Path(out, 'seen.json').write_text(__import__('json').dumps("
        "{'pid1': pid1, 'pgpass': os.path.exists(os.path.join(home, 'pgpass'))}))")


@pytest.mark.parametrize("verb", [("run", "start", "--wait"), ("run", "work")],
                         ids=["start-wait", "work"])
def test_the_sandbox_flag_runs_an_unsandboxed_workflow_s_lane_under_bwrap(
        home: Home, tmp_path: Path, verb: tuple[str, ...]) -> None:
    flow = tmp_path / "flow" / "workflow.json"
    flow.parent.mkdir()
    flow.write_text(json.dumps({
        "name": "look", "lanes": {"agent": {"command": [sys.executable, "-c", LOOK,
                                                        str(home.root)]}},
        "jobs": [{"id": "look", "lane": "agent", "prompt": {"text": "Look."},
                  "produces": ["seen.json"]}]}))
    run_id = str(home.json("run", "prepare", "--workflow", str(flow))["run"])
    if verb[1] == "work":
        home.json("run", "start", run_id)
    done = home.cli(*verb[:2], run_id, *verb[2:], "--sandbox")
    assert "completed" in done.stdout + done.stderr, done.stderr
    seen = json.loads((home.repo / "striatum" / "runs" / run_id / "look" / "i0"
                       / "seen.json").read_text())
    assert seen == {"pid1": "bwrap", "pgpass": False}, seen
    # And without the flag, the same lane is the worker's child and reads pgpass.
    again = str(home.json("run", "prepare", "--workflow", str(flow))["run"])
    home.cli("run", "start", again, "--wait")
    seen = json.loads((home.repo / "striatum" / "runs" / again / "look" / "i0"
                       / "seen.json").read_text())
    assert seen["pid1"] != "bwrap" and seen["pgpass"] is True, seen
