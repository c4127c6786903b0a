"""``striatum daemon start|stop|status|call``: the daemon of this striatum home
(docs/daemon.md).

Only ``start --foreground`` imports the daemon (and so psycopg); the other
commands speak to it through ``server.client`` and look at its pid file.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from typing import Any

import click

from ..errors import EXIT_NOT_FOUND, EXIT_OK, Conflict, DaemonUnavailable, StriatumError
from ..errors import UsageError as StriatumUsageError
from .output import emit_json, json_option
from .session import settings

START_PATIENCE = 60.0  # seconds a start waits for the daemon to answer (it may migrate)
LOG_KEPT = 5 << 20  # a log past this size is kept as daemon.log.1 at the next start


@click.group()
def daemon() -> None:
    """The daemon: start, stop, status, call."""


def _place() -> Any:
    from ..server.place import runtime_dir

    return runtime_dir()


def _status(place: Any, holding: str = "principal") -> dict[str, Any]:
    from ..runtime.actor import default_actor
    from ..server.client import Client

    with Client(place, holding=holding, actor=default_actor(),  # type: ignore[arg-type]
                timeout=10) as client:
        found: dict[str, Any] = client.call("server.status")
        return found


def _uptime(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h {minutes}m {secs}s" if hours else
            f"{minutes}m {secs}s" if minutes else f"{secs}s")


def _show(doc: dict[str, Any], said: str, as_json: bool, **more: Any) -> None:
    if as_json:
        emit_json({"running": True, **more, **doc})
        return
    click.echo(f"{said} (pid {doc['pid']}, striatum {doc['version']})")
    click.echo(f"  socket:   {doc['socket']}")
    click.echo(f"  database: {doc['database']}")
    click.echo(f"  uptime:   {_uptime(int(doc['uptime_seconds']))} "
               f"(since {doc['started_at']})")


@daemon.command()
@click.option("--foreground", is_flag=True,
              help="Serve in this process until SIGTERM or Ctrl-C (for systemd, launchd "
                   "and other supervisors); logs go to stderr.")
@click.option("--connections", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Database connections the daemon keeps (and calls it runs at once).")
@click.option("--notify", "notify", default=None, metavar="CMD",
              help="Run CMD (through sh -c) with each new inbox item as JSON on stdin.")
@json_option
def start(foreground: bool, connections: int, notify: str | None, as_json: bool) -> int:
    """Start the daemon of this striatum home, unless it runs already (then say so)."""
    place = _place()
    _, dsn = settings()
    if foreground:
        return _foreground(place, dsn, connections, notify)
    from ..server.place import check_socket_path, prepare, running

    if running(place) is not None:
        doc = _wait_until_answering(place, None, time.monotonic() + START_PATIENCE)
        _show(doc, "the daemon is already running", as_json, started=False)
        return EXIT_OK
    prepare(place)
    check_socket_path(place.socket)  # here, rather than in the log of a daemon that failed
    argv = [sys.executable, "-m", "striatum", "daemon", "start", "--foreground",
            "--connections", str(connections), *(["--notify", notify] if notify else [])]
    # The DSN goes in the environment, not the command line every user can list.
    env = {**os.environ, **({"STRIATUM_DSN": dsn} if dsn else {})}
    with contextlib.suppress(OSError):
        if place.log.stat().st_size > LOG_KEPT:
            os.replace(place.log, place.log.with_name(place.log.name + ".1"))
    fd = os.open(place.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                 cwd=place.path, env=env, start_new_session=True)
    finally:
        os.close(fd)
    doc = _wait_until_answering(place, child, time.monotonic() + START_PATIENCE)
    started = doc["pid"] == child.pid
    _show(doc, "started the daemon" if started else "the daemon is already running",
          as_json, started=started)
    return EXIT_OK


def _foreground(place: Any, dsn: str | None, connections: int, notify: str | None) -> int:
    import logging

    from ..server.daemon import Daemon
    from ..server.place import running

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("striatum").setLevel(logging.INFO)  # the wheel's chatter stays out
    if not Daemon(dsn, place, connections=connections, notify=notify).serve():
        click.echo(f"striatum: the daemon is already running (pid {running(place)})",
                   err=True)
    return EXIT_OK


def _wait_until_answering(place: Any, child: subprocess.Popen[bytes] | None,
                          deadline: float) -> dict[str, Any]:
    """The daemon's status, once it answers; the reason, if the one started fails."""
    while True:
        try:
            return _status(place)
        except DaemonUnavailable:
            pass
        except StriatumError as exc:
            if exc.code != "forbidden":  # tokens written, socket not yet: a moment more
                raise
        if child is not None and child.poll() not in (None, 0):
            raise DaemonUnavailable(f"the daemon did not start (exit {child.returncode}): "
                                    f"{_log_tail(place)}",
                                    hint=f"its log is {place.log}")
        if time.monotonic() > deadline:
            raise DaemonUnavailable(f"the daemon did not answer within {START_PATIENCE:g} s",
                                    hint=f"see its log, {place.log}")
        time.sleep(0.02)


def _log_tail(place: Any) -> str:
    try:
        lines = place.log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line for line in lines[-3:] if line.strip()) or "(empty log)"


@daemon.command()
@click.option("--timeout", default=60.0, show_default=True, type=click.FloatRange(0),
              help="Seconds to wait for the calls in progress to finish.")
@json_option
def stop(timeout: float, as_json: bool) -> int:
    """Stop the daemon: it stops listening, finishes the calls in progress, and exits."""
    import signal

    from ..server.place import running

    place = _place()
    pid = running(place)
    if pid is None:
        place.socket.unlink(missing_ok=True)  # a killed daemon's, if any
        if as_json:
            emit_json({"stopped": False, "running": False})
        else:
            click.echo("the daemon is not running")
        return EXIT_OK
    deadline = time.monotonic() + timeout
    while pid == -1 and time.monotonic() < deadline:  # locked, its pid not written yet
        time.sleep(0.05)
        pid = running(place)
    if pid is not None and pid > 0:
        os.kill(pid, signal.SIGTERM)
    while running(place) is not None:
        if time.monotonic() > deadline:
            raise Conflict(f"the daemon (pid {pid}) has not stopped after {timeout:g} s",
                           hint=f"calls in progress may be long: wait, or `kill -KILL {pid}` "
                                "(the next start cleans up after it)")
        time.sleep(0.02)
    if as_json:
        emit_json({"stopped": True, "pid": pid})
    else:
        click.echo(f"stopped the daemon (pid {pid})")
    return EXIT_OK


@daemon.command()
@json_option
def status(as_json: bool) -> int:
    """Say whether the daemon runs: its pid, socket, database, uptime and version
    (exit 3 when none runs)."""
    from ..server.place import running

    place = _place()
    pid = running(place)
    if pid is None:
        if as_json:
            emit_json({"running": False, "socket": str(place.socket)})
        else:
            click.echo("the daemon is not running (`striatum daemon start` starts it)")
        return EXIT_NOT_FOUND
    try:
        doc = _status(place)
    except DaemonUnavailable as exc:
        raise DaemonUnavailable(f"the daemon (pid {pid}) does not answer: {exc.message}",
                                hint=f"it may be starting; see its log, {place.log}") from exc
    _show(doc, "the daemon is running", as_json)
    return EXIT_OK


@daemon.command()
@click.argument("verb")
@click.option("--params", "params_text", default="{}", show_default=True,
              help="The verb's parameters, as a JSON object.")
@click.option("--as", "holding", type=click.Choice(["principal", "viewer", "none"]),
              default="principal", show_default=True,
              help="Which token to present (none: only a lease verb, with its lease).")
@json_option
def call(verb: str, params_text: str, holding: str, as_json: bool) -> int:
    """Call VERB through the daemon's socket and print its result, a JSON document (for
    debugging); with --json, an error is JSON on stderr too."""
    from ..runtime.actor import default_actor
    from ..server.client import Client

    try:
        params = json.loads(params_text)
    except ValueError as exc:
        raise StriatumUsageError(f"--params is not JSON: {exc}",
                                 hint="e.g. --params '{\"run\": \"RUN\"}'") from exc
    repo, _ = settings()
    with Client(_place(), holding=holding, actor=default_actor(),  # type: ignore[arg-type]
                repo=os.path.abspath(repo)) as client:
        emit_json(client.call(verb, params))
    return EXIT_OK
