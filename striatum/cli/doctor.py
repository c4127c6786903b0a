"""``striatum doctor``: verify the record (chains, replay, guards, manifests)."""

from __future__ import annotations

import click

from ..errors import EXIT_INVALID, EXIT_OK
from .calls import calls
from .output import count, emit_json, json_option


@click.command()
@click.option("--no-anchors", is_flag=True, help="Skip the check against the run manifests.")
@click.option("--strict", is_flag=True,
              help="Also require every payload to be canonical JSON (re-encodes each one in "
                   "Python: slower; the hashes and the manifests already bind the bytes).")
@json_option
def doctor(no_anchors: bool, strict: bool, as_json: bool) -> int:
    """Recompute every hash chain, replay the events, check the guards and manifests.

    Exit 0 when nothing failed (an unanchored chain — no run manifest of --repo
    vouches for it — is said so, not called ok); otherwise 2, naming the first
    bad row.
    """
    with calls() as call:
        report = call("doctor", {"anchors": not no_anchors, "strict": strict})
    if as_json:
        emit_json(report)
    else:
        marks = {"ok": "ok  ", "fail": "FAIL", "unanchored": "----", "stale": "warn"}
        for finding in report["findings"]:
            click.echo(f"{marks[finding['status']]} {finding['check']:<8} {finding['message']}")
        verdict = "doctor found problems" if not report["ok"] else (
            "all checks passed" if report["anchored"]
            else "no problem found; the newest records are not vouched for outside the "
                 "database yet (a run's manifest anchors them when it ends)")
        click.echo(f"{verdict} ({count(report['events'], 'event')}, "
                   f"{count(report['audit_rows'], 'audit row')})")
    return EXIT_OK if report["ok"] else EXIT_INVALID
