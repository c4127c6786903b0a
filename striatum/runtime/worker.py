"""The worker: claim ready jobs whose lane is a command, run them, finish them.

Workers in any number of processes, on any number of machines, share runs
through PostgreSQL alone: claims are ``FOR UPDATE SKIP LOCKED``, a job
becoming ready sends a NOTIFY that wakes idle workers at once (a poll every
``poll_seconds`` is the fallback), and a lane that ends wakes its worker to
fill the slot; leases are kept alive by one heartbeat thread, and any worker
sweeps leases whose heartbeat stopped. Connections are opened once and kept:
the claim loop's, the LISTEN thread's, one per lane thread and the heartbeat
thread's, each opened again after an outage. A worker
finishes a job through the same transition code as the agent-facing verbs,
with the lease's fencing token, so a worker that lost its lease (paused,
partitioned) has every late write refused.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..errors import StriatumError
from . import changes, leases
from .lanes import (
    DEFAULT_LOG_CAP,
    DEFAULT_TIMEOUT,
    fill,
    lane_environment,
    run_lane,
    start_guardian,
)
from .leases import Claim, LeaseLost
from .manifest import backfill as backfill_manifests
from .records import JobRow, RunRow
from .store import Store, StoreUnavailable

Progress = Callable[[str], None]
T = TypeVar("T")
VERDICT_FILE = "verdict.json"


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
    lease_seconds: int = 60
    poll_seconds: float = 1.0
    log_cap: int = DEFAULT_LOG_CAP
    progress: Progress | None = None


@dataclass
class Outcome:
    run: str
    job: str
    status: str
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Worker:
    dsn: str
    options: WorkerOptions = field(default_factory=WorkerOptions)
    name: str = field(default_factory=identity)
    outcomes: list[Outcome] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    _told: set[str] = field(default_factory=set)  # checkpoints already announced
    _announced_at: float = field(default=float("-inf"), repr=False, compare=False)
    _run_known: bool = field(default=False, repr=False, compare=False)
    _slots: _Slots = field(init=False, repr=False, compare=False)
    _beats: _Heartbeats = field(init=False, repr=False, compare=False)
    _wake: _Wakeup = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._wake = _Wakeup(self.dsn)

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
        options = self.options
        pool = ThreadPoolExecutor(max_workers=options.concurrency,
                                  thread_name_prefix="striatum-lane")
        running: set[Future[Outcome]] = set()
        links = _Links(self.dsn)
        self._slots = _Slots(self.dsn)
        self._beats = _Heartbeats(self.dsn, options.lease_seconds, self._say)
        last_sweep = 0.0
        outage = 0
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
                    running.discard(future)
                    self._record(future)
                try:
                    links.open()
                    if time.monotonic() - last_sweep > max(1.0, options.lease_seconds / 3):
                        leases.sweep_expired(links.store(), options.run)
                        # A worker killed between ending a run and writing its manifest.
                        backfill_manifests(links.store(), options.run)
                        last_sweep = time.monotonic()
                    self._claim_into(links.store(), pool, running)
                    outage = 0
                except StoreUnavailable as exc:
                    # The database went away (restart, network): keep the jobs in hand,
                    # reconnect with backoff; leases that lapse meanwhile are fenced.
                    outage += 1
                    self._say(f"database unreachable ({exc.message}); retrying")
                    links.close()
                    self.stop.wait(min(5.0, 0.2 * 2 ** min(outage, 5)))
                    continue
                if self._finished(links, running):
                    break
                if not running and self.options.run:
                    self._announce_decisions(links)
                # A job made ready (NOTIFY), a lane ending, or the poll's timeout.
                self._wake.wait(options.poll_seconds)
        finally:
            for future in running:
                self._record(future)
            pool.shutdown(wait=True)
            self._wake.close()
            self._beats.close()
            self._slots.close()
            links.close()
        return self.outcomes

    def _claim_into(self, store: Store, pool: ThreadPoolExecutor,
                    running: set[Future[Outcome]]) -> None:
        options = self.options
        while len(running) < options.concurrency and not self._enough():
            # Whether the run exists is asked once: after that an empty claim costs one
            # round trip, which matters when every idle worker wakes for the same job.
            claimed = leases.claim(store, options.run, owner=self.name, lanes=options.lanes,
                                   lane_kinds=["command"], lease_seconds=options.lease_seconds,
                                   sweep=False, check_run=not self._run_known)
            self._run_known = True
            if claimed is None:
                return
            self._say(f"{claimed.job}: started (run {claimed.run}, pass "
                      f"{claimed.iteration + 1}, attempt {claimed.attempt + 1})")
            future = pool.submit(self.execute, claimed)
            # Once the future is done (not before: the loop counts slots by done futures).
            future.add_done_callback(lambda _: self._wake.set())
            running.add(future)

    def _announce_decisions(self, links: _Links) -> None:
        """Say once which checkpoints wait for a human, and how to answer them. Asked at
        most once a poll: every idle worker wakes for every job made ready, and a human
        reading the line does not need it sooner."""
        if time.monotonic() - self._announced_at < self.options.poll_seconds:
            return
        run = self.options.run
        try:
            rows = links.store().execute("awaiting_decision", {"run": run})
        except StoreUnavailable:
            return
        self._announced_at = time.monotonic()
        for (job_id,) in rows:
            if job_id not in self._told:
                self._told.add(job_id)
                self._say(f"{job_id}: waiting for a decision: "
                          f"striatum checkpoint decide {run} {job_id} CHOICE")

    def _record(self, future: Future[Outcome]) -> None:
        try:
            outcome = future.result()
        except Exception as exc:  # a bug in one job must not stop the worker
            outcome = Outcome("?", "?", "error", f"{type(exc).__name__}: {exc}")
        self.outcomes.append(outcome)
        extra = f" ({outcome.detail})" if outcome.detail else ""
        self._say(f"{outcome.job}: {outcome.status} in {outcome.seconds:.1f}s{extra}")

    def _enough(self) -> bool:
        return self.options.once and bool(self.outcomes)

    def _finished(self, links: _Links, running: set[Future[Outcome]]) -> bool:
        if running:
            return False
        if self._enough():
            return True
        if self.options.until_run_ends and self.options.run:
            try:
                status = links.store().execute("get_run", {"run": self.options.run})
            except StoreUnavailable:
                return False
            # blocked: only a human can move it on (`run resume`), so stop waiting.
            return not status or status[0][4] in ("completed", "failed", "cancelled",
                                                  "blocked")
        return False

    # -- one job ---------------------------------------------------------------------------

    def execute(self, claim: Claim) -> Outcome:
        started = time.monotonic()
        try:
            status, detail = self._execute(claim)
        except LeaseLost as exc:
            status, detail = "lease lost", exc.message
        except StriatumError as exc:
            status, detail = "error", exc.message
            self._slots.check()
            try:
                leases.fail(self._slots.store(), claim.run, claim.job, claim.token,
                            f"the worker could not finish it: {exc.message}")
            except StriatumError:
                pass  # the lease expires instead; fencing keeps that safe
        finally:
            self._slots.check()
        return Outcome(claim.run, claim.job, status, detail, time.monotonic() - started)

    def _read(self, read: Callable[[Store], T]) -> T:
        """A read on this lane thread's connection, tried once more on a new one if the
        kept connection turns out dead: it may have died while idle or while the lane ran
        (a server restart), and a read changes nothing, so trying again is safe."""
        try:
            return read(self._slots.store())
        except StoreUnavailable:
            self._slots.drop()
            return read(self._slots.store())

    def _execute(self, claim: Claim) -> tuple[str, str]:
        run, job, lane = claim.run_row, claim.spec, claim.lane_spec  # read by the claim
        out = Path(claim.artifact_dir)
        out.mkdir(parents=True, exist_ok=True)
        repo = Path(run.repo_path)
        workdir, worktree = repo, None
        if job["isolation"] == "worktree":
            worktree = _add_worktree(repo, run, Path(claim.prompt_file).parent)
            workdir = worktree
        watch = bool(job["writes"]) and worktree is None and changes.is_git_repo(repo)
        before = changes.baseline(repo, Path(claim.prompt_file).parent.parent,
                                  claim.iteration) if watch else {}
        values = {"prompt_file": claim.prompt_file, "artifact_dir": str(out), "job": claim.job,
                  "run": claim.run}
        argv = [fill(part, values) for part in lane["command"]]
        stdin = Path(fill(lane["stdin"], values)) if lane.get("stdin") else None
        env = lane_environment(lane.get("env") or {}, {
            **_job_env(claim, run), "STRIATUM_KIND": claim.kind,
            "STRIATUM_CAN_REVISE": "1" if job["revise"] else "0"})
        lost = threading.Event()
        self._beats.hold(claim, lost)
        log = Path(claim.prompt_file).parent / "lane.log"
        try:
            result = run_lane(argv, cwd=workdir, env=env, stdin=stdin,
                              timeout=lane.get("timeout") or DEFAULT_TIMEOUT, log_path=log,
                              log_cap=self.options.log_cap, tag=claim.token, abandon=lost)
        finally:
            self._beats.release(claim)
        token = (claim.run, claim.job, claim.token)
        if not self._read(lambda store: _still_mine(store, claim)):
            if worktree is not None:
                _remove_worktree(repo, worktree)
            return "done by the agent", "it finished the job through the CLI, or lost the lease"
        store = self._slots.store()
        # What the attempt leaves is published by the transition that ends it, in the
        # same transaction: one commit per job instead of one per file.
        files = [leases.stage(str(log), f"logs/{claim.job}.log")] if log.is_file() else []
        if worktree is not None:
            diff = _worktree_diff(worktree, run.base_commit, Path(claim.prompt_file).parent)
            files.append(leases.stage(str(diff), f"changes/{claim.job}.diff"))
            touched = _diff_paths(worktree, run.base_commit)
            _remove_worktree(repo, worktree)
        else:
            touched = changes.changed(before, changes.snapshot(repo),
                                      (".striatum", run.artifact_root)) if watch else []
        if not result.ok:
            if result.timed_out:
                reason = f"timed out after {lane.get('timeout') or DEFAULT_TIMEOUT}s"
            elif result.exit_code is None:
                reason = "its supervisor (the worker's lane guardian) died; it was killed"
            else:
                reason = f"exited with code {result.exit_code}"
            leases.fail(store, *token, reason + f"; see logs/{claim.job}.log", files=files)
            return "failed", reason
        files += [leases.stage(str(out / name), name) for name in claim.produces
                  if (out / name).is_file()]
        stray = changes.outside(touched, job["writes"]) if job["writes"] else []
        if stray:
            reason = "changed files outside its writes globs: " + ", ".join(stray[:20])
            leases.fail(store, *token, reason, files=files)
            return "failed", reason
        if claim.kind == "review":
            return self._review(store, claim, out, files)
        try:
            leases.complete(store, *token, files=files)
        except StriatumError as exc:
            if isinstance(exc, LeaseLost):
                raise
            leases.fail(store, *token, exc.message, files=files)
            return "failed", exc.message
        return "succeeded", ""

    def _review(self, store: Store, claim: Claim, out: Path, files: list[leases.Staged]
                ) -> tuple[str, str]:
        token = (claim.run, claim.job, claim.token)
        verdict = _read_verdict(out / VERDICT_FILE)
        if verdict is None:
            reason = ("the review recorded no verdict: run `striatum job verdict ...` or "
                      f"leave {VERDICT_FILE} in the artifact dir")
            leases.fail(store, *token, reason, files=files)
            return "failed", reason
        outcome, why = verdict
        try:
            leases.verdict(store, *token, outcome, why, files=files)
        except StriatumError as exc:
            if isinstance(exc, LeaseLost):
                raise
            leases.fail(store, *token, exc.message, files=files)
            return "failed", exc.message
        return outcome, why


class _Slots:
    """One connection per lane thread, opened with its first job and kept for the next
    ones (a connection costs ~3 ms and a server process); one that broke is dropped,
    and the thread's next job opens another."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[Store] = []

    def store(self) -> Store:
        store: Store | None = getattr(self._local, "store", None)
        if store is None:
            store = Store.connect(self.dsn)
            self._local.store = store
            with self._lock:
                self._open.append(store)
        return store

    def check(self) -> None:
        store: Store | None = getattr(self._local, "store", None)
        if store is not None and store.conn.closed:
            self.drop()

    def drop(self) -> None:
        store: Store | None = getattr(self._local, "store", None)
        self._local.store = None
        if store is not None:
            with self._lock:
                self._open = [kept for kept in self._open if kept is not store]
            _close_quietly(store)

    def close(self) -> None:
        with self._lock:
            stores, self._open = self._open, []
        for store in stores:
            _close_quietly(store)


@dataclass
class _Held:
    claim: Claim
    lost: threading.Event
    due: float
    on: bool = True


class _Heartbeats:
    """Every lease the worker holds, kept alive from one thread on one connection of its
    own, opened with the first heartbeat (a lane that ends sooner never needs it) and
    again after an outage. A lease found lost sets its ``lost`` event: the lane stops."""

    def __init__(self, dsn: str, lease_seconds: int, say: Progress) -> None:
        self.dsn = dsn
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
            _close_quietly(self._store)
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
        claim = held.claim
        held.due = time.monotonic() + self.interval
        try:
            if self._store is None:
                self._store = Store.connect(self.dsn)
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
                _close_quietly(self._store)
                self._store = None
        except StriatumError:
            self.release(claim)  # the job is gone or the lease unreadable: fencing decides


def _close_quietly(store: Store) -> None:
    try:
        store.close()
    except Exception:  # already broken: nothing to release
        pass


class _Links:
    """The claim loop's connection, opened again after an outage."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._store: Store | None = None

    def open(self) -> None:
        if self._store is None:
            self._store = Store.connect(self.dsn)

    def store(self) -> Store:
        self.open()
        assert self._store is not None
        return self._store

    def close(self) -> None:
        if self._store is not None:
            _close_quietly(self._store)
        self._store = None


class _Wakeup:
    """What ends the claim loop's wait: a NOTIFY that a job is ready, heard by a thread
    on its own LISTEN connection; a lane ending (its slot is free); or the poll's
    timeout. Waiting on one event, not on the LISTEN socket, is what lets a worker
    running several lanes refill a slot the moment it frees."""

    LISTEN_TURN = 0.5  # how often the listening thread looks at its stop flag

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
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

        from .sql import query
        from .store import StoreError, open_connection

        failures = 0
        while not halt.is_set():
            try:
                with open_connection(self.dsn) as conn:
                    conn.execute(query("listen_ready"))
                    failures = 0
                    self._listening.set()
                    self._event.set()  # what became ready while nobody listened
                    while not halt.is_set():
                        for _ in conn.notifies(timeout=self.LISTEN_TURN):
                            self._event.set()
            except (psycopg.Error, StoreError, StoreUnavailable, OSError):
                # The database went away: reconnect with backoff; polling covers the gap.
                failures += 1
                self._listening.set()
                self._event.set()
                halt.wait(min(5.0, 0.2 * 2 ** min(failures, 5)))


def _job_env(claim: Claim, run: RunRow) -> dict[str, str]:
    env = {"STRIATUM_RUN": claim.run, "STRIATUM_JOB": claim.job,
           "STRIATUM_LEASE": claim.token, "STRIATUM_ARTIFACT_DIR": claim.artifact_dir,
           "STRIATUM_PROMPT_FILE": claim.prompt_file,
           "STRIATUM_ITERATION": str(claim.iteration), "STRIATUM_ATTEMPT": str(claim.attempt),
           "STRIATUM_PRODUCES": "\n".join(claim.produces), "STRIATUM_REPO": run.repo_path}
    # So the agent's own `striatum job ...` calls reach the same database: the embedded
    # server's home, or a DSN that carries no password (one that does is never passed).
    for name in ("STRIATUM_HOME",):
        if os.environ.get(name):
            env[name] = os.environ[name]
    dsn = os.environ.get("STRIATUM_DSN")
    if dsn and not _has_password(dsn):
        env["STRIATUM_DSN"] = dsn
    return env


@functools.lru_cache(maxsize=8)
def _has_password(dsn: str) -> bool:
    from psycopg.conninfo import conninfo_to_dict

    try:
        return bool(conninfo_to_dict(dsn).get("password"))
    except Exception:  # an unparsable DSN: assume the worst
        return True


def _still_mine(store: Store, claim: Claim) -> bool:
    rows = store.execute("lock_job_unlocked", {"run": claim.run, "job": claim.job})
    if not rows:
        return False
    row = JobRow.from_row(rows[0])
    return row.status == "leased" and row.lease_token == claim.token


def _read_verdict(path: Path) -> tuple[str, str] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("verdict") not in leases.VERDICTS:
        return None
    return str(document["verdict"]), str(document.get("reason") or "(no reason given)")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=600,
                          check=True)


def _add_worktree(repo: Path, run: RunRow, scratch: Path) -> Path:
    if not run.base_commit:
        raise StriatumError("isolation: worktree needs the target to be a git repository "
                            "with a commit when the run is prepared")
    path = scratch / "worktree"
    if path.exists():
        _remove_worktree(repo, path)
    _git(repo, "worktree", "add", "--detach", str(path), run.base_commit)
    return path


def _worktree_diff(worktree: Path, base: str | None, scratch: Path) -> Path:
    _git(worktree, "add", "-A")
    diff = _git(worktree, "diff", "--cached", "--binary", base or "HEAD").stdout
    path = scratch / "changes.diff"
    path.write_bytes(diff)
    return path


def _diff_paths(worktree: Path, base: str | None) -> list[str]:
    names = _git(worktree, "diff", "--cached", "--name-only", "-z", base or "HEAD").stdout
    return sorted(n.decode("utf-8", "surrogateescape") for n in names.split(b"\0") if n)


def _remove_worktree(repo: Path, worktree: Path) -> None:
    try:
        _git(repo, "worktree", "remove", "--force", str(worktree))
    except subprocess.CalledProcessError:
        shutil.rmtree(worktree, ignore_errors=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True,
                       timeout=60)
