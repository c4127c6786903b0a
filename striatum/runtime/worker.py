"""The worker: claim ready jobs whose lane is a command, run them, finish them.

Workers in any number of processes, on any number of machines, share runs
through PostgreSQL alone: claims are ``FOR UPDATE SKIP LOCKED``, a job
becoming ready sends a NOTIFY that wakes idle workers at once (a poll every
``poll_seconds`` is the fallback), and a lane that ends wakes its worker to
fill the slot; leases are kept alive by one heartbeat thread, and any worker
sweeps leases whose heartbeat stopped. A worker finishes a job through the
same transition code as the agent-facing verbs, with the lease's fencing
token, so a worker that lost its lease (paused, partitioned) has every late
write refused.

This module is the claim loop; ``attempt.py`` runs one attempt on a lane
thread, ``connections.py`` holds the connections and the heartbeats,
``worktrees.py`` the git worktrees, ``guardian.py`` supervises the lanes.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import NotFound, StoreUnavailable, StriatumError
from ..server.lanegate import LaneGate
from . import budgets, leases, runs
from .attempt import Attempts, Outcome, describe
from .audit import default_actor
from .connections import Heartbeats, LaneStores, Link, Progress, Wakeup
from .lanes import DEFAULT_LOG_CAP, start_guardian
from .leases import Claim, Unprepared
from .machine import RUN_TERMINAL
from .manifest import backfill as backfill_manifests
from .notify import Notifier
from .records import RunRow
from .starts import known_starts

if TYPE_CHECKING:
    from ..compiler.ir import Lane

__all__ = ["Outcome", "Worker", "WorkerOptions", "identity"]


def identity() -> str:
    """host + pid + a boot nonce: unique even when a pid is reused after a restart."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class WorkerOptions:
    run: str | None = None
    lanes: list[str] | None = None
    concurrency: int = 1
    once: bool = False
    until_run_ends: bool = False
    # With until_run_ends: also stop once only a human can move the run on (a checkpoint
    # waits, or the run is blocked), for an operator that must hand over.
    until_human: bool = False
    lease_seconds: int = 60
    poll_seconds: float = 1.0
    log_cap: int = DEFAULT_LOG_CAP
    progress: Progress | None = None
    # A command run with each new inbox item on stdin (``runtime.notify``), looked for
    # with each sweep.
    notify: str | None = None
    sandbox: bool = False  # run every lane under bwrap, as if each said sandbox: true


@dataclass
class Worker:
    dsn: str
    options: WorkerOptions = field(default_factory=WorkerOptions)
    name: str = field(default_factory=identity)
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _told: set[tuple[str, int]] = field(default_factory=set)  # (job, pass) announced
    _announced_at: float = field(default=float("-inf"), repr=False, compare=False)
    _run_known: bool = field(default=False, repr=False, compare=False)
    # The run's workflow and repository once a claim has said them (a worker of one run).
    _lanes_of: tuple[dict[str, Lane], Path] | None = field(default=None, repr=False,
                                                            compare=False)
    _wake: Wakeup = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._wake = Wakeup(self.dsn)

    @property
    def actor(self) -> str:
        """Who the worker's audit rows name: the user, and this worker."""
        return f"{default_actor()} worker {self.name}"

    def request_stop(self) -> None:
        """Finish the jobs in hand and claim no more. Not from a signal handler: it takes
        locks the interrupted thread may hold (``stop_on_signal`` is for that)."""
        self.stop.set()
        self._wake.set()

    def stop_on_signal(self) -> None:
        """``request_stop`` for a signal handler: done by a short-lived thread, since the
        handler runs on the main thread, which may be inside the wake-up's lock."""
        threading.Thread(target=self.request_stop, name="striatum-stop", daemon=True).start()

    def _say(self, text: str) -> None:
        if self.options.progress is not None:
            self.options.progress(text)

    def run(self) -> list[Outcome]:
        # Its lanes reach striatum through this socket alone, for as long as the worker runs.
        gate = LaneGate(self.dsn, connections=min(4, max(2, self.options.concurrency))).open()
        try:
            return self._run(gate)
        finally:
            gate.close()

    def _run(self, gate: LaneGate) -> list[Outcome]:
        options = self.options
        actor = self.actor
        pool = ThreadPoolExecutor(max_workers=options.concurrency,
                                  thread_name_prefix="striatum-lane")
        running: dict[Future[Outcome], Claim] = {}
        link = Link(self.dsn, actor)
        attempts = Attempts(LaneStores(self.dsn, actor),
                            Heartbeats(self.dsn, actor, options.lease_seconds, self._say),
                            options.log_cap, self._say, str(gate.socket), gate.leases,
                            sandbox=options.sandbox)
        self._wake.on_cancel = attempts.beats.cancelled
        last_sweep = 0.0
        outage = 0
        notifier = Notifier(options.notify, self._say) if options.notify else None
        try:
            start_guardian()
        except OSError as exc:  # each lane tries again, and fails with the reason in its log
            self._say(f"could not start the lane guardian: {exc}")
        try:
            self._wake.start()
            while not self.stop.is_set():
                # Cleared before the finished lanes are counted and the slots refilled:
                # a wake-up that comes after this ends the wait below at once.
                self._wake.clear()
                for future in [f for f in running if f.done()]:
                    self._collect(future, running.pop(future))
                try:
                    link.open()
                    if time.monotonic() - last_sweep > max(1.0, options.lease_seconds / 3):
                        self._present(link)
                        leases.sweep_expired(link.store(), options.run)
                        budgets.sweep(link.store(), options.run)
                        if notifier is not None:
                            notifier.check(link.store())
                        # A worker killed between ending a run and writing its manifest.
                        backfill_manifests(link.store(), options.run)
                        last_sweep = time.monotonic()
                    self._claim_into(link, attempts, pool, running)
                    outage = 0
                except StoreUnavailable as exc:
                    # The database went away (restart, network): keep the jobs in hand,
                    # reconnect with backoff; leases that lapse meanwhile are fenced.
                    outage += 1
                    self._say(f"database unreachable ({exc.message}); retrying")
                    link.close()
                    self.stop.wait(min(5.0, 0.2 * 2 ** min(outage, 5)))
                    continue
                except NotFound:
                    raise  # the run it was told to work does not exist
                except Exception as exc:  # noqa: BLE001 - one bad turn must not end the worker
                    # A sweep or a claim refused (a contended database, a manifest that
                    # cannot be written): say so, wait as for an outage, and go on.
                    outage += 1
                    self._say(f"a claim turn failed ({describe(exc)}); trying again")
                    self.stop.wait(min(5.0, 0.2 * 2 ** min(outage, 5)))
                    continue
                if self._finished(link, running):
                    break
                if not running and self.options.run:
                    self._announce_waiting(link)
                # A job made ready (NOTIFY), a lane ending, or the poll's timeout.
                self._wake.wait(options.poll_seconds)
        finally:
            for future, claim in running.items():
                self._collect(future, claim)
            pool.shutdown(wait=True)
            self._absent(link)
            if notifier is not None:
                notifier.wait()
            self._wake.close()
            attempts.beats.close()
            attempts.stores.close()
            link.close()
        return self.outcomes

    def _present(self, link: Link) -> None:
        """Say that this worker is alive and what it serves (``why`` and the inbox tell a
        ready job a worker will take from one nobody serves), for three sweeps' time."""
        link.store().execute("worker_seen", {
            "name": self.name, "actor": self.actor, "run": self.options.run,
            "lanes": self.options.lanes, "seconds": max(3, self.options.lease_seconds)})

    def _absent(self, link: Link) -> None:
        try:
            link.open()
            link.store().execute("worker_gone", {"name": self.name})
        except StriatumError:
            pass  # the database is away: the row expires by itself

    def _collect(self, future: Future[Outcome], claim: Claim) -> None:
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - one job's trouble must not stop the worker
            outcome = Outcome(claim.run, claim.job, "error", f"{type(exc).__name__}: {exc}")
            self._say(outcome.line())
        self.outcomes.append(outcome)

    def _claim_into(self, link: Link, attempts: Attempts, pool: ThreadPoolExecutor,
                    running: dict[Future[Outcome], Claim]) -> None:
        options = self.options
        while len(running) < options.concurrency and not self._enough():
            # Whether the run exists is asked once: after that an empty claim costs one
            # round trip, which matters when every idle worker wakes for the same job.
            taken = leases.take(link.store(), options.run, owner=self.name,
                                lanes=options.lanes, lane_kinds=["command"],
                                lease_seconds=options.lease_seconds,
                                check_run=not self._run_known,
                                starts=self._known_starts())
            self._run_known = True
            if taken is None:
                return
            if isinstance(taken, Unprepared):
                outcome = Outcome(taken.run, taken.job, taken.status, taken.reason)
                self.outcomes.append(outcome)
                self._say(outcome.line())
                if not taken.final:
                    return  # claiming again now would take the same job into the same trouble
                continue
            if self._lanes_of is None and taken.run == options.run:
                self._lanes_of = (taken.pinned.lanes, Path(taken.run_row.repo_path))
            self._start(taken, attempts, pool, running)

    def _known_starts(self) -> dict[str, str] | None:
        """The start data the claim can chain itself (``starts.known_starts``): for a
        worker of one run, once a claim has told it the run's lanes."""
        if self._lanes_of is None:
            return None
        return known_starts(*self._lanes_of)

    def _start(self, claim: Claim, attempts: Attempts, pool: ThreadPoolExecutor,
               running: dict[Future[Outcome], Claim]) -> None:
        # Its line waits for those of the attempts ending now: the one that released it may
        # be among them.
        future = pool.submit(attempts.run, claim, attempts.told.out())
        # Once the future is done (not before: the loop counts slots by done futures).
        future.add_done_callback(lambda _: self._wake.set())
        running[future] = claim

    def _announce_waiting(self, link: Link) -> None:
        """Say once which jobs of the run wait for a human, and the command that answers
        each. Asked at most once a poll: every idle worker wakes for every job made ready,
        and a human reading the line does not need it sooner."""
        if time.monotonic() - self._announced_at < self.options.poll_seconds:
            return
        assert self.options.run is not None
        try:
            found = runs.waiting(link.store(), self.options.run)
        except StoreUnavailable:
            return
        self._announced_at = time.monotonic()
        self._tell(found)

    def _tell(self, found: list[runs.Waiting]) -> None:
        for each in found:
            # An escalated review that waits again after a human granted a pass is new.
            if (each.job, each.iteration) not in self._told:
                self._told.add((each.job, each.iteration))
                what = {"checkpoint": "a decision",
                        "review": "a human: its revision budget is spent"}.get(
                            each.kind, "a human: its agent escalated it")
                self._say(f"{each.job}: waiting for {what}: {each.command}")

    def _enough(self) -> bool:
        return self.options.once and bool(self.outcomes)

    def _finished(self, link: Link, running: dict[Future[Outcome], Claim]) -> bool:
        if running:
            return False
        if self._enough():
            return True
        if self.options.until_run_ends and self.options.run:
            try:
                run = link.store().read(RunRow, "run_record", {"run": self.options.run})
            except StoreUnavailable:
                return False
            # blocked: only a human can move it on (`run resume`), so stop waiting.
            if run is None or run.status in (*RUN_TERMINAL, "blocked"):
                return True
            if self.options.until_human:
                try:
                    # Nothing is running here: what else is ready is no command lane's.
                    found = runs.waiting(link.store(), self.options.run)
                    self._tell(found)  # the hand-over says what waits, once
                    return bool(found)
                except StoreUnavailable:
                    return False
        return False
