"""``striatum job ...``: the verbs an agent calls while it holds a job.

Inside a lane, STRIATUM_RUN, STRIATUM_JOB and STRIATUM_LEASE are set, so an
agent can simply run ``striatum job verdict accept --reason "..."``. There,
STRIATUM_SOCKET is set too and the lane holds no database login: each verb is
one call on the worker's lane socket, with the lease as its capability (this path
imports no psycopg). Elsewhere (an operator that claimed a job) they go as every
other verb does (``cli.calls``): through the home's daemon when it serves this
database, else on a connection of their own. Every way prints the same text and
``--json`` document, from the verb's result document (``server.results``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..compiler.ir import VERDICTS
from ..errors import EXIT_OK
from ..server import results
from . import render
from .calls import calls
from .output import emit_json, json_option
from .refs import RUN, ResolvingGroup

F = TypeVar("F", bound=Callable[..., Any])


def held(func: F) -> F:
    """--run/--job/--lease, from the environment a lane provides."""
    for option in reversed([
        click.option("--run", "run_id", envvar="STRIATUM_RUN", required=True, type=RUN,
                     help="The run (default: $STRIATUM_RUN)."),
        click.option("--job", "job_id", envvar="STRIATUM_JOB", required=True,
                     help="The job (default: $STRIATUM_JOB)."),
        click.option("--lease", "token", envvar="STRIATUM_LEASE", required=True,
                     help="The lease token from claim (default: $STRIATUM_LEASE)."),
    ]):
        func = option(func)
    return func


@click.group(cls=ResolvingGroup)
def job() -> None:
    """Jobs: claim, heartbeat, publish, verdict, complete, release, fail, escalate.

    \b
    Inside a lane the worker sets what these verbs read, so an agent need not pass it:
      STRIATUM_RUN, STRIATUM_JOB, STRIATUM_LEASE  the run, the job and the lease token
      STRIATUM_ARTIFACT_DIR  where the job's files go (its produces)
      STRIATUM_SOCKET        the worker's lane socket, which these verbs call
      STRIATUM_ACTOR         who the audit rows name (default: user@host)
      STRIATUM_MODEL         the model `job claim` records (unset: recorded as unknown)
    Outside a lane (no STRIATUM_SOCKET), they go through the home's daemon when it serves
    the database, else open it: --dsn or STRIATUM_DSN, else the embedded server.
    """


def _lane_socket() -> str | None:
    return os.environ.get("STRIATUM_SOCKET") or None


def _through_lane(socket_path: str, verb: str, params: dict[str, Any]) -> dict[str, Any]:
    """One call of ``verb`` on the lane's socket; a refusal is the gate's error, with its
    code and exit code."""
    from ..errors import DaemonUnavailable
    from ..runtime.audit import default_actor
    from ..server.client import Client, in_lane

    try:
        with Client(holding="none", socket_path=Path(socket_path),
                    actor=default_actor()) as client:
            document: dict[str, Any] = client.call(verb, params)
    except DaemonUnavailable as exc:
        raise in_lane(exc) from exc
    return document


@job.command()
@click.option("--run", "run_id", envvar="STRIATUM_RUN", required=True, type=RUN,
              help="The run: its id, a unique part of it, or latest (default: $STRIATUM_RUN).")
@click.option("--lane", default=None, help="Only a job of this lane.")
@click.option("--owner", default=None, help="Who holds the lease (default: user@host:pid).")
@click.option("--lease-seconds", default=300, show_default=True, type=click.IntRange(5, 86400),
              help="Lease length; heartbeat before it runs out.")
@click.option("--model", default=None, envvar="STRIATUM_MODEL",
              help="The model doing the work, recorded on the attempt (default: "
                   "$STRIATUM_MODEL; neither: recorded as unknown).")
@json_option
def claim(run_id: str, lane: str | None, owner: str | None, lease_seconds: int,
          model: str | None, as_json: bool) -> int:
    """Lease the next ready job; prints its prompt file and lease token.

    When there is none it says why (exit 0): the run ended (stop), is not started, has
    no such lane, waits for a human (with the command that answers), or has nothing
    ready yet (claim again shortly). With --json: "claimed": false and "reason" one of
    run_ended, run_not_started, no_such_lane, waiting_for_human, nothing_ready_yet."""
    socket_path = _lane_socket()
    if socket_path:
        # A lane's socket serves no claim (it is refused, and audited); were it served,
        # its document is what there is to show.
        emit_json(_through_lane(socket_path, "job.claim", {
            "run": run_id, "lane": lane, "owner": owner, "lease_seconds": lease_seconds,
            "model": model or None}))
        return EXIT_OK
    # The owner is named here: through the daemon, its default would name the daemon.
    with calls() as call:
        found = call("job.claim", {"run": run_id, "lane": lane,
                                   "owner": owner or results.default_owner(),
                                   "lease_seconds": lease_seconds, "model": model or None})
    if as_json:
        emit_json(found)
    else:
        out, err = render.claimed(found)
        click.echo(out or err, err=not out)
    return EXIT_OK


@job.command()
@held
@click.option("--lease-seconds", default=300, show_default=True, type=click.IntRange(5, 86400))
@json_option
def heartbeat(run_id: str, job_id: str, token: str, lease_seconds: int, as_json: bool) -> int:
    """Extend the lease (refused with exit 5 if it is no longer yours)."""
    document = _held_call("job.heartbeat", run_id, job_id, token,
                          {"lease_seconds": lease_seconds})
    if as_json:
        emit_json(document)
    else:
        click.echo(render.heartbeat(document))
    return EXIT_OK


@job.command()
@held
@click.option("--artifact", "path", required=True, type=click.Path(),
              help="The file to publish.")
@click.option("--as", "name", default=None, help="Its artifact name (default: file name).")
@json_option
def publish(run_id: str, job_id: str, token: str, path: str, name: str | None,
            as_json: bool) -> int:
    """Copy an artifact into the run's folder in the repository, with its sha256."""
    record = _held_call("job.publish", run_id, job_id, token,
                        {"artifact": os.path.abspath(path), "name": name})
    if as_json:
        emit_json(record)
    else:
        click.echo(render.published(record))
    return EXIT_OK


@job.command()
@click.argument("outcome", type=click.Choice(VERDICTS))
@held
@click.option("--reason", required=True, help="Why: the reviewer's words, kept in the record.")
@click.option("--finding", "findings", multiple=True,
              help="The id of a finding the review names (repeatable).")
@json_option
def verdict(outcome: str, run_id: str, job_id: str, token: str, reason: str,
            findings: tuple[str, ...], as_json: bool) -> int:
    """End a review with a verdict: accept, needs_revision or reject."""
    document = _held_call("job.verdict", run_id, job_id, token,
                          {"outcome": outcome, "reason": reason,
                           **({"findings": list(findings)} if findings else {})})
    return _done(document, as_json)


@job.command()
@held
@json_option
def complete(run_id: str, job_id: str, token: str, as_json: bool) -> int:
    """Finish a task (its `produces` artifacts must be published)."""
    document = _held_call("job.complete", run_id, job_id, token, {})
    return _done(document, as_json)


@job.command()
@held
@json_option
def release(run_id: str, job_id: str, token: str, as_json: bool) -> int:
    """Hand the job back, unfinished, for another claim."""
    document = _held_call("job.release", run_id, job_id, token, {})
    return _done(document, as_json)


@job.command()
@held
@click.option("--reason", required=True, help="What went wrong.")
@json_option
def fail(run_id: str, job_id: str, token: str, reason: str, as_json: bool) -> int:
    """Report that this attempt failed (retried while attempts remain)."""
    document = _held_call("job.fail", run_id, job_id, token, {"reason": reason})
    return _done(document, as_json)


@job.command()
@held
@click.option("--reason", required=True,
              help="What the human must decide, and why: kept in the record.")
@json_option
def escalate(run_id: str, job_id: str, token: str, reason: str, as_json: bool) -> int:
    """Hand the job to a human: it waits and the run is blocked until `run resume`."""
    document = _held_call("job.escalate", run_id, job_id, token, {"reason": reason})
    return _done(document, as_json)


def _held_call(verb: str, run_id: str, job_id: str, token: str, params: dict[str, Any]
               ) -> dict[str, Any]:
    """The verb's result document, called with the lease: inside a lane on the lane's
    socket; elsewhere as every other verb is (``cli.calls``: through the home's daemon
    when it serves this database, else on a connection of this command's own)."""
    arguments = {"run": run_id, "job": job_id, "lease": token, **params}
    socket_path = _lane_socket()
    if socket_path is not None:
        return _through_lane(socket_path, verb, arguments)
    with calls() as call:
        document: dict[str, Any] = call(verb, arguments)
    return document


def _done(document: dict[str, Any], as_json: bool) -> int:
    """What verdict, complete, release and fail print: ``results.job_outcome``'s document."""
    if as_json:
        emit_json(document)
    else:
        click.echo(render.outcome(document))
    return EXIT_OK
