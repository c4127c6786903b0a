"""``striatum db ...``: where the database is, its schema, the embedded server."""

from __future__ import annotations

import click

from ..errors import EXIT_OK
from .output import count, emit_json, json_option
from .session import settings


@click.group()
def db() -> None:
    """The database: migrate, url, status, stop."""


@db.command()
@json_option
def migrate(as_json: bool) -> int:
    """Apply the schema migrations (idempotent; safe to run concurrently)."""
    from ..runtime.config import resolve
    from ..runtime.migrate import migrate as run_migrations

    database = resolve(settings()[1])
    report = run_migrations(database.owner_dsn)
    if as_json:
        emit_json({"applied": report.applied, "version": report.latest,
                   "embedded": database.embedded, "notices": report.notices})
        return EXIT_OK
    if report.applied:
        click.echo(f"applied {count(len(report.applied), 'migration')} "
                   f"({', '.join(map(str, report.applied))}); schema is at version "
                   f"{report.latest}")
    else:
        click.echo(f"schema is up to date (version {report.latest})")
    for notice in report.notices:
        click.echo(f"note: {notice}")
    return EXIT_OK


@db.command()
@json_option
def url(as_json: bool) -> int:
    """Print the DSN striatum uses (starting the embedded server if that is the one)."""
    from ..runtime.config import resolve

    database = resolve(settings()[1])
    if as_json:
        emit_json({"dsn": database.dsn, "embedded": database.embedded})
    else:
        click.echo(database.dsn)
    return EXIT_OK


@db.command()
@json_option
def status(as_json: bool) -> int:
    """Say which database is in use, where it lives, and how to stop it."""
    from ..runtime.embedded import info
    from ..runtime.migrate import LATEST, schema_version

    dsn = settings()[1]
    if dsn:
        version = schema_version(dsn)
        doc = {"mode": "dsn", "dsn": dsn, "schema_version": version, "latest": LATEST}
        lines = [f"using the server at {dsn} (from --dsn / STRIATUM_DSN)",
                 f"schema version {version} of {LATEST}"]
    else:
        embedded = info()
        version = schema_version(embedded.dsn) if embedded.running and embedded.dsn else 0
        doc = {"mode": "embedded", "running": embedded.running, "dsn": embedded.dsn,
               "data_dir": str(embedded.pgdata), "pid": embedded.pid,
               "schema_version": version, "latest": LATEST}
        lines = [f"embedded PostgreSQL in {embedded.pgdata}",
                 f"running (pid {embedded.pid}) at {embedded.dsn}" if embedded.running
                 else "not running: the next command that needs it starts it",
                 f"schema version {version} of {LATEST}" if embedded.running else "",
                 "stop it with `striatum db stop`" if embedded.running else ""]
    if as_json:
        emit_json(doc)
    else:
        click.echo("\n".join(line for line in lines if line))
    return EXIT_OK


@db.command()
@json_option
def stop(as_json: bool) -> int:
    """Stop the embedded PostgreSQL server (it starts again on demand)."""
    from ..runtime.embedded import stop as stop_server

    stopped = stop_server()
    if as_json:
        emit_json({"stopped": stopped})
    else:
        click.echo("stopped the embedded PostgreSQL" if stopped else "it was not running")
    return EXIT_OK
