"""``striatum worker`` and ``run start --wait``: run command lanes in this process."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

import click

from ..errors import EXIT_ATTEMPT_FAILED, EXIT_OK
from .output import emit_json, json_option
from .refs import RUN, ResolvingCommand
from .session import store

# Shared by every verb that runs lanes here: worker, run work, run start|resume|retry --wait.
sandbox_option = click.option(
    "--sandbox", is_flag=True,
    help="Run every lane under bubblewrap, as if each said sandbox: true (docs/security.md).")


def _progress(line: str) -> None:
    click.echo(f"striatum: {line}", err=True)


def _stop_on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        _progress("stopping: finishing the jobs in hand, claiming no more")
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def work_run(dsn: str, run_id: str, concurrency: int, lease_seconds: int,
             until_human: bool = False, sandbox: bool = False) -> bool:
    """Work ``run_id`` until it ends or waits for a human; True when a signal stopped it
    first. Progress goes to stderr, a line at a time, terminal or not (a log, or an
    agent reading the output, wants it as much as a person does)."""
    from ..runtime.worker import Worker, WorkerOptions

    options = WorkerOptions(run=run_id, concurrency=concurrency, until_run_ends=True,
                            until_human=until_human, lease_seconds=lease_seconds,
                            progress=_progress, sandbox=sandbox)
    worker = Worker(dsn, options)
    signalled: list[int] = []

    def stop() -> None:
        signalled.append(1)
        worker.stop_on_signal()

    _stop_on_signals(stop)
    worker.run()
    return bool(signalled)


@click.command(cls=ResolvingCommand)
@click.option("--run", "run_id", default=None, type=RUN,
              help="Only this run (default: every run).")
@click.option("--lanes", default=None, help="Only these lanes, comma-separated.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Jobs run at once.")
@click.option("--once", is_flag=True, help="Run one job, then exit.")
@click.option("--lease-seconds", default=60, show_default=True, type=click.IntRange(5, 86400),
              help="Lease length; heartbeats come every third of it.")
@click.option("--poll-seconds", default=1.0, show_default=True, type=click.FloatRange(0.05, 60),
              help="Poll this often when no notification arrives.")
@click.option("--notify", "notify", default=None, metavar="CMD",
              help="Run CMD (through sh -c) with each new inbox item as JSON on stdin.")
@sandbox_option
@json_option
def worker(run_id: str | None, lanes: str | None, concurrency: int, once: bool,
           lease_seconds: int, poll_seconds: float, notify: str | None, sandbox: bool,
           as_json: bool) -> int:
    """Claim ready jobs whose lane is a command, run them, and finish them.

    Runs until interrupted (SIGINT/SIGTERM finish the jobs in hand first), or
    after one job with --once (exit 8 when that job's attempt failed). Any number
    of workers may share one database.
    """
    from ..runtime.worker import Worker, WorkerOptions

    options = WorkerOptions(run=run_id, lanes=lanes.split(",") if lanes else None,
                            concurrency=concurrency, once=once, lease_seconds=lease_seconds,
                            poll_seconds=poll_seconds, progress=_progress, notify=notify,
                            sandbox=sandbox)
    with store() as opened:  # the database, migrated if it was behind
        dsn = opened.dsn
    runner = Worker(dsn, options)
    _stop_on_signals(runner.stop_on_signal)
    _progress(f"worker {runner.name} waiting for jobs"
              + (f" of run {run_id}" if run_id else ""))
    outcomes = runner.run()
    if as_json:
        emit_json({"worker": runner.name, "jobs": [
            {"run": o.run, "job": o.job, "status": o.status, "detail": o.detail,
             "seconds": round(o.seconds, 3)} for o in outcomes]})
    if once and outcomes and not outcomes[-1].ok:
        return EXIT_ATTEMPT_FAILED
    return EXIT_OK
