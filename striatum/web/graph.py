"""A run's graph as SVG, laid out here from ``run.graph``'s document: by Graphviz ``dot``
when it is on PATH (for runs of up to ``DOT_MAX_JOBS`` jobs), else in layers, one column
per wave of the plan.

Each node is a ``<g class="node s-STATE" data-job=...>``: the stylesheet colours it by
state, so the live refresh only swaps this markup. A revision edge (a review's loop back
to the job it revises) is dashed and labelled with the passes it has left; each node
shows its pass (the iteration, from 1) when it has been revised.
"""

from __future__ import annotations

import shutil
import subprocess
from html import escape
from typing import Any

NODE_W, NODE_H = 150, 44
GAP_X, GAP_Y = 70, 22
MARGIN = 20
DOT_SECONDS = 5.0
# Past this many jobs dot takes about a second a drawing (1,000 jobs: ~1 s), more than a
# page may; the layered layout draws 1,000 in ~12 ms.
DOT_MAX_JOBS = 150


def render(graph: dict[str, Any]) -> str:
    """The SVG of the run's graph (Graphviz when present and the run is not large, else
    the layered layout)."""
    dot = shutil.which("dot")
    if dot is not None and len(graph["jobs"]) <= DOT_MAX_JOBS:
        drawn = _by_dot(dot, graph)
        if drawn is not None:
            return drawn
    return layered(graph)


def _label(node: dict[str, Any]) -> str:
    passes = f" · pass {node['iteration'] + 1}" if node["iteration"] else ""
    return f"{node['job']}{passes}"


def layered(graph: dict[str, Any]) -> str:
    """One column per wave, the jobs of a wave stacked in file order."""
    place: dict[str, tuple[int, int]] = {}
    columns: dict[int, int] = {}
    wave_of = {job: n for n, wave in enumerate(graph["waves"]) for job in wave}
    for node in graph["jobs"]:
        wave = wave_of.get(node["job"], 0)
        row = columns.get(wave, 0)
        columns[wave] = row + 1
        place[node["job"]] = (MARGIN + wave * (NODE_W + GAP_X),
                              MARGIN + 16 + row * (NODE_H + GAP_Y))
    width = MARGIN * 2 + max(columns, default=0) * (NODE_W + GAP_X) + NODE_W
    height = MARGIN * 2 + 16 + max(columns.values(), default=1) * (NODE_H + GAP_Y)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="run-graph" role="img" '
             f'aria-label="graph of run {escape(graph["run"])}" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
             'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
             '<path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead"/></marker></defs>']
    for edge in graph["edges"]:
        (x1, y1), (x2, y2) = place[edge["from"]], place[edge["to"]]
        parts.append(f'<path class="edge" marker-end="url(#arrow)" d="M {x1 + NODE_W} '
                     f'{y1 + NODE_H // 2} L {x2} {y2 + NODE_H // 2}"/>')
    for loop in graph["revisions"]:
        (x1, y1), (x2, y2) = place[loop["from"]], place[loop["to"]]
        top = min(y1, y2) - 12
        parts.append(f'<path class="edge revision" marker-end="url(#arrow)" '
                     f'd="M {x1 + NODE_W // 2} {y1} C {x1 + NODE_W // 2} {top}, '
                     f'{x2 + NODE_W // 2} {top}, {x2 + NODE_W // 2} {y2}"/>')
        parts.append(f'<text class="revision-label" x="{(x1 + x2 + NODE_W) // 2}" '
                     f'y="{top + 2}" text-anchor="middle">{_left(loop)}</text>')
    for node in graph["jobs"]:
        x, y = place[node["job"]]
        parts.append(_node(node, x, y))
    parts.append("</svg>")
    return "".join(parts)


def _node(node: dict[str, Any], x: int, y: int) -> str:
    job, state = escape(node["job"]), escape(node["status"])
    return (f'<g id="job-{job}" class="node s-{state}" data-job="{job}">'
            f'<title>{job}: {state} ({escape(node["kind"])}, lane {escape(node["lane"])})'
            f'</title><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 8}" y="{y + 18}" class="name">{escape(_label(node))}</text>'
            f'<text x="{x + 8}" y="{y + 35}" class="state">{state}</text></g>')


def _left(loop: dict[str, Any]) -> str:
    return f"{loop['left']} of {loop['max']} revisions left"


def dot_source(graph: dict[str, Any]) -> str:
    lines = ["digraph run {", "rankdir=LR;", 'node [shape=box style="rounded,filled" '
             'fontname="sans-serif" fontsize=11];',
             'edge [fontname="sans-serif" fontsize=10];']
    for node in graph["jobs"]:
        lines.append(f'{_quote(node["job"])} [id={_quote("job-" + node["job"])} '
                     f'class={_quote("node s-" + node["status"])} '
                     f'label={_quote(_label(node) + chr(10) + node["status"])}];')
    for edge in graph["edges"]:
        lines.append(f'{_quote(edge["from"])} -> {_quote(edge["to"])};')
    for loop in graph["revisions"]:
        lines.append(f'{_quote(loop["from"])} -> {_quote(loop["to"])} [style=dashed '
                     f'constraint=false class="revision" '
                     f'label={_quote(_left(loop))}];')
    lines.append("}")
    return "\n".join(lines)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _by_dot(dot: str, graph: dict[str, Any]) -> str | None:
    """Graphviz's layout, its XML prologue dropped so it inlines; None if dot fails (the
    layered layout stands in)."""
    try:
        done = subprocess.run([dot, "-Tsvg"], input=dot_source(graph), capture_output=True,
                              text=True, timeout=DOT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    start = done.stdout.find("<svg")
    if done.returncode != 0 or start < 0:
        return None
    return done.stdout[start:].replace("<svg ", '<svg class="run-graph" role="img" '
                                       f'aria-label="graph of run {escape(graph["run"])}" ', 1)
