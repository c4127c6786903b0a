"""``striatum doctor``: verify the record (chains, replay, guards, manifests)."""

from __future__ import annotations

import click

from ..errors import EXIT_INVALID, EXIT_OK
from .output import emit_json, json_option
from .session import settings, store


@click.command()
@click.option("--no-anchors", is_flag=True, help="Skip the check against the run manifests.")
@json_option
def doctor(no_anchors: bool, as_json: bool) -> int:
    """Recompute every hash chain, replay the events, check the guards and manifests.

    Exit 0 only when everything holds; otherwise 2, naming the first bad row.
    """
    from ..runtime.doctor import doctor as run_doctor

    repo, _ = settings()
    with store() as opened:
        report = run_doctor(opened, None if no_anchors else repo)
    if as_json:
        emit_json(report.to_json())
    else:
        for finding in report.findings:
            mark = "ok  " if finding.ok else "FAIL"
            click.echo(f"{mark} {finding.check:<8} {finding.message}")
        click.echo(f"{'all checks passed' if report.ok else 'doctor found problems'} "
                   f"({report.events} events, {report.audit_rows} audit rows)")
    return EXIT_OK if report.ok else EXIT_INVALID
