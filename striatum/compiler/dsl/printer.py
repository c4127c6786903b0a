"""The canonical DSL text of a workflow: what ``fmt --to dsl`` writes.

Everything left at its default is left out (as ``ir.to_document`` does), and
items come in one fixed order, so ``to_dsl`` of the parsed output is the same
text byte for byte; parsing it gives back an equal IR.
"""

from __future__ import annotations

import json
import re

from ..ir import DEFAULT_MAX_ATTEMPTS, Job, Lane, Scalar, Workflow, budget_document

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDENT = "  "


def to_dsl(workflow: Workflow) -> str:
    """The workflow as DSL text; raises ValueError for a name no DSL can spell."""
    sections = [_header(workflow), _vars(workflow), _final(workflow), _budget(workflow),
                _lanes(workflow), _jobs(workflow)]
    return "\n\n".join(section for section in sections if section) + "\n"


def _header(workflow: Workflow) -> str:
    title = "" if workflow.title is None else " " + _string(workflow.title)
    return f"workflow {_name(workflow.name)}{title}"


def _vars(workflow: Workflow) -> str:
    return "\n".join(f"var {_name(name)} = {_value(value)}" for name, value in workflow.vars)


def _final(workflow: Workflow) -> str:
    return f"final {_names(workflow.final)}" if workflow.final else ""


def _budget(workflow: Workflow) -> str:
    if workflow.budget is None:
        return ""
    limits = budget_document(workflow.budget)
    return "budget " + " ".join(f"{key} {value}" for key, value in limits.items())


def _lanes(workflow: Workflow) -> str:
    width = max((len(lane.name) for lane in workflow.lanes), default=0)
    return "\n".join(f"lane {_name(lane.name):<{width}} = {_lane(lane)}"
                     for lane in workflow.lanes)


def _lane(lane: Lane) -> str:
    if lane.kind != "command":
        return lane.kind
    text = "[" + ", ".join(_string(arg) for arg in lane.command) + "]"
    if lane.stdin is not None:
        text += f" stdin {_string(lane.stdin)}"
    if lane.timeout is not None:
        text += f" timeout {lane.timeout}"
    if lane.env:
        pairs = ", ".join(f"{_name(key)} = {_string(value)}" for key, value in lane.env)
        text += f" env {{ {pairs} }}"
    if lane.sandbox:
        text += " sandbox"
    return text


def _jobs(workflow: Workflow) -> str:
    # Jobs without a body sit on consecutive lines; a job with a body stands
    # apart, so the eye finds where each one starts.
    text = ""
    previous_short = True
    for job in workflow.jobs:
        block = _job(job)
        short = "\n" not in block
        if text:
            text += "\n" if short and previous_short else "\n\n"
        text += block
        previous_short = short
    return text


def _job(job: Job) -> str:
    header = f"{job.kind} {_name(job.id)} by {_name(job.lane)}"
    if job.needs:
        header += f" after {_names(job.needs)}"
    items = _body(job)
    if not items:
        return header
    return header + " {\n" + "".join(f"{_INDENT}{item}\n" for item in items) + "}"


def _body(job: Job) -> list[str]:
    items = []
    if job.title is not None:
        items.append(f"title {_string(job.title)}")
    if job.prompt is not None:
        inline = "text " if job.prompt.source == "text" else ""
        items.append(f"prompt {inline}{_string(job.prompt.value)}")
    for keyword, paths in (("produces", job.produces), ("consumes", job.consumes),
                           ("writes", job.writes)):
        if paths:
            items.append(f"{keyword} " + ", ".join(_string(path) for path in paths))
    if job.isolation != "none":
        items.append(f"isolation {job.isolation}")
    if job.max_attempts != DEFAULT_MAX_ATTEMPTS:
        items.append(f"attempts {job.max_attempts}")
    if job.revise is not None:
        revise = f"revise {_name(job.revise.target)} max {job.revise.max}"
        if job.revise.on_exhausted != "escalate":
            revise += f" on_exhausted {job.revise.on_exhausted}"
        if job.revise.on_repeat != "continue":
            revise += f" on_repeat {job.revise.on_repeat}"
        items.append(revise)
    for choice, successors in job.choices:
        items.append(f"choice {_name(choice)}" + (f" -> {_names(successors)}" if successors
                                                  else ""))
    return items


def _value(value: Scalar) -> str:
    # bool first: True is also an int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return _string(value)


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _name(name: str) -> str:
    # Every name position in the grammar takes only an identifier, so a keyword
    # is fine here; anything else would not parse back.
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{name!r} is not an identifier, so the DSL cannot spell it")
    return name


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(_name(name) for name in names)
