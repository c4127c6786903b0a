"""Draw the workflow graph as Mermaid, Graphviz DOT or JSON.

Revision edges are drawn apart from ``needs`` edges (dashed, pointing back)
and labelled with their budget, so a reader sees every loop and its bound.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import UsageError
from .graph import WorkflowGraph
from .text import echo

FORMATS = ("mermaid", "dot", "json")


def _choice_labels(wg: WorkflowGraph) -> dict[tuple[str, str], str]:
    labels: dict[tuple[str, str], str] = {}
    for job in wg.workflow.jobs:
        for name, successors in job.choices:
            for succ in successors:
                key = (job.id, succ)
                labels[key] = f"{labels[key]} | {name}" if key in labels else name
    return labels


def _edges(wg: WorkflowGraph) -> list[tuple[str, str]]:
    return [(need, job.id) for job in wg.workflow.jobs for need in job.needs]


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def mermaid(wg: WorkflowGraph) -> str:
    # Mermaid treats '-' and some words as syntax, so nodes get neutral ids.
    node = {job.id: f"n{job.index}" for job in wg.workflow.jobs}
    shapes = {"task": ('["', '"]'), "review": ('{{"', '"}}'), "checkpoint": ('{"', '"}')}
    lines = ["flowchart TD"]
    for job in wg.workflow.jobs:
        left, right = shapes[job.kind]
        text = _label(f"{job.id} · {job.lane}").replace('\\"', "#quot;")
        lines.append(f"  {node[job.id]}{left}{text}{right}")
    labels = _choice_labels(wg)
    for need, job_id in _edges(wg):
        label = labels.get((need, job_id))
        arrow = f' -- "{_label(label)}" --> ' if label else " --> "
        lines.append(f"  {node[need]}{arrow}{node[job_id]}")
    for region in wg.regions.values():
        lines.append(f'  {node[region.reviewer]} -. "revise ≤{region.max}" .-> '
                     f"{node[region.target]}")
    return "\n".join(lines) + "\n"


def dot(wg: WorkflowGraph) -> str:
    shapes = {"task": "box", "review": "hexagon", "checkpoint": "diamond"}
    lines = [f'digraph "{_label(wg.workflow.name)}" {{', "  rankdir=TB;",
             '  node [fontname="Helvetica"];']
    for job in wg.workflow.jobs:
        lines.append(f'  "{_label(job.id)}" [shape={shapes[job.kind]}, '
                     f'label="{_label(job.id)}\\n{_label(job.lane)}"];')
    labels = _choice_labels(wg)
    for need, job_id in _edges(wg):
        label = labels.get((need, job_id))
        attrs = f' [label="{_label(label)}"]' if label else ""
        lines.append(f'  "{_label(need)}" -> "{_label(job_id)}"{attrs};')
    for region in wg.regions.values():
        lines.append(f'  "{_label(region.reviewer)}" -> "{_label(region.target)}" '
                     f'[style=dashed, color="#b45309", constraint=false, '
                     f'label="revise ≤{region.max}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_document(wg: WorkflowGraph) -> dict[str, Any]:
    labels = _choice_labels(wg)
    return {
        "workflow": wg.workflow.name,
        "nodes": [{"id": j.id, "kind": j.kind, "lane": j.lane} for j in wg.workflow.jobs],
        "edges": [{"from": a, "to": b, "type": "needs", "choice": labels.get((a, b))}
                  for a, b in _edges(wg)],
        "revisions": [{"from": r.reviewer, "to": r.target, "max": r.max,
                       "on_exhausted": r.on_exhausted} for r in wg.regions.values()],
    }


def render(wg: WorkflowGraph, fmt: str) -> str:
    """The drawing in ``fmt``, one of ``FORMATS``."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown graph format {echo(fmt)}", hint="formats: " + ", ".join(FORMATS))
    if fmt == "mermaid":
        return mermaid(wg)
    if fmt == "dot":
        return dot(wg)
    return json.dumps(graph_document(wg), indent=2, ensure_ascii=False) + "\n"
