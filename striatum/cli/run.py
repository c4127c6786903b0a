"""``striatum run ...``: prepare, start, watch and steer runs."""

from __future__ import annotations

import time
from typing import Any

import click

from ..errors import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_RUN_NOT_COMPLETED,
    UsageError,
)
from ..runtime.machine import RUN_TERMINAL
from ..server import results
from . import render
from .calls import calls
from .output import emit_json, json_option
from .refs import RUN, ResolvingGroup
from .session import settings, store
from .work import sandbox_option


@click.group(cls=ResolvingGroup)
def run() -> None:
    """Runs: prepare, check, start, work, status, list, events, waiting, cancel, resume,
    retry."""


def _pairs(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--var {item!r} is not NAME=VALUE")
        out[key] = value
    return out


def _lanes(values: tuple[str, ...]) -> dict[str, Any]:
    # The workflow loader's own JSON reader: the same guards (depth, duplicate keys,
    # NaN, huge numbers, lone surrogates) as a workflow file gets.
    from ..compiler.load import parse_json

    out: dict[str, Any] = {}
    for item in values:
        name, sep, text = item.partition("=")
        lane = None
        if sep:
            parsed = parse_json(text, f"--lane {name}")
            if parsed.diagnostics:
                why = parsed.diagnostics[0].message
                raise UsageError(f"--lane {name}: not usable JSON ({why})",
                                 hint="""e.g. --lane 'coder=["codex", "exec", "-"]'""")
            lane = parsed.document
        if isinstance(lane, list):
            lane = {"command": lane}
        if not name or not isinstance(lane, dict):
            raise UsageError(f"--lane {item!r} is not NAME=JSON (a lane object or an argv list)")
        out[name] = lane
    return out


def _show(doc: dict[str, Any], as_json: bool) -> int:
    if as_json:
        emit_json(doc)
    else:
        click.echo(render.run_status(doc))
    return EXIT_OK


@run.command()
@click.option("--workflow", "workflow_file", required=True, type=click.Path(),
              help="The workflow file to compile and pin.")
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
              help="Set a workflow variable (repeatable).")
@click.option("--artifact-root", default="striatum/runs", show_default=True,
              help="Where in the repository the run's artifacts and manifest go.")
@click.option("--lane", "lane_overrides", multiple=True, metavar="NAME=JSON",
              help="Replace a lane for this run: a lane object or an argv list, e.g. "
                   """'coder=["codex","exec","-"]' (repeatable; pinned in the digest).""")
@click.option("--start", "start_now", is_flag=True, help="Start the run right away.")
@click.option("--allow-dirty", is_flag=True,
              help="With --start: start even where the jobs' writes hold uncommitted changes.")
@click.option("--dry-run", is_flag=True,
              help="Only check what can be known before a run (no database, no run).")
@json_option
def prepare(workflow_file: str, variables: tuple[str, ...], artifact_root: str,
            lane_overrides: tuple[str, ...], start_now: bool, allow_dirty: bool,
            dry_run: bool, as_json: bool) -> int:
    """Compile WORKFLOW, pin it, and create a run of it; prints the run id."""
    from ..runtime import runs

    repo, _ = settings()
    # Arguments are checked before a database is looked for.
    overrides, lanes = _pairs(variables), _lanes(lane_overrides)
    # What can be known now: its errors refuse the run (prepare checks them again, for
    # every caller), its warnings are said.
    findings = runs.preflight_of(workflow_file, repo, overrides=overrides, lanes=lanes)
    if dry_run:
        errors = [f for f in findings if f.severity == "error"]
        if as_json:
            emit_json({"workflow": workflow_file, "ok": not errors,
                       "findings": [f.to_json() for f in findings]})
        else:
            for finding in findings:
                click.echo(finding.line(), err=True)
            click.echo(f"{workflow_file}: " + ("a run would fail (see above)" if errors
                                               else "ready to run"
                                               + (" (see the warnings above)" if findings
                                                  else "")))
        return EXIT_INVALID if errors else EXIT_OK
    if not as_json:
        for finding in findings:
            if finding.severity == "warning":
                click.echo(finding.line(), err=True)
    with calls() as call:
        prepared = call("run.prepare", {"workflow": workflow_file, "vars": overrides,
                                        "artifact_root": artifact_root, "lanes": lanes,
                                        "start": start_now, "allow_dirty": allow_dirty})
    if as_json:
        emit_json({**prepared,
                   "warnings": [f.to_json() for f in findings if f.severity == "warning"]})
    else:
        click.echo(prepared["run_id"])
    return EXIT_OK


def _working(func: Any) -> Any:
    """The options of the verbs that can work a run to its end in this process."""
    for option in reversed([
        click.option("--wait", is_flag=True,
                     help="Work the run to its end in this process (its command lanes)."),
        click.option("--concurrency", default=4, show_default=True,
                     type=click.IntRange(1, 64), help="With --wait: jobs run at once."),
        click.option("--lease-seconds", default=60, show_default=True,
                     type=click.IntRange(5, 86400)),
        click.option("--until-human", is_flag=True,
                     help="With --wait: return (exit 7) once only a human can move the run "
                          "on, instead of waiting for the decision."),
        sandbox_option,
    ]):
        func = option(func)
    return func


@run.command()
@click.argument("run_id", type=RUN)
@click.option("--allow-dirty", is_flag=True,
              help="Start even where the jobs' writes hold uncommitted changes.")
@_working
@json_option
def start(run_id: str, allow_dirty: bool, wait: bool, concurrency: int, lease_seconds: int,
          until_human: bool, sandbox: bool, as_json: bool) -> int:
    """Start a prepared run: its first jobs become ready (with --wait, run them). Refused
    while the files its jobs write hold uncommitted changes, unless --allow-dirty."""
    return _moved("run.start", {"run": run_id, "allow_dirty": allow_dirty}, wait,
                  concurrency, lease_seconds, until_human, sandbox, as_json)


@run.command()
@click.argument("run_id", type=RUN)
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Jobs run at once.")
@click.option("--lease-seconds", default=60, show_default=True, type=click.IntRange(5, 86400))
@click.option("--until-human", is_flag=True,
              help="Return (exit 7) once only a human can move the run on.")
@sandbox_option
@json_option
def work(run_id: str, concurrency: int, lease_seconds: int, until_human: bool, sandbox: bool,
         as_json: bool) -> int:
    """Work a started run to its end in this process: after an interruption, a resume
    or a retry. Ends when the run ends or waits for a human (exit 7 then), as
    `run start --wait` does; Ctrl-C finishes the jobs in hand and exits 130."""
    from ..runtime import runs

    with store() as opened:
        runs.check_workable(opened, run_id)
        dsn = opened.dsn
    return _worked(run_id, dsn, concurrency, lease_seconds, until_human, sandbox, as_json)


def _moved(verb: str, params: dict[str, Any], wait: bool, concurrency: int,
           lease_seconds: int, until_human: bool, sandbox: bool, as_json: bool) -> int:
    """Call a verb that moves the run on (its result: the run's status); with ``wait``,
    work the run to its end here, on connections of this process (a worker's, never the
    daemon's); then say where it stands."""
    run_id = params["run"]
    with calls(direct=wait) as call:
        view = call(verb, params)
        if wait:
            dsn = call.store.dsn
        else:
            waiting = [] if as_json else call("run.waiting", {"run": run_id})["waiting"]
    if wait:
        return _worked(run_id, dsn, concurrency, lease_seconds, until_human, sandbox, as_json)
    return _stands(view, waiting, as_json)


def _worked(run_id: str, dsn: str, concurrency: int, lease_seconds: int, until_human: bool,
            sandbox: bool, as_json: bool) -> int:
    from .work import work_run

    interrupted = work_run(dsn, run_id, concurrency, lease_seconds, until_human, sandbox)
    # A connection of its own: one left idle while the run was worked may have been
    # dropped (a server restart the worker rode out).
    with calls(direct=True) as call:
        view = call("run.status", {"run": run_id})
        waiting = call("run.waiting", {"run": run_id})["waiting"]
    return _stands(view, waiting, as_json, waited=True, interrupted=interrupted)


def _stands(view: dict[str, Any], waiting: list[dict[str, Any]], as_json: bool, *,
            waited: bool = False, interrupted: bool = False) -> int:
    """Say where a run stands after a verb moved it on (and, ``waited``, it was worked)."""
    if as_json:
        emit_json(view)
    else:
        click.echo(render.run_status(view))
        if waited:
            click.echo(_after_waiting(view, waiting, interrupted))
        elif view["status"] not in RUN_TERMINAL:
            # Nothing works a run by itself: say which verb does (after a resume's
            # revise, a retry, or a start without --wait).
            click.echo(f"next: {_where_it_stands(view, waiting)}", err=True)
    if interrupted:
        return EXIT_INTERRUPTED
    if waited and view["status"] != "completed":
        return EXIT_RUN_NOT_COMPLETED
    return EXIT_OK


def _after_waiting(view: dict[str, Any], waiting: list[dict[str, Any]],
                   interrupted: bool = False) -> str:
    """Where a run stands once ``--wait`` returns: its manifest if it ended, else what
    it waits for and the command that moves it on."""

    said = _where_it_stands(view, waiting)
    if interrupted and view["status"] not in RUN_TERMINAL:
        return f"interrupted, the jobs in hand finished: {said}"
    return said


def _where_it_stands(view: dict[str, Any], waiting: list[dict[str, Any]]) -> str:
    from pathlib import Path

    from ..runtime import runs
    from ..runtime.manifest import MANIFEST

    run_id, status = view["run"], view["status"]
    if status == "failed":
        return (f"run {run_id} failed: see `striatum run status {run_id}`; run it again from "
                f"the failed job with `striatum run retry {run_id} --wait`")
    if status in RUN_TERMINAL:
        manifest = Path(view["repo"]) / view["artifact_root"] / run_id / MANIFEST
        if manifest.is_file():
            return f"artifacts and manifest: {manifest.parent}"
        return (f"run {run_id} {status}, but {manifest} is not there: "
                "`striatum doctor` checks the run's record")
    if status == "blocked":
        return (f"run {run_id} is blocked on {view['blocked_on']}: a human decides with "
                f"`{runs.resume_command(run_id, view['blocked_on'])}`")
    if waiting:
        return (f"run {run_id} is {status}, waiting for {waiting[0]['kind']} "
                f"{waiting[0]['job']}: `{waiting[0]['command']}`")
    return (f"run {run_id} is still {status}: work it on with `striatum run work {run_id}`, "
            f"or claim its jobs with `striatum job claim --run {run_id}`")


@run.command()
@click.argument("run_id", type=RUN)
@json_option
def check(run_id: str, as_json: bool) -> int:
    """Check a prepared run as prepare's preflight does, against the repository and this
    machine as they are now: exit 2 when the run would fail for a reason known now."""
    from ..runtime import runs

    with store() as opened:
        findings = runs.check(opened, run_id)
    errors = [f for f in findings if f.severity == "error"]
    if as_json:
        emit_json({"run": run_id, "ok": not errors, "findings": [f.to_json() for f in findings]})
    else:
        for finding in findings:
            click.echo(finding.line(), err=True)
        click.echo(f"run {run_id}: " + ("would fail (see above)" if errors else "ready to run"
                                        + (" (see the warnings above)" if findings else "")))
    return EXIT_INVALID if errors else EXIT_OK


@run.command()
@click.argument("run_id", type=RUN)
@json_option
def status(run_id: str, as_json: bool) -> int:
    """Show a run and each of its jobs."""
    with calls() as call:
        view = call("run.status", {"run": run_id})
    return _show(view, as_json)


@run.command(name="list")
@click.option("--all", "all_repos", is_flag=True, help="Runs of every repository.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@json_option
def list_(all_repos: bool, limit: int, as_json: bool) -> int:
    """List the newest runs of the repository (--repo)."""
    with calls() as call:
        found = call("run.list", {"all": all_repos, "limit": limit})["runs"]
        elsewhere = not found and not all_repos and bool(
            call("run.list", {"all": True, "limit": 1})["runs"])
    if as_json:
        emit_json(results.run_list(found))
    elif not found:
        click.echo(("no runs of this repository yet" if not all_repos else "no runs yet")
                   + ": `striatum run prepare --workflow FILE`"
                   + ("; other repositories have runs: `striatum run list --all`"
                      if elsewhere else ""), err=True)
    else:
        for r in found:
            click.echo(f"{r['run']}  {r['status']:<10} {r['workflow']:<24} "
                       f"{r['executions']}/{r['worst_case']} executions  {r['created_at']}")
    return EXIT_OK


@run.command()
@click.argument("run_id", type=RUN)
@json_option
def waiting(run_id: str, as_json: bool) -> int:
    """List the jobs of a run that wait for a human, and the command that answers each."""
    with calls() as call:
        found = call("run.waiting", {"run": run_id})  # a missing run is exit 3
        if not found["waiting"] and not as_json:
            state = call("run.status", {"run": run_id})["status"]
            click.echo(f"nothing in run {run_id} waits for a human (it is {state})", err=True)
    if as_json:
        emit_json(found)
    for each in [] if as_json else found["waiting"]:
        click.echo(f"{each['kind']} {each['job']} (iteration {each['iteration']}): "
                   f"{each['command']}")
    return EXIT_OK


@run.command()
@click.argument("run_id", type=RUN)
@click.option("--after", default=0, show_default=True, help="Only events after this seq.")
@click.option("--follow", is_flag=True, help="Keep printing new events until the run ends.")
@json_option
def events(run_id: str, after: int, follow: bool, as_json: bool) -> int:
    """Print a run's events, every one of them (with --json --follow: one JSON document
    per line)."""
    if not follow:
        with calls() as call:  # a missing run is exit 3, not an empty list
            found = call("run.events", {"run": run_id, "after": after})
        if as_json:
            emit_json(found)
        for event in [] if as_json else found["events"]:
            _print_event(event, as_json)
        return EXIT_OK
    from ..runtime import runs

    # Polling twice a second: on a connection of its own, not as calls the daemon audits.
    with store() as opened:
        runs.get_run(opened, run_id)
        while True:
            for event in runs.all_events(opened, run_id, after):
                _print_event(event, as_json)
                after = event["seq"]
            if runs.get_run(opened, run_id).status in RUN_TERMINAL:
                # What the ending transition appended after the last read.
                for event in runs.all_events(opened, run_id, after):
                    _print_event(event, as_json)
                return EXIT_OK
            time.sleep(0.5)


def _print_event(event: dict[str, Any], as_json: bool) -> None:
    import json

    if as_json:
        click.echo(json.dumps(event, ensure_ascii=False))
        return
    payload = event["payload"]
    state = payload.get("state", {}).get("status", "")
    data = payload.get("data") or {}
    note = ", ".join(f"{k}={v}" for k, v in data.items() if k not in ("jobs",) and v)
    target = f" {event['job']}" if event["job"] else ""
    click.echo(f"{event['seq']:>6} {event['at']} {event['type']}{target} → {state}"
               + (f"  ({note})" if note else ""))


@run.command()
@click.argument("run_id", type=RUN)
@click.option("--reason", default="cancelled by a human", show_default=True)
@json_option
def cancel(run_id: str, reason: str, as_json: bool) -> int:
    """Cancel a run and every job still live in it."""
    with calls() as call:
        view = call("run.cancel", {"run": run_id, "reason": reason})
    return _show(view, as_json)


@run.command()
@click.argument("run_id", type=RUN)
@click.option("--decision", type=click.Choice(["accept", "fail", "revise", "raise"]),
              default=None, help="Accept the escalated review, fail the run, or grant one "
                                 "more revision; raise: the limits --raise-budget gives.")
@click.option("--raise-budget", "raised", multiple=True, metavar="LIMIT=N",
              help="A run its budget stopped: the new limit (max_job_runs, "
                   "max_wall_seconds or max_cost); repeatable. Implies --decision raise.")
@click.option("--job", "job_id", default=None, metavar="JOB",
              help="The waiting job to answer, when several wait (default: the one the "
                   "run is blocked on); `striatum why` names each.")
@click.option("--reason", default="", help="Why (recorded in the event).")
@_working
@json_option
def resume(run_id: str, decision: str | None, raised: tuple[str, ...], job_id: str | None,
           reason: str, wait: bool, concurrency: int, lease_seconds: int, until_human: bool,
           sandbox: bool, as_json: bool) -> int:
    """Answer a blocked run: an escalation (a review whose revision budget is spent), or a
    budget that stopped it; with --wait, work it on to its end here."""
    from ..runtime.budgets import resume_params

    params = resume_params(run_id, decision, raised, reason, job_id)
    return _moved("run.resume", params, wait and params["decision"] != "fail", concurrency,
                  lease_seconds, until_human, sandbox, as_json)


@run.command()
@click.argument("run_id", type=RUN)
@click.option("--job", "job_id", default=None,
              help="The failed job (a failed run has one): refused if it is not that one.")
@click.option("--reason", default="retried by a human", show_default=True,
              help="Why (recorded in the event).")
@_working
@json_option
def retry(run_id: str, job_id: str | None, reason: str, wait: bool, concurrency: int,
          lease_seconds: int, until_human: bool, sandbox: bool, as_json: bool) -> int:
    """Run a failed run again from its failed job, with a fresh attempt budget: that job
    and every job its failure cancelled run again (with --wait, here and now). A human's
    decision, in the run's record."""
    return _moved("run.retry", {"run": run_id, "job": job_id, "reason": reason}, wait,
                  concurrency, lease_seconds, until_human, sandbox, as_json)
