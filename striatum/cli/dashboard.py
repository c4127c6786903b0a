"""``striatum dashboard``: a live terminal view of the runs, the selected run's jobs by
wave, what holds it, and the inbox.

Every refresh reads through registry verbs (``run.list``, ``run.status``,
``run.plan``, ``run.why``, ``inbox``) by ``verbs.call``, as any other face
would; what is drawn comes from their documents alone (``dashboard_view``).
On a terminal it redraws in place and takes keys; anywhere else it prints
plain text: one snapshot with ``--once``, else one each time the state changes.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from ..errors import EXIT_OK, StriatumError, UsageError
from .output import emit_json, json_option
from .refs import RUN, ResolvingCommand
from .verbs import call

if TYPE_CHECKING:
    from ..dashboard_view import Snapshot


@click.command(cls=ResolvingCommand)
@click.option("--run", "run_id", type=RUN, default=None,
              help="The run to show first (default: the newest).")
@click.option("--all", "all_repos", is_flag=True, help="Runs of every repository.")
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, show_default=True,
              help="Seconds between refreshes.")
@json_option
def dashboard(run_id: str | None, all_repos: bool, once: bool, interval: float,
              as_json: bool) -> int:
    """Watch the runs, the selected run's jobs by wave, what holds it, and the inbox.

    \b
    On a terminal: a live view, redrawn every --interval seconds and at once on a key:
      up/down or j/k select a run, q quits.
    Not on a terminal: plain text (no colour, no cursor movement), one snapshot each
    time a run, a job or the inbox changes. --once prints one snapshot and exits;
    with --json, the snapshot's documents."""
    if as_json and not once:
        raise UsageError("--json prints one snapshot: it needs --once",
                         hint="striatum dashboard --once --json")
    board = Board(run_id, all_repos)
    if once:
        snapshot = board.fetch()
        if as_json:
            emit_json(snapshot)
        else:
            _print(snapshot)
        return EXIT_OK
    if sys.stdout.isatty():
        return _live(board, interval)
    return _changes(board, interval)


@dataclass
class Board:
    """What the dashboard shows next: the selected run, and the plans it has read (a
    run's plan is pinned with its workflow, so it is read once)."""

    selected: str | None
    all_repos: bool
    plans: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: list[str] = field(default_factory=list)

    def fetch(self) -> Snapshot:
        listed = call("run.list", {"all": self.all_repos})["runs"]
        self.runs = [run["run"] for run in listed]
        if self.selected is None and self.runs:
            self.selected = self.runs[0]
        snapshot: Snapshot = {"runs": listed, "selected": self.selected, "run": None,
                              "plan": None, "why": None}
        if self.selected is not None:
            params = {"run": self.selected}
            snapshot["run"] = call("run.status", params)
            if self.selected not in self.plans:
                self.plans[self.selected] = call("run.plan", params)
            snapshot["plan"] = self.plans[self.selected]
            snapshot["why"] = call("run.why", params)
        snapshot["inbox"] = call("inbox", {"here": False})
        return snapshot

    def move(self, step: int) -> None:
        if not self.runs:
            return
        at = self.runs.index(self.selected) if self.selected in self.runs else -step
        self.selected = self.runs[max(0, min(len(self.runs) - 1, at + step))]


def _width() -> int:
    # Not on a terminal there is no width to ask: COLUMNS, else a width that keeps a
    # run's line (id, state, workflow, executions, repository) on one line.
    import shutil

    return shutil.get_terminal_size((120, 40)).columns


def _print(snapshot: Snapshot) -> None:
    from ..dashboard_view import plain, view

    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(view(snapshot))
    else:
        click.echo(plain(snapshot, _width()), nl=False)


def _changes(board: Board, interval: float) -> int:
    """Not on a terminal: a snapshot each time its state changes, until interrupted."""
    from ..dashboard_view import fingerprint, plain

    seen = None
    try:
        while True:
            snapshot = board.fetch()
            now = fingerprint(snapshot)
            if now != seen:
                if seen is not None:
                    click.echo()
                click.echo(f"at {snapshot['inbox']['at']}")
                click.echo(plain(snapshot, _width()), nl=False)
                sys.stdout.flush()
                seen = now
            time.sleep(interval)
    except KeyboardInterrupt:
        return EXIT_OK


def _live(board: Board, interval: float) -> int:
    from rich.console import Console
    from rich.live import Live

    from ..dashboard_view import KEYS, view

    snapshot = board.fetch()  # a run that is not there is an error before the screen opens
    trouble = ""
    console = Console()
    with _keys() as read, Live(console=console, screen=True, auto_refresh=False) as live:
        try:
            while True:
                # The terminal's size as it is now (it may have been resized), not a
                # COLUMNS or LINES inherited from whoever started the process.
                console.size = os.get_terminal_size(sys.stdout.fileno())
                footer = f"{KEYS} · every {interval:g} s · {snapshot['inbox']['at'][11:19]}"
                # A window of runs, so that the jobs, why and the inbox stay in sight.
                live.update(view(snapshot, footer + trouble, RUN_ROWS), refresh=True)
                for key in read(interval):
                    if key == "q":
                        return EXIT_OK
                    board.move(1 if key == "down" else -1)
                try:
                    snapshot, trouble = board.fetch(), ""
                except StriatumError as exc:  # keep the last view; say why it is old
                    trouble = f" · could not refresh: {exc.message}"
        except KeyboardInterrupt:
            return EXIT_OK


@contextmanager
def _keys() -> Iterator[Callable[[float], list[str]]]:
    """A reader of the keys pressed within a timeout (none when stdin is no terminal):
    the terminal in cbreak mode (keys arrive unbuffered, Ctrl-C still interrupts),
    restored on the way out."""
    if not sys.stdin.isatty():
        def wait(timeout: float) -> list[str]:
            time.sleep(timeout)
            return []

        yield wait
        return
    import select
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(timeout: float) -> list[str]:
        ready, _, _ = select.select([fd], [], [], timeout)
        return _parse(os.read(fd, 64)) if ready else []

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


RUN_ROWS = 8
ARROWS = {b"\x1b[A": "up", b"\x1bOA": "up", b"\x1b[B": "down", b"\x1bOB": "down"}
LETTERS = {ord("k"): "up", ord("j"): "down", ord("q"): "q", ord("Q"): "q"}


def _parse(data: bytes) -> list[str]:
    """The keys in what one read returned (several when typed fast); others ignored."""
    keys, at = [], 0
    while at < len(data):
        arrow = ARROWS.get(data[at:at + 3])
        if arrow is not None:
            keys.append(arrow)
            at += 3
            continue
        if data[at] in LETTERS:
            keys.append(LETTERS[data[at]])
        at += 1
    return keys
