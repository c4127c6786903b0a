"""``--notify CMD``: run a command whenever an item enters the inbox.

The item (the inbox's JSON document for it, one line) goes to the command's
standard input; the command runs through ``sh -c`` so that a pipeline or a
script with arguments works (``--notify 'notify-send striatum "$(jq -r .text)"'``).
Each item is told once for as long as it stays in the inbox: an item is known
by its kind, run, job and since (a checkpoint that waits again on a later pass,
or a lease that goes quiet again, is a new item). What is in the inbox when the
notifier starts is told at its first look: that is when it entered, for the
person the notifier speaks to.

A command runs in a thread of its own with a time limit, so a slow or hanging
one never holds up the worker or the daemon that runs it; its failure is said
on the caller's progress line and otherwise ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

NOTIFY_TIMEOUT = 30.0  # seconds a notification command may take
WATCH_SECONDS = 2.0  # how often a daemon or the web UI looks at the inbox


def _key(item: dict[str, Any]) -> tuple[str, str, str, str]:
    return (str(item["kind"]), str(item["run"]), str(item["job"]), str(item["since"]))


class Notifier:
    def __init__(self, command: str, say: Callable[[str], None] | None = None,
                 timeout: float = NOTIFY_TIMEOUT) -> None:
        self.command = command
        self.say = say or (lambda _: None)
        self.timeout = timeout
        self._told: set[tuple[str, str, str, str]] = set()
        self._running: list[threading.Thread] = []

    def check(self, store: Store) -> list[dict[str, Any]]:
        """Read the inbox; run the command for each item not told yet. Returns them."""
        from .inbox import inbox

        items = inbox(store)["items"]
        now = {_key(item) for item in items}
        self._told &= now  # an item that left and comes back is new again
        fresh = [item for item in items if _key(item) not in self._told]
        for item in fresh:
            self._told.add(_key(item))
            thread = threading.Thread(target=self._run, args=(item,), daemon=True,
                                      name="striatum-notify")
            thread.start()
            self._running.append(thread)
        self._running = [t for t in self._running if t.is_alive()]
        return fresh

    def wait(self, timeout: float | None = None) -> None:
        """Let the commands in progress finish (at stop): each has its time limit, and a
        few seconds more to be stopped and said."""
        for thread in self._running:
            thread.join((self.timeout if timeout is None else timeout) + 5)

    def _run(self, item: dict[str, Any]) -> None:
        what = f"{item['kind']} {item['run']} {item['job']}"
        try:
            # Its own process group: a timeout stops what the shell started too, which
            # would otherwise keep the pipes open after the shell is gone.
            child = subprocess.Popen(["sh", "-c", self.command], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        except OSError as exc:
            self.say(f"--notify for {what} could not run: {exc}")
            return
        try:
            out, err = child.communicate(json.dumps(item) + "\n", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            self.say(f"--notify for {what} took longer than {self.timeout:g} s; it was stopped")
            return
        if child.returncode != 0:
            tail = (err or out).strip().splitlines()[-1:] or [""]
            self.say(f"--notify for {what} exited {child.returncode}: {tail[0][:200]}")


def watch(notifier: Notifier, look: Callable[[Notifier], None], stop: threading.Event,
          every: float = WATCH_SECONDS) -> threading.Thread:
    """A thread that calls ``look(notifier)`` (a read of the inbox on a connection of
    the caller's) every ``every`` seconds until ``stop`` is set, for a process that has
    no loop of its own to look from (the daemon, the web UI). A look that fails (the
    database away) is said once per outage and tried again at the next turn."""

    def loop() -> None:
        failing = False
        while not stop.is_set():
            try:
                look(notifier)
                failing = False
            except Exception as exc:  # noqa: BLE001 - the watch outlives an outage
                if not failing:
                    notifier.say(f"--notify could not read the inbox: {exc}")
                failing = True
            stop.wait(every)
        notifier.wait()

    thread = threading.Thread(target=loop, name="striatum-notify-watch", daemon=True)
    thread.start()
    return thread
