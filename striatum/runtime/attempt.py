"""One attempt of a claimed job: start its lane, watch it, and end the attempt through
the same lease verbs an agent calls, with the lease's fencing token.

Whatever goes wrong in striatum's own steps (git, the file system, the database)
ends the attempt with that reason: the lease is handed back through ``job fail``
(so the job is retried, not left leased to a worker that moved on), the
worktree is removed, and the outcome still names the run and the job.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..compiler.ir import VERDICTS
from ..errors import Conflict, LeaseLost, StoreUnavailable, StriatumError
from . import budgets, changes, embedded, leases, sandbox
from .artifacts import Staged, stage
from .connections import Heartbeats, LaneStores
from .findings import finding_ids
from .lanes import DEFAULT_TIMEOUT, fill, lane_environment, run_lane
from .leases import Claim
from .prompts import scratch_of
from .records import JobRow
from .starts import record_start, start_data, start_text
from .store import Store
from .worktrees import add_worktree, checkout, diff_paths, remove_worktree, worktree_diff

if TYPE_CHECKING:
    from ..server.lanegate import LaneLeases

VERDICT_FILE = "verdict.json"
# A shell's codes for a command it could not run (not found, not executable): every attempt
# would meet them alike, so the job fails without spending its other attempts.
NEVER_RUNS = (126, 127)
# How an attempt can end; the first ones mean the lane's job ran to its end.
ENDED_AS_MEANT = ("succeeded", "done by the agent", *VERDICTS)


@dataclass
class Outcome:
    run: str
    job: str
    status: str  # one of ENDED_AS_MEANT, "failed", "lease lost", "error"
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status in ENDED_AS_MEANT

    def line(self) -> str:
        """What a human reads of it."""
        extra = f" ({self.detail})" if self.detail else ""
        return f"{self.job}: {self.status} in {self.seconds:.1f}s{extra}"


class Told:
    """Keeps a worker's lines in the order things happened without making its lanes wait
    on each other. An attempt takes a ticket just before the transition that ends it and
    gives it back once its line is said; a job claimed meanwhile says it started only
    after the lines of the tickets out when it was claimed (the verdict that released it
    is among them), and never waits for attempts that end later. Its lane does not wait
    for that line: the line is said by whoever gives the last of those tickets back, at
    the latest when the attempt says its next line, or after ``WAIT``."""

    WAIT = 10.0  # the longest a line waits for another (its attempt may be stuck)

    def __init__(self) -> None:
        self._changed = threading.Lock()
        self._out: set[int] = set()
        self._next = 0
        self._held: list[_Line] = []

    def take(self) -> int:
        with self._changed:
            self._next += 1
            self._out.add(self._next)
            return self._next

    def give_back(self, ticket: int) -> None:
        with self._changed:
            self._out.discard(ticket)
            free = [line for line in self._held if not line.after & self._out]
            for line in free:
                self._held.remove(line)
                line.say()

    def out(self) -> frozenset[int]:
        with self._changed:
            return frozenset(self._out)

    def say_after(self, after: frozenset[int], say: Callable[[], None]) -> Callable[[], None]:
        """Say a line once none of ``after`` is out (now, when none is); the function
        returned says it now if it is still held (before the attempt's next line)."""
        line = _Line(after, say)
        with self._changed:
            if not after & self._out:
                say()
                return _nothing
            self._held.append(line)
        timer = threading.Timer(self.WAIT, self._release, (line,))
        timer.daemon = True
        timer.start()

        def due() -> None:
            timer.cancel()
            self._release(line)

        return due

    def _release(self, line: _Line) -> None:
        with self._changed:
            if line in self._held:
                self._held.remove(line)
                line.say()


@dataclass(eq=False)  # held lines are told apart by identity
class _Line:
    after: frozenset[int]
    say: Callable[[], None]


def _nothing() -> None:
    pass


@dataclass
class Attempts:
    """Runs attempts on lane threads; ``told`` orders the lines they say. Each lane is
    handed ``socket``, the worker's lane socket, where ``lanes`` holds it while it runs."""

    stores: LaneStores
    beats: Heartbeats
    log_cap: int
    say: Callable[[str], None]
    socket: str
    lanes: LaneLeases
    told: Told = field(default_factory=Told)
    sandbox: bool = False  # every lane sandboxed, whatever the workflow says (--sandbox)

    def run(self, claim: Claim, after: frozenset[int] = frozenset()) -> Outcome:
        """Run one attempt; its "started" line waits for the lines of ``after`` (the
        attempts that were ending when the job was claimed)."""
        started = time.monotonic()
        attempt = _Attempt(self, claim)
        started_line = (f"{claim.job}: started (run {claim.run}, pass {claim.iteration + 1}, "
                        f"attempt {claim.attempt + 1})")
        try:
            said = self.told.say_after(after, lambda: self.say(started_line))
            try:
                status, detail = attempt.execute()
            except LeaseLost as exc:
                status, detail = "lease lost", exc.message
            except Exception as exc:  # noqa: BLE001 - any failure of our own ends the attempt
                status, detail = attempt.give_up(describe(exc), final=_permanent(exc))
            finally:
                attempt.clean_up()
                self.stores.check()
            outcome = Outcome(claim.run, claim.job, status, detail, time.monotonic() - started)
            said()
            self.say(outcome.line())
            return outcome
        finally:
            # Whatever happened, or the lines of the jobs claimed meanwhile would wait.
            if attempt.ticket is not None:
                self.told.give_back(attempt.ticket)


def _permanent(exc: BaseException) -> bool:
    """An error that every attempt would meet alike (a configuration the run cannot
    work with), so retrying it only spends the attempts."""
    return isinstance(exc, Conflict)


def describe(exc: BaseException) -> str:
    """An error of striatum's own steps, in words a log reader can act on."""
    if isinstance(exc, subprocess.CalledProcessError):
        said = (exc.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        command = " ".join(str(part) for part in exc.cmd)
        return (f"`{command}` exited with code {exc.returncode}"
                + (f": {said[-1]}" if said else ""))
    if isinstance(exc, subprocess.TimeoutExpired):
        return f"`{' '.join(str(p) for p in exc.cmd)}` did not finish in {exc.timeout:.0f}s"
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror or type(exc).__name__}{where}"
    if isinstance(exc, StriatumError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class _Attempt:
    def __init__(self, attempts: Attempts, claim: Claim) -> None:
        self.attempts = attempts
        self.claim = claim
        self.repo = Path(claim.run_row.repo_path)
        self.scratch = scratch_of(Path(claim.prompt_file))
        self.worktree: Path | None = None  # the root of the attempt's worktree, if any
        self.ticket: int | None = None  # from attempts.told, once the attempt is ending

    @contextmanager
    def _ending(self) -> Iterator[None]:
        """Around the transition that ends the attempt: see ``Told``."""
        if self.ticket is None:
            self.ticket = self.attempts.told.take()
        yield

    def store(self) -> Store:
        return self.attempts.stores.store()

    def execute(self) -> tuple[str, str]:
        claim = self.claim
        run, spec = claim.run_row, claim.pinned.jobs[claim.job]
        lane = claim.pinned.lanes[spec.lane]
        out = Path(claim.artifact_dir)
        out.mkdir(parents=True, exist_ok=True)
        workdir = self.repo
        if spec.isolation == "worktree":
            self.worktree, workdir = add_worktree(self.repo, run.base_commit,
                                                  self.scratch.worktree)
        watch = (bool(spec.writes) and self.worktree is None
                 and checkout(str(self.repo)) is not None)
        before = changes.baseline(self.repo, self.scratch.folder, claim.iteration) \
            if watch else {}
        values = {"prompt_file": claim.prompt_file, "artifact_dir": str(out),
                  "job": claim.job, "run": claim.run}
        argv = [fill(part, values) for part in lane.command]
        stdin = Path(fill(lane.stdin, values)) if lane.stdin else None
        job_env = {**_job_env(claim, self.attempts.socket), "STRIATUM_KIND": claim.kind,
                   "STRIATUM_CAN_REVISE": "1" if spec.revise else "0"}
        env = lane_environment(dict(lane.env), job_env)
        # Chained before the lane starts: who ran this attempt, as this machine resolves it.
        # Most often the claim chained it already; resolved otherwise now (its program
        # installed meanwhile, say), it is chained again, and the later event is the one
        # that holds.
        data = start_data(spec.lane, argv, env, workdir)
        if claim.started is None or claim.started != start_text(data):
            record_start(self.store(), claim.run, claim.job, claim.token, data)
        if lane.sandbox or self.attempts.sandbox:
            argv = self._sandboxed(argv, workdir, env)
        lost = threading.Event()
        self.attempts.beats.hold(claim, lost)
        self.attempts.lanes.hold(claim.token, job_env)
        log = self.scratch.log
        timeout = lane.timeout or DEFAULT_TIMEOUT
        budgets.clear_usage(str(out))
        try:
            result = run_lane(argv, cwd=workdir, env=env, stdin=stdin, timeout=timeout,
                              log_path=log, log_cap=self.attempts.log_cap, tag=claim.token,
                              abandon=lost)
        finally:
            self.attempts.lanes.drop(claim.token)
            self.attempts.beats.release(claim)
        usage = budgets.read_usage(str(out))
        if usage is not None:
            budgets.report_usage(self.store(), claim.run, claim.job, usage)

        def end() -> tuple[str, str]:
            # What the attempt leaves is published by the transition that ends it, in the
            # same transaction: one commit per job instead of one per file.
            files = [stage(str(log), f"logs/{claim.job}.log")] if log.is_file() else []
            if self.worktree is not None:
                diff = worktree_diff(self.worktree, run.base_commit, self.scratch.diff)
                files.append(stage(str(diff), f"changes/{claim.job}.diff"))
                touched = diff_paths(self.worktree, run.base_commit, self.repo)
            else:
                touched = changes.changed(before, changes.snapshot(self.repo),
                                          (".striatum", run.artifact_root)) if watch else []
            if not result.ok:
                final = result.exit_code in NEVER_RUNS
                if result.timed_out:
                    reason = f"timed out after {timeout}s"
                elif result.exit_code is None:
                    reason = "its supervisor (the worker's lane guardian) died; it was killed"
                elif final:
                    reason = (f"exited with code {result.exit_code}: `{argv[0]}` could not "
                              "be run (not found, or not executable)")
                else:
                    reason = f"exited with code {result.exit_code}"
                reason += self._set_aside(touched if watch else [], spec.writes)
                return self._fail(reason + f"; see logs/{claim.job}.log", files, reason,
                                  final=final)
            files += [stage(str(out / name), name) for name in claim.produces
                      if (out / name).is_file()]
            stray = changes.outside(touched, spec.writes) if spec.writes else []
            if stray:
                return self._fail("changed files outside its writes globs: "
                                  + ", ".join(stray[:20])
                                  + self._set_aside(touched if watch else [], spec.writes),
                                  files)
            if claim.kind == "review":
                return self._review(out, files)
            return self._finish(lambda store: leases.complete(
                store, claim.run, claim.job, claim.token, files=files, check_writes=False),
                files, "succeeded", "")

        def mine(store: Store) -> bool:
            return _still_mine(store, claim)

        # A worktree or a watched tree is looked at (and set aside) before the end: only
        # while the job is still this attempt's. Otherwise the ending's own lease check
        # tells a job the agent ended itself, and no read a job asks it first.
        if self.worktree is not None or watch:
            if not self._read(mine):
                return self._not_mine(log)
            return end()
        try:
            return end()
        except LeaseLost:
            if self._read(mine):
                raise  # still leased to it, but expired: the lease is lost
            return self._not_mine(log)
        except StoreUnavailable:
            # Its kept connection died while the lane ran (a server restart): once more on
            # a new one, as the read did. Had the end committed as the connection broke,
            # the read finds the job no longer leased, and the record stands as it is.
            self.attempts.stores.drop()
            if not self._read(mine):
                return self._not_mine(log)
            return end()

    def _not_mine(self, log: Path) -> tuple[str, str]:
        claim = self.claim
        if log.is_file():
            # The agent ended the attempt itself (its verdict, say): the log is still the
            # attempt's. Refused when the lease was lost instead: nothing to add.
            with contextlib.suppress(LeaseLost):
                leases.publish_log(self.store(), claim.run, claim.job, claim.token, str(log))
        return "done by the agent", "it finished the job through the CLI, or lost the lease"

    def _sandboxed(self, argv: list[str], workdir: Path, env: dict[str, str]) -> list[str]:
        """``argv`` under bwrap, or SandboxUnavailable (the attempt fails, finally): a lane
        that asked for the sandbox never runs without it."""
        bwrap = sandbox.require()
        # Asked at each attempt: a run prepared since the worker started is hidden too.
        repos = [str(row[1]) for row in self.store().execute("all_repos")]
        view = sandbox.view_for(repo=self.repo, workdir=workdir, env=env,
                                striatum_home=embedded.home(), repos=repos)
        return sandbox.wrap(argv, cwd=workdir, view=view, bwrap=bwrap)

    def _review(self, out: Path, files: list[Staged]) -> tuple[str, str]:
        found = _read_verdict(out / VERDICT_FILE)
        if found is None:
            return self._fail("the review recorded no verdict: run `striatum job verdict ...` "
                              f"or leave {VERDICT_FILE} in the artifact dir", files)
        outcome, why, findings = found
        claim = self.claim
        return self._finish(lambda store: leases.verdict(
            store, claim.run, claim.job, claim.token, outcome, why, files=files,
            findings=findings),
            files, outcome, why)

    def _finish(self, end: Callable[[Store], object], files: list[Staged], status: str,
                detail: str) -> tuple[str, str]:
        """End the attempt with ``end``; if the record refuses it (an artifact missing, a
        verdict a review cannot give), fail the attempt with the refusal's words."""
        try:
            with self._ending():
                end(self.store())
        except LeaseLost:
            raise
        except StoreUnavailable:
            raise
        except StriatumError as exc:
            return self._fail(exc.message, files)
        return status, detail

    def _set_aside(self, touched: list[str], writes: tuple[str, ...]) -> str:
        """Take back what this failed attempt changed within its ``writes`` in the shared
        tree, so the retry starts from where the pass started (changes.set_aside); the
        words the failure's reason adds. Outside its writes it may have changed another
        job's files: those are left alone (and refused, as stray)."""
        mine = [path for path in touched if not changes.outside([path], writes)]
        if not mine:
            return ""
        keep = self.scratch.left
        try:
            restored, left = changes.set_aside(self.repo, self.scratch.folder,
                                               self.claim.iteration, mine, keep)
        except (OSError, subprocess.SubprocessError) as exc:
            return f"; its changes could not be set aside ({exc}): the retry starts on them"
        said = (f"; its changes to {len(restored)} file(s) were taken back (kept in {keep})"
                if restored else "")
        if left:
            said += f"; left as it changed them (no copy to restore): {', '.join(left[:10])}"
        return said

    def _fail(self, reason: str, files: list[Staged], detail: str | None = None, *,
              final: bool = False) -> tuple[str, str]:
        claim = self.claim
        with self._ending():
            leases.fail(self.store(), claim.run, claim.job, claim.token, reason, files=files,
                        final=final)
        return "failed", detail if detail is not None else reason

    def give_up(self, reason: str, *, final: bool = False) -> tuple[str, str]:
        """After an error of our own: fail the attempt with the reason, so the job is
        retried now rather than when its lease expires (not at all when ``final``)."""
        claim = self.claim
        self.attempts.stores.check()
        try:
            with self._ending():
                leases.fail(self.store(), claim.run, claim.job, claim.token,
                            f"the worker could not run the attempt: {reason}", final=final)
        except Exception as exc:  # noqa: BLE001 - the first error is the one to report
            # The job moved on (its lease was lost, or it was ended before the error), or
            # the database is away: the lease expires instead; fencing keeps that safe.
            return "error", f"{reason} (and the attempt could not be failed: {describe(exc)})"
        return "failed", reason

    def clean_up(self) -> None:
        if self.worktree is not None:
            worktree, self.worktree = self.worktree, None
            remove_worktree(self.repo, worktree)

    def _read(self, read: Callable[[Store], bool]) -> bool:
        """A read on this lane thread's connection, tried once more on a new one if the
        kept connection turns out dead: it may have died while idle or while the lane ran
        (a server restart), and a read changes nothing, so trying again is safe."""
        try:
            return read(self.store())
        except StoreUnavailable:
            self.attempts.stores.drop()
            return read(self.store())


def _job_env(claim: Claim, socket: str) -> dict[str, str]:
    # The agent's own `striatum job ...` calls go to the worker's lane socket with its
    # lease: a lane is given no DSN and no home, so it holds no login to the database.
    return {"STRIATUM_RUN": claim.run, "STRIATUM_JOB": claim.job,
            "STRIATUM_LEASE": claim.token, "STRIATUM_SOCKET": socket,
            "STRIATUM_ARTIFACT_DIR": claim.artifact_dir,
            "STRIATUM_PROMPT_FILE": claim.prompt_file,
            "STRIATUM_ITERATION": str(claim.iteration), "STRIATUM_ATTEMPT": str(claim.attempt),
            "STRIATUM_PRODUCES": "\n".join(claim.produces),
            "STRIATUM_REPO": claim.run_row.repo_path}


def _still_mine(store: Store, claim: Claim) -> bool:
    row = store.read(JobRow, "job_record", {"run": claim.run, "job": claim.job})
    return row is not None and row.status == "leased" and row.lease_token == claim.token


def _read_verdict(path: Path) -> tuple[str, str, tuple[str, ...] | None] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("verdict") not in VERDICTS:
        return None
    return (str(document["verdict"]), str(document.get("reason") or "(no reason given)"),
            finding_ids(document.get("findings")))
