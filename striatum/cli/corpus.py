"""``striatum corpus``: export the record as a bundle, and verify a bundle offline."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import EXIT_OK, UsageError
from .output import count, emit_json, is_terminal, json_option
from .refs import RUN, ResolvingGroup
from .session import settings, store


@click.group(cls=ResolvingGroup)
def corpus() -> None:
    """Provenance to hand over: export runs as a verifiable bundle; verify one."""


@corpus.command("export")
@click.option("--run", "run_id", type=RUN, default=None,
              help="Export this run (its id, a unique part of it, or latest).")
@click.option("--repo", "this_repo", is_flag=True,
              help="Export every run of the repository (the global --repo, default .).")
@click.option("--all", "every", is_flag=True, help="Export every run of every repository.")
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False),
              help="The bundle's folder (new, or an earlier bundle to replace).")
@click.option("--keep-paths", is_flag=True,
              help="Leave absolute paths as recorded (events naming one then verify in full).")
@json_option
def export_command(run_id: str | None, this_repo: bool, every: bool, out: str,
                   keep_paths: bool, as_json: bool) -> int:
    """Write the runs, jobs, events, verdicts, artifacts and audit rows as JSON Lines with
    their digests and chain segments, secrets redacted; byte-identical when nothing
    changed."""
    from ..corpus.export import export

    if sum((run_id is not None, this_repo, every)) != 1:
        raise UsageError("say what to export: one of --run RUN, --repo or --all",
                         hint="`striatum corpus export --run RUN -o DIR`")
    repo, _ = settings()
    with store() as opened:
        done = export(opened, Path(out), run=run_id, repo=repo if this_repo else None,
                      paths=not keep_paths,
                      progress=(lambda line: click.echo(line, err=True))
                      if is_terminal() else None)
    if as_json:
        emit_json(done.to_json())
    else:
        summary = done.to_json()
        lines = summary["files"]
        click.echo(f"exported {count(lines['runs.jsonl'], 'run')}, "
                   f"{count(lines['events.jsonl'], 'event')}, "
                   f"{count(lines['audit.jsonl'], 'audit row')}, "
                   f"{count(summary['artifacts'], 'artifact file')} to {out}")
        click.echo(f"bundle sha256 {summary['sha256']} (of bundle.json: keep it, or sign "
                   "it, to tell this bundle from any other)")
        redacted = summary["redacted"]
        if redacted:
            click.echo("redacted: " + ", ".join(f"{rule} x{n}" for rule, n in redacted.items()))
    return EXIT_OK


@corpus.command("verify")
@click.argument("folder", type=click.Path(file_okay=False))
@click.option("--anchor", "anchors", multiple=True, type=click.Path(dir_okay=False),
              help="A run's manifest.json whose chain heads the bundle must hold (repeatable).")
@json_option
def verify_command(folder: str, anchors: tuple[str, ...], as_json: bool) -> int:
    """Recompute every digest and chain link of a bundle (no database needed).

    Exit 0 when it verifies; 2 naming the first file, line and mismatch; 3 when the
    folder holds no bundle (or an --anchor is missing)."""
    from ..corpus.verify import verify

    report = verify(Path(folder), [Path(a) for a in anchors])
    if as_json:
        emit_json(report.to_json())
    else:
        click.echo(f"ok   {len(report.chains)} chain segments: "
                   f"{count(report.recomputed, 'row')} rehashed from their payload, "
                   f"{report.redacted} redacted (linked, not rehashed), "
                   f"{report.elided} of other runs (linked)")
        click.echo(f"ok   {count(report.files, 'file')} match bundle.json; "
                   f"{count(report.artifacts, 'artifact')} and "
                   f"{count(report.statements, 'statement')} match the chained digests")
        if anchors:
            click.echo(f"ok   {count(report.anchors, 'chain head')} of "
                       f"{count(len(anchors), 'run manifest')} found with their hashes")
        click.echo(f"bundle verifies: {folder} (sha256 {report.sha256})")
    return EXIT_OK
