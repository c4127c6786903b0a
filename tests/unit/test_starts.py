"""Who an attempt's lane runs, as the attempt's start records it: the executable its
program resolves to (through the lane's PATH, or relative to its working folder) and the
model its command names."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from striatum.compiler.ir import Lane
from striatum.runtime.starts import executable_of, known_starts, model_of, start_data, start_text


def _script(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def test_a_name_resolves_through_the_lanes_path_not_the_workers(tmp_path: Path) -> None:
    agent = _script(tmp_path / "bin" / "reviewer-cli")
    env = {"PATH": f"{tmp_path / 'empty'}{os.pathsep}{agent.parent}"}
    assert executable_of("reviewer-cli", env, tmp_path / "repo") == str(agent)
    assert executable_of("reviewer-cli", {"PATH": str(tmp_path / "empty")}, tmp_path) is None


def test_a_relative_path_resolves_against_the_lanes_working_folder(tmp_path: Path) -> None:
    agent = _script(tmp_path / "repo" / "tools" / "agent")
    assert executable_of("tools/agent", {}, tmp_path / "repo") == str(agent)
    assert executable_of("./tools/../tools/agent", {}, tmp_path / "repo") == str(agent)
    assert executable_of("tools/missing", {}, tmp_path / "repo") is None


def test_a_relative_path_entry_resolves_against_the_working_folder(tmp_path: Path) -> None:
    agent = _script(tmp_path / "repo" / "bin" / "agent")
    assert executable_of("agent", {"PATH": "bin"}, tmp_path / "repo") == str(agent)


def test_a_file_that_is_not_executable_is_no_executable(tmp_path: Path) -> None:
    plain = tmp_path / "repo" / "agent"
    plain.parent.mkdir()
    plain.write_text("not a program", encoding="utf-8")
    assert executable_of("./agent", {}, tmp_path / "repo") is None


def test_the_start_names_the_lane_the_executable_and_the_model_as_written(
        tmp_path: Path) -> None:
    agent = _script(tmp_path / "bin" / "claude")
    data = start_data("reviewer", [str(agent), "--model", "Claude-Opus-4-1", "-p", "x"],
                      {"PATH": ""}, tmp_path)
    assert data == {"lane": "reviewer", "executable": str(agent),
                    "model": "Claude-Opus-4-1"}
    assert start_data("coder", [], {}, tmp_path) == {"lane": "coder", "executable": None,
                                                     "model": None}


def test_the_model_flags() -> None:
    assert model_of(["codex", "exec", "-m", "gpt-5"]) == "gpt-5"
    assert model_of(["aider", "--model=o3"]) == "o3"
    assert model_of(["claude", "-p", "--model"]) is None


def test_the_starts_a_claim_can_chain_are_those_no_job_or_folder_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _script(tmp_path / "bin" / "agent")
    monkeypatch.setenv("PATH", str(agent.parent))
    lanes = {
        "by-path": Lane("by-path", command=(str(agent), "-m", "o3", "{prompt_file}")),
        "by-name": Lane("by-name", command=("agent", "--model=o3", "job-{job}.md")),
        "human": Lane("human", kind="human"),
        # The job, a relative path or a relative PATH entry would each name another
        # program, or another model, from one attempt to the next.
        "placeholder": Lane("placeholder", command=("{job}/agent",)),
        "relative": Lane("relative", command=("./agent",)),
        "relative-path": Lane("relative-path", command=("agent",),
                              env=(("PATH", f"bin{os.pathsep}{agent.parent}"),)),
        "model-filled": Lane("model-filled", command=("agent", "--model", "{run}")),
        "flag-filled": Lane("flag-filled", command=("agent", "{job}", "x")),
    }
    found = known_starts(lanes, tmp_path / "repo")
    assert found == {
        "by-path": start_text({"lane": "by-path", "executable": str(agent), "model": "o3"}),
        "by-name": start_text({"lane": "by-name", "executable": str(agent), "model": "o3"}),
    }
    assert found["by-name"] == f'{{"executable":"{agent}","lane":"by-name","model":"o3"}}'
