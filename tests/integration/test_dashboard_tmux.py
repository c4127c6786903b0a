"""``striatum dashboard`` as a person sees it: the installed command in a detached tmux
session of 120x40, driven with send-keys and read with capture-pane, while striatum's
worker runs human-checkpoint on fake agents and the checkpoint is decided through the
CLI. Every wait polls the screen with a timeout."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import example
from .worker_helpers import STRIATUM, cli, copy_example, fake, git_init, spawned, wait_for

pytestmark = [
    pytest.mark.timeout(180),
    # .ci/run installs tmux, so this runs in CI; a machine without it cannot show a pane.
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

WIDTH, HEIGHT = 120, 40


@dataclass
class Pane:
    """One tmux server of this test's own (its socket in the test's folder, so nothing is
    left behind), holding one session."""

    socket: Path
    session: str = "dash"

    def tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True,
                              text=True, timeout=10)
        assert done.returncode == 0, f"tmux {' '.join(args)}: {done.stderr}"
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def shows(self, *words: str, line: bool = True, timeout: float = 60) -> str:
        """Wait until the screen shows every word (on one line, unless ``line`` is False);
        the screen that did."""
        def seen() -> str | None:
            screen = self.screen()
            rows = screen.splitlines() if line else [screen]
            return screen if any(all(w in row for w in words) for row in rows) else None

        return wait_for(seen, timeout, lambda: f"{words} on the screen:\n{self.screen()}",
                        interval=0.2)


@pytest.fixture
def pane(tmp_path: Path) -> Iterator[Pane]:
    opened = Pane(tmp_path / "tmux.sock")
    try:
        yield opened
    finally:
        subprocess.run(["tmux", "-S", str(opened.socket), "kill-server"],
                       capture_output=True, timeout=10)


def start(pane: Pane, dsn: str, repo: Path, *args: str, after: str = "") -> None:
    """``striatum dashboard ARGS`` in the pane; when it exits, its exit code and ``after``
    are printed, and the pane stays open to be read."""
    command = (f"env STRIATUM_DSN={shlex.quote(dsn)} {shlex.quote(STRIATUM)} --repo "
               f"{shlex.quote(str(repo))} dashboard {' '.join(args)}; "
               f"echo dashboard exited $?; {after} sleep 600")
    pane.tmux("new-session", "-d", "-s", pane.session, "-x", str(WIDTH), "-y", str(HEIGHT),
              command)


def test_a_person_watches_a_run_answers_its_checkpoint_and_quits(
        pane: Pane, dsn: str, repo: Path, tmp_path: Path) -> None:
    git_init(repo)
    older = cli(dsn, repo, "run", "prepare", "--workflow", example("minimal"))
    assert older.returncode == 0, older.stderr
    older_id = older.stdout.strip()
    workflow = copy_example("human-checkpoint", repo)
    lanes = json.loads(workflow.read_text(encoding="utf-8"))["lanes"]
    # Each job takes 4 s: time for a refresh under load to catch it leased.
    agent = json.dumps(fake("slow", "--seconds", "4"))
    prepared = cli(dsn, repo, "run", "prepare", "--workflow", str(workflow),
                   *[f"--lane={lane}={agent}" for lane in lanes])
    assert prepared.returncode == 0, prepared.stderr
    run_id = prepared.stdout.strip()

    start(pane, dsn, repo, "--interval", "0.5")
    # The newest run is selected; j and the down arrow move down, k and the up arrow up.
    pane.shows("▶", run_id, "prepared")
    pane.shows("jobs of", run_id)
    pane.keys("j")
    pane.shows("▶", older_id, "prepared")
    pane.shows("jobs of", older_id)
    pane.keys("Up")
    pane.shows("▶", run_id)
    pane.keys("Down")
    pane.shows("▶", older_id)
    pane.keys("k")
    pane.shows("jobs of", run_id)

    with spawned(tmp_path / "procs") as procs:
        worker = procs.striatum("run-start", dsn, repo, "run", "start", run_id, "--wait")
        pane.shows("analysis", "leased", "lane analyst", "lease ", "expires in")
        pane.shows("analysis", "succeeded")
        screen = pane.shows("decide", "awaiting_decision")
        assert "inbox (1)" in screen
        pane.shows("→ striatum checkpoint decide", run_id, "decide cancel|continue")

        decided = cli(dsn, repo, "checkpoint", "decide", run_id, "decide", "continue")
        assert decided.returncode == 0, decided.stderr
        screen = pane.shows("nothing waits for a human")
        assert "inbox (0)" in screen
        pane.shows("decide", "succeeded", "chose continue")
        pane.shows("▶", run_id, "completed")
        assert worker.wait(60) == 0, worker.err()
    screen = pane.shows("implement", "succeeded")
    assert all(len(row) <= WIDTH for row in screen.splitlines())

    pane.keys("q")
    pane.shows("dashboard exited 0")


def test_a_key_refreshes_at_once_and_quitting_gives_the_terminal_back(
        pane: Pane, dsn: str, repo: Path) -> None:
    prepared = cli(dsn, repo, "run", "prepare", "--workflow", example("minimal"))
    assert prepared.returncode == 0, prepared.stderr
    run_id = prepared.stdout.strip()
    # A minute between refreshes: only the key can show the change in time.
    start(pane, dsn, repo, "--interval", "60",
          after="stty -a | tr ' ;' '\\n\\n' | grep -x -- '-\\?icanon';")
    pane.shows("▶", run_id, "prepared")
    started = cli(dsn, repo, "run", "start", run_id)
    assert started.returncode == 0, started.stderr
    pane.keys("x")  # not a command: it only refreshes
    pane.shows("▶", run_id, "running", timeout=20)
    pane.shows("answer", "ready", timeout=5)
    pane.keys("q")
    screen = pane.shows("dashboard exited 0", timeout=20)
    # cbreak mode is undone: the shell's terminal reads lines again
    assert "icanon" in screen.split("dashboard exited 0", 1)[1].split(), screen
