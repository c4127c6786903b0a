"""The routed fast path's table (``cli.fastpath``) against the click commands it mirrors
and the verbs it calls, and what it leaves to click: a command line it reads differently
from click would run a different call, so every option is compared."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from striatum.cli import fastpath
from striatum.cli import job as job_commands
from striatum.cli.fastpath import COMMANDS, REQUIRED, SECONDS, parse
from striatum.cli.main import cli
from striatum.cli.refs import RunRef
from striatum.errors import NotFound
from striatum.server import where
from striatum.server.place import RuntimeDir, runtime_dir
from striatum.server.registry import VERBS

RUN = "20261205-053757-f6a202"
HELD = {"STRIATUM_RUN": RUN, "STRIATUM_JOB": "check", "STRIATUM_LEASE": "1-abc"}


def command(noun: str, verb: str) -> click.Command:
    group = cli.get_command(click.Context(cli), noun)
    assert isinstance(group, click.Group)
    found = group.get_command(click.Context(group), verb)
    assert found is not None
    return found


def kind_of(param: click.Parameter) -> str:
    if param.multiple:
        return "many"
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    if isinstance(param.type, RunRef):
        return "run"
    if isinstance(param.type, click.IntRange):
        assert (param.type.min, param.type.max) == SECONDS
        return "seconds"
    if isinstance(param.type, click.Path):
        return "file"
    return "text"


@pytest.mark.parametrize("words", list(COMMANDS), ids=" ".join)
def test_the_table_holds_each_option_as_the_click_command_declares_it(
        words: tuple[str, str]) -> None:
    verb, positional, options = COMMANDS[words]
    declared = command(*words).params
    arguments = [p for p in declared if isinstance(p, click.Argument)]
    assert [(kind, choices) for _, kind, choices in positional] == [
        (kind_of(p), tuple(getattr(p.type, "choices", ()))) for p in arguments]
    table = dict(options)
    for param in declared:
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        (name,) = param.opts
        assert name in table, f"{' '.join(words)}: {name} is not in the table"
        _, kind, variable, default = table.pop(name)
        # "stated" is text to click too: the command maps an empty one to None itself.
        assert (kind if kind != "stated" else "text") == kind_of(param), name
        assert variable == param.envvar, name
        assert (default is REQUIRED) == param.required, name
        if param.multiple:
            assert default == ()  # none given: the parameter is left out of the call
        elif not param.required:
            assert default == param.get_default(click.Context(command(*words))), name
    assert not table, f"{' '.join(words)}: the command has no {sorted(table)}"
    # Every parameter the table fills is one of the verb's (the flag --json aside).
    fields = VERBS[verb].params["properties"]
    keys = {key for key, *_ in positional} | {spec[0] for spec in options.values()}
    assert keys - {"as_json"} <= set(fields)
    if "lease_seconds" in keys:
        assert (fields["lease_seconds"]["minimum"], fields["lease_seconds"]["maximum"]) == \
            SECONDS


def test_the_runtime_folder_is_named_alike_both_ways(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIATUM_HOME", "~/../" + tmp_path.name)
    monkeypatch.setenv("HOME", str(tmp_path / "x"))
    place = runtime_dir()
    assert os.path.join(where.home_dir(), where.RUNTIME_DIR) == str(place.path)
    monkeypatch.delenv("STRIATUM_HOME")
    assert os.path.join(where.home_dir(), where.RUNTIME_DIR) == str(runtime_dir().path)
    folder = RuntimeDir(tmp_path)
    assert [folder.socket.name, folder.dsn_digest.name, folder.client_token.name] == [
        where.SOCKET, where.DSN_DIGEST, where.CLIENT_TOKEN]


def parsed(*args: str, **env: str) -> tuple[str, dict[str, Any], str, str | None, bool] | None:
    found = parse(list(args), env)
    return None if found is None else (found.verb, found.params, found.repo, found.dsn,
                                       found.as_json)


def test_the_agent_loop_command_lines_are_read_as_click_reads_them(tmp_path: Path) -> None:
    assert parsed("run", "status", RUN) == ("run.status", {"run": RUN}, ".", None, False)
    assert parsed("--repo", str(tmp_path), "--dsn=dbname=x", "run", "status", "--json",
                  "latest") == ("run.status", {"run": "latest"}, str(tmp_path), "dbname=x",
                                True)
    assert parsed("job", "claim", STRIATUM_RUN=RUN, STRIATUM_DSN="dbname=y",
                  STRIATUM_REPO=str(tmp_path)) == (
        "job.claim", {"run": RUN, "lane": None, "owner": None, "model": None,
                      "lease_seconds": 300},
        str(tmp_path), "dbname=y", False)
    assert parsed("job", "claim", "--run", "x", "--lease-seconds=0600", "--lane", "l")[1] == {
        "run": "x", "lane": "l", "owner": None, "model": None, "lease_seconds": 600}
    # The model as the operator states it: the option, else its session's variable.
    assert parsed("job", "claim", "--run", "x", STRIATUM_MODEL="gpt-5")[1]["model"] == "gpt-5"
    assert parsed("job", "claim", "--run", "x", "--model", "o3",
                  STRIATUM_MODEL="gpt-5")[1]["model"] == "o3"
    assert parsed("job", "claim", "--run", "x", STRIATUM_MODEL="")[1]["model"] is None
    # An empty model is none stated, as the command's `model or None` makes it (the verb's
    # schema refuses an empty one).
    for empty in (["--model", ""], ["--model="]):
        assert parsed("job", "claim", "--run", "x", *empty,
                      STRIATUM_MODEL="gpt-5")[1]["model"] is None
    assert parsed("job", "verdict", "--reason", "fine", "needs_revision", **HELD)[:2] == (
        "job.verdict", {"run": RUN, "job": "check", "lease": "1-abc", "outcome":
                        "needs_revision", "reason": "fine"})
    assert parsed("job", "verdict", "accept", "--reason", "r", "--finding", "F1",
                  "--finding=F2", **HELD)[1]["findings"] == ["F1", "F2"]
    assert parsed("job", "publish", "--artifact", "a.md", "--as", "b.md", **HELD)[1] == {
        "run": RUN, "job": "check", "lease": "1-abc", "artifact": os.path.abspath("a.md"),
        "name": "b.md"}
    # The command line's options before the environment's.
    assert parsed("job", "complete", "--run", "other", **HELD)[1]["run"] == "other"


@pytest.mark.parametrize("model", [["--model", ""], ["--model="], ["--model", "o3"], []],
                         ids=["empty", "empty=", "o3", "none"])
def test_a_claims_model_is_sent_by_both_paths_alike(
        model: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """What the click command sends the verb, against what the fast path parses from the
    same command line."""
    sent: list[tuple[str, dict[str, Any]]] = []

    @contextmanager
    def calls() -> Iterator[Callable[[str, dict[str, Any]], Any]]:
        def call(verb: str, params: dict[str, Any]) -> Any:
            sent.append((verb, params))
            raise NotFound("not served here")  # what it was sent is all this test reads

        yield call

    monkeypatch.setattr(job_commands, "calls", calls)
    env = {"STRIATUM_MODEL": "gpt-5"}
    for name in ("STRIATUM_SOCKET", "STRIATUM_DIRECT", "STRIATUM_RUN"):
        monkeypatch.delenv(name, raising=False)
    argv = ["job", "claim", "--run", RUN, "--owner", "me", *model]
    CliRunner().invoke(cli, argv, env=env)
    fast = parse(argv, env)
    assert fast is not None
    assert sent == [(fast.verb, fast.params)]
    assert fast.params["model"] == ("o3" if "o3" in model else None if model else "gpt-5")


def test_in_a_lane_the_lease_verbs_go_to_its_socket() -> None:
    lane = {**HELD, "STRIATUM_SOCKET": "/tmp/lane/worker.sock"}
    found = parse(["job", "verdict", "accept", "--reason", "fine", "--json"], lane)
    assert found is not None and found.lane == "/tmp/lane/worker.sock"
    assert (found.verb, found.params, found.as_json) == ("job.verdict", {
        "run": RUN, "job": "check", "lease": "1-abc", "outcome": "accept",
        "reason": "fine"}, True)
    assert parse(["job", "heartbeat"], HELD).lane is None  # type: ignore[union-attr]


@pytest.mark.parametrize("args,env", [
    (["run", "status", RUN, "--help"], {}),
    (["run", "status", RUN, "-h"], {}),
    (["--help"], {}),
    (["--version"], {}),
    (["run", "status"], {}),
    (["run", "status", RUN, RUN], {}),
    (["run", "status", "--", RUN], {}),
    (["run", "status", RUN, "--json=1"], {}),
    (["run", "status", RUN, "--json", "--json"], {}),
    (["run", "status", RUN, "--bogus"], {}),
    (["run", "list"], {}),
    (["run"], {}),
    (["--direct", "run", "status", RUN], {}),
    (["run", "status", RUN], {"STRIATUM_DIRECT": "1"}),
    (["run", "--repo", ".", "status", RUN], {}),
    (["--repo", "pyproject.toml", "run", "status", RUN], {}),
    (["--repo", "", "run", "status", RUN], {}),
    (["run", "status", "caf\udce9"], {}),
    (["job", "claim", "--run", RUN], {"STRIATUM_SOCKET": "/tmp/s"}),
    (["run", "status", RUN], {"STRIATUM_SOCKET": "/tmp/s"}),
    (["job", "verdict", "accept", "--reason", "r", "--run", "latest"],
     {**HELD, "STRIATUM_SOCKET": "/tmp/s"}),
    (["job", "complete", "--"], {**HELD, "STRIATUM_SOCKET": "/tmp/s"}),
    (["job", "complete"], {**HELD, "STRIATUM_SOCKET": "/tmp/s", "STRIATUM_DIRECT": "1"}),
    (["job", "verdict", "maybe", "--reason", "r"], HELD),
    (["job", "verdict", "accept"], HELD),
    (["job", "verdict", "accept", "--reason"], HELD),
    (["job", "verdict", "accept", "--reason", "--json"], HELD),
    (["job", "verdict", "accept", "--reason", "r"], {**HELD, "STRIATUM_LEASE": ""}),
    (["job", "claim"], {}),
    (["job", "claim", "--run", RUN, "--lease-seconds", "4"], {}),
    (["job", "claim", "--run", RUN, "--lease-seconds", "86401"], {}),
    (["job", "claim", "--run", RUN, "--lease-seconds", "+30"], {}),
    (["job", "claim", "--run", RUN, "--lease-seconds", "3_0"], {}),
    (["job", "claim", "--run", RUN, "--lease-seconds", "３０"], {}),
    (["job", "claim", "--run", RUN, "--lane", "a", "--lane", "b"], {}),
    (["job", "claim", "--run", RUN, "-l", "a"], {}),
    (["job", "show", "--run", RUN], {}),
])
def test_what_it_does_not_read_exactly_is_left_to_click(
        args: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # where pyproject.toml is a file
    assert parse(args, env) is None


def test_without_a_daemon_the_command_line_is_left_to_click(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIATUM_HOME", str(tmp_path))
    monkeypatch.delenv("STRIATUM_DIRECT", raising=False)
    monkeypatch.delenv("STRIATUM_SOCKET", raising=False)
    assert fastpath.routed(["run", "status", RUN]) is None  # no socket at all
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "daemon.sock").touch()  # a socket file nobody listens on
    assert fastpath.routed(["run", "status", RUN]) is None
    # A lane whose worker does not answer: click's path says so.
    for key, value in HELD.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("STRIATUM_SOCKET", str(tmp_path / "gone.sock"))
    assert fastpath.routed(["job", "heartbeat"]) is None
    monkeypatch.setenv("STRIATUM_SOCKET", str(tmp_path / "run" / "daemon.sock"))
    assert fastpath.routed(["job", "heartbeat"]) is None
