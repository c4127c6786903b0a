"""The CLI's database verbs both ways: through the home's daemon, and direct (the
database opened by the command itself): the same output, text and --json, and the same
exit codes; the routed way imports no psycopg. One daemon serves the whole module, on
the test run's striatum home (its embedded server), stopped at the end."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import executable

pytestmark = pytest.mark.e2e

WORKFLOW = {
    "name": "ways", "lanes": {"agent": {"kind": "operator"}, "human": {"kind": "human"}},
    "jobs": [
        {"id": "draft", "lane": "agent", "prompt": {"text": "Draft it."}},
        {"id": "decide", "lane": "human", "kind": "checkpoint", "title": "Go?",
         "needs": ["draft"], "choices": {"go": ["ship"], "stop": []}},
        {"id": "ship", "lane": "agent", "needs": ["decide"], "prompt": {"text": "Ship it."}},
    ]}
WAYS = ("direct", "daemon")


class Way:
    """The installed command run one way, in a git repository of its own."""

    def __init__(self, way: str, repo: Path) -> None:
        self.way = way
        self.repo = repo
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "STRIATUM_DEBUG", "STRIATUM_DIRECT",
                                 "STRIATUM_DSN")}
        if way == "direct":
            self.env["STRIATUM_DIRECT"] = "1"
        self.names: dict[str, str] = {str(repo): "REPO"}
        self.said: list[tuple[Any, ...]] = []

    def __call__(self, *args: str, env: dict[str, str] | None = None,
                 python: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        argv = [*python, "-m", "striatum"] if python else [executable()]
        return subprocess.run([*argv, *args], cwd=self.repo, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=120)

    def say(self, *args: str, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run a command and keep what it said (``heard`` makes ids, paths and times
        alike)."""
        done = self(*args, env=env)
        assert "Traceback" not in done.stdout + done.stderr, (self.way, args, done.stderr)
        self.said.append((" ".join(args), done.returncode, done.stdout, done.stderr))
        return done

    def heard(self) -> list[tuple[Any, ...]]:
        return [(self.alike(args), code, self.alike(out), self.alike(err))
                for args, code, out, err in self.said]

    def alike(self, text: str) -> str:
        for value, name in self.names.items():
            text = text.replace(value, name)
        text = re.sub(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?", "TIME", text)
        text = re.sub(r"\b\d\d:\d\d:\d\d\b", "HH:MM:SS", text)
        text = re.sub(r"\(\d+ s,", "(N s,", text)  # how long an inbox item has waited
        return re.sub(r"\b[0-9a-f]{64}\b", "SHA256", text)


@pytest.fixture(scope="module")
def daemon() -> Iterator[Path]:
    """The daemon of the test run's striatum home, for the module; stopped after it."""
    place = Path(os.environ["STRIATUM_HOME"]) / "run"
    cli = [executable()]
    env = {k: v for k, v in os.environ.items() if k not in ("STRIATUM_DSN", "STRIATUM_DIRECT")}
    started = subprocess.run([*cli, "daemon", "start"], env=env, capture_output=True,
                             text=True, timeout=180)
    assert started.returncode == 0, started.stderr
    try:
        yield place
    finally:
        stopped = subprocess.run([*cli, "daemon", "stop", "--timeout", "60"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr


def new_repo(tmp_path: Path, way: str) -> Path:
    repo = tmp_path / way
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t",
                    "commit", "-q", "--allow-empty", "-m", "start"], check=True)
    (tmp_path / "workflow.json").write_text(json.dumps(WORKFLOW), encoding="utf-8")
    return repo


def agent_loop(way: Way, workflow: Path) -> None:
    """Every verb the daemon serves to the CLI, as a user and an agent call them, with
    the refusals they meet."""
    unstarted = json.loads(way.say("run", "prepare", "--workflow", str(workflow),
                                   "--json").stdout)["run_id"]
    way.names[unstarted] = "RUN1"
    way.say("run", "status", unstarted)
    way.say("job", "claim", "--run", unstarted, "--owner", "me")
    way.say("run", "start", unstarted, "--json")
    way.say("run", "cancel", unstarted, "--reason", "not this one")
    run = way.say("run", "prepare", "--workflow", str(workflow), "--start").stdout.strip()
    way.names[run] = "RUN2"
    way.names[run[-6:]] = "TAIL2"  # after the whole id, which holds it
    for args in (("run", "status", run), ("run", "status", run, "--json"),
                 ("run", "waiting", run), ("run", "waiting", run, "--json"),
                 # names for a run, resolved by the daemon the routed way
                 ("run", "status", "latest"), ("run", "status", run[-6:], "--json"),
                 ("run", "status", "nosuch"), ("run", "status", "2099", "--json"),
                 ("--repo", ".", "run", "status", "latest", "--json"),
                 # command lines the fast path leaves to click: its messages, both ways
                 ("run", "status"), ("run", "status", run, "extra"),
                 ("run", "status", "--json=yes", run), ("run", "status", run, "-h"),
                 ("job", "claim", "--run", run, "--lease-seconds", "3"),
                 ("job", "claim", "--run", run, "--lease-seconds", "+3"),
                 ("job", "claim", "--run", run, "--lane", "a", "--lane", "b"),
                 ("job", "claim", "--run", run, "--bogus"),
                 ("job", "verdict", "maybe", "--reason", "r", "--run", run, "--job", "draft",
                  "--lease", "1-x"),
                 ("job", "verdict", "accept", "--run", run, "--job", "draft",
                  "--lease", "1-x"),
                 ("--repo", "../workflow.json", "run", "status", run),
                 ("--direct", "run", "status", run)):
        way.say(*args)
    claim = json.loads(way.say("job", "claim", "--run=latest", "--owner", "me",
                               "--json").stdout)
    way.names[claim["lease"]] = "LEASE1"
    way.say("job", "claim", "--run", run, "--owner", "me")  # nothing ready: exit 0
    way.say("job", "claim", "--run", run, "--lane", "nosuch", "--json")
    held = {"STRIATUM_RUN": run, "STRIATUM_JOB": "draft", "STRIATUM_LEASE": claim["lease"]}
    # The held verbs, as an operator outside a lane calls them (no STRIATUM_SOCKET).
    way.say("job", "heartbeat", "--lease-seconds", "600", env=held)
    way.say("job", "heartbeat", "--lease-seconds=600", "--json", env=held)
    way.say("job", "heartbeat", "--lease-seconds", "600", env={**held, "STRIATUM_RUN": ""})
    (way.repo / "notes.md").write_text("notes\n")
    way.say("job", "publish", "--artifact", "notes.md", "--json", env=held)
    way.say("job", "publish", "--artifact", "missing.md", env=held)
    way.say("job", "verdict", "accept", "--reason", "a task takes none", env=held)
    way.say("job", "verdict", "reject", "--reason", "r", "--finding", "F1", "--finding=F2",
            "--json", env=held)
    way.say("job", "fail", "--reason", "forged", env={**held, "STRIATUM_LEASE": "1-forged"})
    way.say("job", "complete", env=held)
    for args in (("run", "waiting", run), ("run", "waiting", run, "--json"),
                 ("run", "status", run), ("why", run), ("why", run, "--json"),
                 ("inbox", "--here"),
                 ("checkpoint", "decide", run, "decide", "maybe"),
                 ("checkpoint", "decide", run, "decide", "go", "--json"),
                 ("checkpoint", "decide", run, "decide", "go"),
                 ("run", "resume", run, "--decision", "accept"),
                 ("run", "retry", run, "--json"),
                 ("run", "events", run), ("run", "events", run, "--after", "3", "--json"),
                 ("run", "list"), ("run", "list", "--json", "--limit", "1"),
                 ("run", "status", "20991231-000000-abcdef"),
                 ("run", "status", "20991231-000000-abcdef", "--json"),
                 ("run", "events", "20991231-000000-abcdef"),
                 ("job", "claim", "--run", run, "--lease-seconds", "5", "--lane", "a\nb")):
        way.say(*args)
    shipped = way.say("job", "claim", "--run", run, "--owner", "me")
    way.names[re.search(r"lease: +(\S+)", shipped.stdout).group(1)] = "LEASE2"  # type: ignore[union-attr]
    way.say("run", "cancel", run, "--json")


def test_every_verb_says_the_same_both_ways(daemon: Path, tmp_path: Path) -> None:
    ways = {name: Way(name, new_repo(tmp_path, name)) for name in WAYS}
    for way in ways.values():
        agent_loop(way, tmp_path / "workflow.json")
    direct, routed = ways["direct"].heard(), ways["daemon"].heard()
    assert len(direct) == len(routed)
    for one, other in zip(direct, routed, strict=True):
        assert one == other
    codes = {said[0]: said[1] for said in direct}
    # done, usage, not found, conflict, a lease that is not the caller's
    assert set(codes.values()) == {0, 1, 3, 4, 5}, codes
    # The doctor's counts differ (the daemon audits its reads too); its verdict does not
    # (of the test run's whole database, which other modules' tests wrote to as well).
    verdicts = []
    for way in ways.values():
        found = way("doctor", "--no-anchors", "--json")
        text = way("doctor", "--no-anchors")
        assert "Traceback" not in found.stderr + text.stderr
        verdicts.append((found.returncode, json.loads(found.stdout)["ok"], text.returncode,
                         text.stdout.splitlines()[-1].split(" (")[0]))
    assert verdicts[0] == verdicts[1]
    assert verdicts[0][0] in (0, 2)


@pytest.mark.parametrize("way", WAYS)
def test_a_routed_verb_imports_no_psycopg(daemon: Path, tmp_path: Path, way: str) -> None:
    import sys

    runner = Way(way, new_repo(tmp_path, way))
    heavy = ("psycopg", "jsonschema", "networkx", "lark")
    for args in (("run", "list"), ("run", "status", "20991231-000000-abcdef"),
                 ("job", "claim", "--run", "20991231-000000-abcdef"), ("doctor",),
                 ("run", "status", "latest"), ("job", "claim", "--run", "latest"),
                 ("why", "20991231-000000-abcdef"), ("inbox",),
                 ("job", "heartbeat", "--run", "20991231-000000-abcdef", "--job", "draft",
                  "--lease", "1-forged")):
        done = runner(*args, python=[sys.executable, "-X", "importtime"])
        imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                    for line in done.stderr.splitlines() if line.startswith("import time:")}
        assert done.returncode in (0, 2, 3, 5), done.stderr[-2000:]  # doctor: 0 or 2
        if way == "daemon":
            assert not imported & set(heavy), (args, imported & set(heavy))
        else:
            assert "psycopg" in imported, args


def test_the_loop_verbs_routed_import_no_click(daemon: Path, tmp_path: Path) -> None:
    """job claim, job verdict and run status through the daemon, each as a whole process
    under ``-X importtime``: done, as the agent loop calls them, by the fast path."""
    import sys

    runner = Way("daemon", new_repo(tmp_path, "daemon"))
    review = tmp_path / "review.json"
    review.write_text(json.dumps({
        "name": "loop", "lanes": {"agent": {"kind": "operator"}},
        "jobs": [{"id": "check", "lane": "agent", "kind": "review",
                  "prompt": {"text": "Check it."}}]}), encoding="utf-8")
    run = runner("run", "prepare", "--workflow", str(review), "--start").stdout.strip()
    heavy = {"click", "psycopg", "jsonschema", "networkx", "lark"}

    def imports(*args: str, env: dict[str, str] | None = None) -> tuple[str, set[str]]:
        done = runner(*args, env=env, python=[sys.executable, "-X", "importtime"])
        assert done.returncode == 0, (args, done.stderr[-2000:])
        imported = {line.rsplit("|", 1)[-1].strip().split(".")[0]
                    for line in done.stderr.splitlines() if line.startswith("import time:")}
        return done.stdout, imported & heavy

    out, found = imports("job", "claim", "--run", run, "--json")
    assert not found
    lease = json.loads(out)["lease"]
    out, found = imports("job", "verdict", "accept", "--reason", "fine",
                         env={"STRIATUM_RUN": run, "STRIATUM_JOB": "check",
                              "STRIATUM_LEASE": lease})
    assert not found
    assert out == f"check: succeeded; run {run}: completed\n"
    for args in (("run", "status", run), ("run", "status", "latest", "--json")):
        out, found = imports(*args)
        assert not found, (args, found)
    assert json.loads(out)["status"] == "completed"


def test_the_daemon_says_which_database_it_serves(daemon: Path) -> None:
    digest = daemon / "dsn-sha256"
    assert stat.S_IMODE(digest.stat().st_mode) == 0o600
    assert digest.read_text().strip() == hashlib.sha256(b"").hexdigest()  # started with none


def test_a_dsn_other_than_the_daemons_goes_direct(daemon: Path, tmp_path: Path) -> None:
    """Given a DSN the daemon was not started with, the command opens that database
    itself: here one nobody serves, so it fails as a direct command does (exit 6)."""
    runner = Way("daemon", new_repo(tmp_path, "daemon"))
    done = runner("--dsn", "host=127.0.0.1 port=1 connect_timeout=1", "run", "list", "--json")
    assert done.returncode == 6, done.stderr
    assert json.loads(done.stderr)["error"] == "store_unavailable"
