"""A worker's connections: one per lane thread, the claim loop's, the heartbeat
thread's and the LISTEN thread's, each opened when first needed and again after
an outage. A connection costs ~3 ms and a server process, so each is kept for
the worker's life rather than opened per job.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import LeaseLost, StoreUnavailable, StriatumError
from . import leases
from .store import Store

if TYPE_CHECKING:
    from .leases import Claim

Progress = Callable[[str], None]


class LaneStores:
    """One connection per lane thread, opened with its first job and kept for the next
    ones (a connection costs ~3 ms and a server process); one that broke is dropped,
    and the thread's next job opens another."""

    def __init__(self, dsn: str, actor: str) -> None:
        self.dsn = dsn
        self.actor = actor
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Store] = []

    def store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = Store.connect(self.dsn, actor=self.actor)
            self._local.store = store
            with self._lock:
                self._open.append(store)
        return store

    def check(self) -> None:
        store: Store | None = getattr(self._local, "store", None)
        if store is not None and store.closed:
            self.drop()

    def drop(self) -> None:
        store: Store | None = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None:
            with self._lock:
                self._open = [kept for kept in self._open if kept is not store]
            close_quietly(store)

    def close(self) -> None:
        with self._lock:
            stores, self._open = self._open, []
        for store in stores:
            close_quietly(store)


@dataclass
class _Held:
    claim: Claim
    lost: threading.Event
    due: float
    on: bool = True


class Heartbeats:
    """Every lease the worker holds, kept alive from one thread on one connection of its
    own, opened with the first heartbeat (a lane that ends sooner never needs it) and
    again after an outage. A lease found lost sets its ``lost`` event: the lane stops."""

    def __init__(self, dsn: str, actor: str, lease_seconds: int, say: Progress) -> None:
        self.dsn = dsn
        self.actor = actor
        self.lease_seconds = lease_seconds
        self.interval = max(0.5, lease_seconds / 3)
        self._say = say
        self._held: dict[tuple[str, str, str], _Held] = {}
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._store: Store | None = None

    def hold(self, claim: Claim, lost: threading.Event) -> None:
        with self._lock:
            # A new lease is due last, so the thread, already waiting for an earlier one,
            # needs waking only when it holds none (it then waits without a timeout): not
            # waking it as every lane starts keeps it off the lane's critical path.
            idle = not self._held
            self._held[(claim.run, claim.job, claim.token)] = _Held(
                claim, lost, time.monotonic() + self.interval)
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="striatum-heartbeat")
                self._thread.start()
        if idle:
            self._changed.set()

    def cancelled(self, run_id: str) -> None:
        """The run's leases were cancelled (its run cancelled or failed): stop its lanes
        now, as a lost lease does, without waiting for the heartbeat to find out."""
        with self._lock:
            held = [h for h in self._held.values() if h.claim.run == run_id and h.on]
        for each in held:
            self._say(f"{each.claim.job}: run {run_id} was cancelled; stopping its lane")
            each.lost.set()
            self.release(each.claim)

    def release(self, claim: Claim) -> None:
        with self._lock:
            held = self._held.pop((claim.run, claim.job, claim.token), None)
            if held is not None:
                held.on = False

    def close(self) -> None:
        with self._lock:
            self._closing = True
            thread = self._thread
        self._changed.set()
        if thread is not None:
            thread.join(timeout=10)
        if self._store is not None:
            close_quietly(self._store)
            self._store = None

    def _loop(self) -> None:
        while True:
            with self._lock:
                if self._closing:
                    return
                now = time.monotonic()
                due = [held for held in self._held.values() if held.due <= now]
                following = min((held.due for held in self._held.values()), default=None)
            for held in due:
                self._beat(held)
            if not due:
                self._changed.wait(None if following is None else max(0.0, following - now))
                self._changed.clear()

    def _beat(self, held: _Held) -> None:
        if not held.on:
            return  # its lane ended while this turn gathered it: nothing to keep alive
        claim = held.claim
        held.due = time.monotonic() + self.interval
        try:
            if self._store is None:
                self._store = Store.connect(self.dsn, actor=self.actor)
            leases.heartbeat(self._store, claim.run, claim.job, claim.token,
                             self.lease_seconds)
        except LeaseLost:
            if held.on:
                self._say(f"{claim.job}: lease lost; stopping its lane")
            held.lost.set()
            self.release(claim)
        except StoreUnavailable:
            # The server is away: beat again at the next turn on a new connection. A lease
            # that lapses meanwhile is fenced, so this is never unsafe.
            if self._store is not None:
                close_quietly(self._store)
                self._store = None
        except StriatumError:
            self.release(claim)  # the job is gone or the lease unreadable: fencing decides


def close_quietly(store: Store) -> None:
    with contextlib.suppress(StriatumError):  # already broken: nothing to release
        store.close()


class Link:
    """The claim loop's connection, opened again after an outage."""

    def __init__(self, dsn: str, actor: str) -> None:
        self.dsn = dsn
        self.actor = actor
        self._store: Store | None = None

    def open(self) -> None:
        if self._store is None:
            self._store = Store.connect(self.dsn, actor=self.actor)

    def store(self) -> Store:
        self.open()
        assert self._store is not None
        return self._store

    def close(self) -> None:
        if self._store is not None:
            close_quietly(self._store)
        self._store = None


class Wakeup:
    """What ends the claim loop's wait: a NOTIFY that a job is ready, heard by a thread
    on its own LISTEN connection; a lane ending (its slot is free); or the poll's
    timeout. Waiting on one event, not on the LISTEN socket, is what lets a worker
    running several lanes refill a slot the moment it frees."""

    LISTEN_TURN = 0.5  # how often the listening thread looks at its stop flag

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        # Called (on the listening thread) with the id of a run whose leases were
        # cancelled: the worker stops that run's lanes.
        self.on_cancel: Callable[[str], None] | None = None
        self._event = threading.Event()
        self._listening = threading.Event()
        # Each LISTEN thread has its own: one that outlives close() (stuck connecting)
        # is never released again by the next start().
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._halt = threading.Event()
        self._listening.clear()
        self._thread = threading.Thread(target=self._listen, args=(self._halt,),
                                        name="striatum-listen", daemon=True)
        self._thread.start()
        # Claims start once LISTEN is on (or failed: polling covers it meanwhile).
        self._listening.wait(10)

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, seconds: float) -> None:
        self._event.wait(seconds)

    def close(self) -> None:
        self._halt.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * self.LISTEN_TURN + 1)

    def _listen(self, halt: threading.Event) -> None:
        import psycopg

        from ..errors import StoreError
        from .sql import query
        from .store import open_connection

        failures = 0
        while not halt.is_set():
            try:
                with open_connection(self.dsn) as conn:
                    conn.execute(query("listen_ready"))
                    conn.execute(query("listen_cancel"))
                    failures = 0
                    self._listening.set()
                    self._event.set()  # what became ready while nobody listened
                    while not halt.is_set():
                        for note in conn.notifies(timeout=self.LISTEN_TURN):
                            if note.channel == "striatum_cancel":
                                if self.on_cancel is not None:
                                    self.on_cancel(note.payload)
                            else:
                                self._event.set()
            except (psycopg.Error, StoreError, StoreUnavailable, OSError):
                # The database went away: reconnect with backoff; polling covers the gap.
                failures += 1
                self._listening.set()
                self._event.set()
                halt.wait(min(5.0, 0.2 * 2 ** min(failures, 5)))
