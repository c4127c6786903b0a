"""Lane presets for the real agent CLIs, and lint's checks of a lane that runs one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from striatum.cli.main import cli
from striatum.compiler import check, lint
from striatum.compiler.presets import CLIS, ROLES, docs_section, preset

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*/workflow.json"))


def codes_for(tmp_path: Path, lane: dict[str, Any], *, kind: str = "task",
              produces: bool = True, worktree: bool = False) -> list[str]:
    """The STR315-318 lint finds on one job of ``kind`` on ``lane``."""
    job: dict[str, Any] = {"id": "job", "lane": "agent", "prompt": {"text": "do it"}}
    if kind == "review":
        job.update(kind="review", needs=["first"])
    if produces:
        job["produces"] = ["out.md"]
    if worktree:
        job["isolation"] = "worktree"
    jobs = [{"id": "first", "lane": "other", "prompt": {"text": "x"}}] if kind == "review" \
        else []
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps({"name": "w", "lanes": {
        "agent": lane, "other": {"kind": "operator"}}, "jobs": [*jobs, job]}), encoding="utf-8")
    comp = check(str(path))
    assert comp.ok, [d.to_json() for d in comp.diagnostics]
    return sorted(d.code for d in lint(comp) if d.code in ("STR315", "STR316", "STR317",
                                                          "STR318"))


@pytest.mark.parametrize("cli_name", list(CLIS))
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["task", "review"])
@pytest.mark.parametrize("worktree", [False, True], ids=["tree", "worktree"])
def test_every_preset_passes_its_own_checks(tmp_path: Path, cli_name: str, role: str,
                                            kind: str, worktree: bool) -> None:
    # A gemini reviewer may write nothing: a review that produces files needs an author.
    produces = not (cli_name == "gemini" and role == "reviewer")
    assert codes_for(tmp_path, preset(cli_name, role), kind=kind, produces=produces,
                     worktree=worktree) == []


def test_a_gemini_reviewer_that_must_produce_a_file_is_flagged(tmp_path: Path) -> None:
    assert codes_for(tmp_path, preset("gemini", "reviewer"), kind="review") == ["STR317"]


@pytest.mark.parametrize("lane, kind, worktree, expected", [
    # claude -p with no permission: neither the file nor the verdict.
    ({"command": ["claude", "-p"]}, "task", False, ["STR317"]),
    ({"command": ["claude", "-p"]}, "review", False, ["STR316", "STR317"]),
    # --allowedTools not last swallows what follows it.
    ({"command": ["claude", "-p", "--allowedTools", "Bash(striatum *)", "--model", "x"]},
     "review", False, ["STR315", "STR317"]),
    # codex: a flag that is gone, a read-only producer, a worktree it cannot reach.
    ({"command": ["codex", "exec", "--full-auto", "-"]}, "task", False, ["STR315", "STR317"]),
    ({"command": ["codex", "exec", "--sandbox", "read-only", "-"]}, "task", False,
     ["STR317"]),
    ({"command": ["codex", "exec", "--sandbox", "workspace-write", "-"]}, "task", True,
     ["STR317"]),
    ({"command": ["codex", "exec", "--sandbox", "read-only", "-"]}, "review", False,
     ["STR316", "STR317"]),
    # gemini: an untrusted folder; auto_edit without the shell can still leave verdict.json.
    ({"command": ["gemini", "-p", "x"]}, "review", False, ["STR316", "STR317", "STR318"]),
    ({"command": ["gemini", "--approval-mode", "auto_edit", "-p", "x"],
      "env": {"GEMINI_CLI_TRUST_WORKSPACE": "true"}}, "review", False, []),
    # Through npx, and a program nobody knows: not checked.
    ({"command": ["npx", "@google/gemini-cli", "-p", "x"]}, "task", False,
     ["STR317", "STR318"]),
    ({"command": ["my-agent", "--anything"]}, "review", False, []),
])
def test_lanes_that_would_not_work_headless_are_flagged(
        tmp_path: Path, lane: dict[str, Any], kind: str, worktree: bool,
        expected: list[str]) -> None:
    assert codes_for(tmp_path, lane, kind=kind, worktree=worktree) == expected


def test_lane_preset_prints_the_table_s_lane() -> None:
    runner = CliRunner()
    for cli_name in CLIS:
        for role in ROLES:
            done = runner.invoke(cli, ["lane", "preset", cli_name, "--role", role,
                                       "--model", "m1", "--json"])
            assert done.exit_code == 0, done.output
            assert json.loads(done.output) == preset(cli_name, role, "m1")
            assert "m1" in preset(cli_name, role, "m1")["command"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_every_example_lane_is_a_preset(path: Path) -> None:
    lanes = json.loads(path.read_text(encoding="utf-8"))["lanes"]
    table = [preset(name, role) for name in CLIS for role in ROLES]
    for name, lane in lanes.items():
        if lane.get("kind", "command") == "command":
            assert lane in table, f"lane {name!r} of {path.parent.name} is no preset: {lane}"


def test_the_workers_guide_shows_the_presets_as_the_table_has_them() -> None:
    doc = (ROOT / "docs" / "workers.md").read_text(encoding="utf-8")
    assert docs_section() in doc, "run `python -m striatum.compiler.presets` into docs/workers.md"
