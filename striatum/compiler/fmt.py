"""Print a workflow in either syntax, from the IR: ``fmt`` of ``fmt`` is a fixed point.

JSON is printed the way people write it by hand: a list or object that fits
on one line stays on one line, anything longer opens up, one item a line.
"""

from __future__ import annotations

import json
from typing import Any

from .ir import Workflow, to_document

WIDTH = 88


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    return _scalar(value)


def _pretty(value: Any, indent: int, prefix_len: int, top: bool = False) -> str:
    if not isinstance(value, dict | list) or not value:
        return _inline(value)
    flat = _inline(value)
    # Jobs and the top level always open up: they are what a reader scans.
    if not top and indent + prefix_len + len(flat) <= WIDTH and "\n" not in flat:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = [f"{pad}{_scalar(k)}: {_pretty(v, indent + 2, len(_scalar(k)) + 2)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + _pretty(v, indent + 2, 0, top=isinstance(v, dict) and "id" in v)
             for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def format_value(value: Any) -> str:
    """Any JSON value as ``fmt`` writes a workflow's parts: what fits on a line, inline."""
    return _pretty(value, 0, 0)


def format_json(document: dict[str, Any]) -> str:
    return _pretty(document, 0, 0, top=True) + "\n"


def format_workflow(workflow: Workflow, to: str) -> str:
    if to == "dsl":
        from .dsl.printer import to_dsl

        return to_dsl(workflow)
    return format_json(to_document(workflow))
