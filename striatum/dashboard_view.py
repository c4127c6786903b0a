"""What ``striatum dashboard`` shows, drawn from the verbs' documents alone.

A snapshot is the documents of one refresh: ``run.list``'s runs, and for the
selected run ``run.status``, ``run.plan`` (its waves) and ``run.why``, plus the
``inbox``. ``view`` turns it into Rich renderables; ``plain`` prints the same
into text with no colour and no cursor movement (what a pipe or an agent
reads). Nothing here reads the database or the clock: a test feeds documents.
"""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .durations import spoken

Snapshot = dict[str, Any]

# A state's colour says whether it needs an eye: yellow is in a worker's hands,
# magenta waits for a human, red ended badly, green is done, dim is not yet or never.
STATE_STYLE = {
    "prepared": "dim", "pending": "dim", "ready": "cyan", "leased": "yellow",
    "running": "yellow", "awaiting_decision": "bold magenta", "blocked": "bold magenta",
    "succeeded": "green", "completed": "green", "skipped": "dim", "failed": "bold red",
    "cancelled": "red",
}
LEASE_KINDS = ("leased", "lease_stale", "lease_expired")
KEYS = "↑/↓ or j/k: select a run · q: quit"


def view(snapshot: Snapshot, footer: str | None = None,
         rows: int | None = None) -> RenderableType:
    """The whole screen: runs, the selected run's jobs by wave, why, and the inbox; with
    ``rows``, at most that many runs, a window that holds the selected one."""
    parts: list[RenderableType] = [_runs(snapshot, rows)]
    if snapshot.get("run") is not None:
        parts += [_jobs(snapshot), _why(snapshot["why"])]
    parts.append(_inbox(snapshot["inbox"]))
    if footer:
        parts.append(Text(footer, style="dim"))
    spaced: list[RenderableType] = []
    for part in parts:
        spaced += [part, Text("")]
    return Group(*spaced[:-1])


def plain(snapshot: Snapshot, width: int = 120, rows: int | None = None) -> str:
    """The snapshot as plain text: what ``--once`` and a pipe print."""
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None, force_terminal=False,
                      no_color=True, highlight=False, emoji=False)
    console.print(view(snapshot, rows=rows))
    return out.getvalue()


def _heading(text: str) -> Text:
    return Text(text, style="bold underline")


def _state(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def _runs(snapshot: Snapshot, rows: int | None) -> RenderableType:
    runs = snapshot["runs"]
    if not runs:
        return Group(_heading("runs"), Text("no runs yet: striatum run prepare --workflow "
                                            "FILE --start"))
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("", "run", "state", "workflow", "executions", "repo"):
        table.add_column(column, no_wrap=True)
    ids = [run["run"] for run in runs]
    first = 0
    if rows is not None and len(runs) > rows:
        at = ids.index(snapshot["selected"]) if snapshot.get("selected") in ids else 0
        first = max(0, min(at - rows // 2, len(runs) - rows))
    shown = runs[first:first + rows] if rows is not None else runs
    for run in shown:
        chosen = run["run"] == snapshot.get("selected")
        table.add_row("▶" if chosen else " ", run["run"], _state(run["status"]),
                      run["workflow"], f"{run['executions']} of {run['worst_case']}",
                      _tail(run["repo"]), style="reverse" if chosen else None)
    heading = "runs (newest first)"
    if len(shown) < len(runs):
        heading += f": {first + 1} to {first + len(shown)} of {len(runs)}"
    return Group(_heading(heading), table)


def _tail(path: str, room: int = 40) -> str:
    """A repository's path kept to one line: its end, which names it, when it is long."""
    return path if len(path) <= room else "…" + path[-(room - 1):]


def _jobs(snapshot: Snapshot) -> RenderableType:
    status, plan = snapshot["run"], snapshot["plan"]
    jobs = {job["job"]: job for job in status["jobs"]}
    leases = {hold["job"]: hold for hold in snapshot["why"]["holds"]
              if hold["kind"] in LEASE_KINDS}
    tree = Tree(Text.assemble(("jobs of ", "bold"), (status["run"], "bold"), " ",
                              _state(status["status"]),
                              f"  {status['workflow']}, {status['executions']} of "
                              f"{status['worst_case']} executions"))
    # Columns line up across waves: each as wide as its longest value in this run.
    widths = [max((len(str(j[key])) for j in jobs.values()), default=0)
              for key in ("job", "status", "lane")]
    for number, wave in enumerate(plan["waves"], 1):
        branch = tree.add(Text(f"wave {number}", style="bold"))
        for job_id in wave:
            if job_id in jobs:
                branch.add(_job_line(jobs[job_id], leases.get(job_id), widths))
    return tree


def _job_line(job: dict[str, Any], lease: dict[str, Any] | None, widths: list[int]) -> Text:
    name, state, lane = widths
    line = Text.assemble((f"{job['job']:<{name}}", "bold"), "  ",
                         _state(f"{job['status']:<{state}}"),
                         f"  lane {job['lane']:<{lane}}  pass {job['iteration'] + 1}"
                         f"  attempt {job['attempt'] + 1}")
    if job["status"] == "leased":
        line.append(f"  lease {job['lease_owner']}")
        if lease is not None:
            line.append(_lease_age(lease), style="red" if lease["kind"] != "leased" else "")
    if job.get("verdict"):
        line.append(f"  verdict {job['verdict']}")
    if job.get("chosen"):
        line.append(f"  chose {job['chosen']}")
    return line


def _lease_age(lease: dict[str, Any]) -> str:
    beat, left = lease.get("heartbeat_age_seconds"), lease.get("expires_in_seconds")
    said = f" (beat {spoken(beat)} ago" if beat is not None else " ("
    if lease["kind"] == "lease_expired":
        return said + ", expired)"
    stale = ", stale" if lease["kind"] == "lease_stale" else ""
    return said + (f", expires in {spoken(left)}" if left is not None else "") + stale + ")"


def _why(why: dict[str, Any]) -> RenderableType:
    lines: list[RenderableType] = [_heading("why"), Text(why["summary"])]
    for hold in why["holds"]:
        if hold["text"] == why["summary"]:
            continue
        lines.append(Text.assemble("  ", (f"{hold['kind']:<13}", "bold"), " ", hold["text"]))
        if hold["command"]:
            lines.append(Text(f"  {'':<13} → {hold['command']}", style="cyan"))
    if why["next"]:
        lines.append(Text(f"next: {why['next']}", style="bold cyan"))
    return Group(*lines)


def _inbox(inbox: dict[str, Any]) -> RenderableType:
    items = inbox["items"]
    lines: list[RenderableType] = [_heading(f"inbox ({len(items)})")]
    if not items:
        lines.append(Text("nothing waits for a human", style="dim"))
    for item in items:
        lines.append(Text.assemble((f"{item['kind']:<13}", "bold magenta"),
                                   f" {item['run']} {item['job']} "
                                   f"({spoken(item['age_seconds'])}, {item['workflow']})"))
        lines.append(Text(f"{'':<13} {item['text']}"))
        if item["command"]:
            lines.append(Text(f"{'':<13} → {item['command']}", style="cyan"))
    return Group(*lines)


def fingerprint(snapshot: Snapshot) -> str:
    """What a change of the snapshot means when it is printed once per change (ages and
    clocks left out, so a quiet run prints nothing new)."""
    import json

    run, why = snapshot.get("run"), snapshot.get("why")
    return json.dumps([
        [(r["run"], r["status"], r["executions"]) for r in snapshot["runs"]],
        snapshot.get("selected"),
        [(j["job"], j["status"], j["iteration"], j["attempt"], j["lease_owner"])
         for j in run["jobs"]] if run else None,
        [(h["kind"], h["job"]) for h in why["holds"]] if why else None,
        [(i["kind"], i["run"], i["job"]) for i in snapshot["inbox"]["items"]],
    ])
