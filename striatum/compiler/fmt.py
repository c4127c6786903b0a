"""Print a workflow in either syntax, from the IR: ``fmt`` of ``fmt`` is a fixed point."""

from __future__ import annotations

import json

from .ir import Workflow, to_document


def format_workflow(workflow: Workflow, to: str) -> str:
    if to == "dsl":
        from .fmt_dsl import to_dsl

        return to_dsl(workflow)
    return json.dumps(to_document(workflow), indent=2, ensure_ascii=False) + "\n"
