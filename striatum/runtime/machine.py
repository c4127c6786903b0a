"""The job and run lifecycles, declared once, as data, with ``transitions``.

This declaration is the only place a transition is defined: the engine asks
``check_job`` / ``check_run`` before it writes anything, ``doctor`` checks
every recorded event against it, and docs/state-machines.md is generated
from it (``python -m striatum.runtime.machine``).

The machines are built once at import: constructing a ``transitions.Machine``
costs about as much as a whole database transaction, while looking a
transition up in a built one costs microseconds.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from ..errors import Conflict

JOB_STATES = ["pending", "ready", "leased", "awaiting_decision", "succeeded", "failed",
              "skipped", "cancelled"]
JOB_TERMINAL = frozenset({"failed", "cancelled"})

JOB_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "ready", "source": "pending", "dest": "ready"},
    {"trigger": "skip", "source": "pending", "dest": "skipped"},
    {"trigger": "claim", "source": "ready", "dest": "leased"},
    # A checkpoint that becomes ready waits for a decision instead of a worker.
    {"trigger": "await_decision", "source": "ready", "dest": "awaiting_decision"},
    {"trigger": "decide", "source": "awaiting_decision", "dest": "succeeded"},
    {"trigger": "complete", "source": "leased", "dest": "succeeded"},
    # An attempt that crashed, timed out or was handed back, with attempts left.
    {"trigger": "retry", "source": "leased", "dest": "ready"},
    {"trigger": "release", "source": "leased", "dest": "ready"},
    {"trigger": "expire", "source": "leased", "dest": "ready"},
    {"trigger": "fail", "source": ["leased", "awaiting_decision"], "dest": "failed"},
    # A review whose budget is spent waits for a human (on_exhausted: escalate).
    {"trigger": "escalate", "source": "leased", "dest": "awaiting_decision"},
    # needs_revision: the region goes back to pending, whatever it had reached.
    {"trigger": "reset", "source": ["ready", "leased", "awaiting_decision", "succeeded",
                                    "skipped"], "dest": "pending"},
    {"trigger": "cancel", "source": ["pending", "ready", "leased", "awaiting_decision"],
     "dest": "cancelled"},
    # `run retry`: a human runs a failed run's failed job, and what its failure
    # cancelled, again (a pass beyond the plan, granted like a revision).
    {"trigger": "rerun", "source": ["failed", "cancelled"], "dest": "pending"},
]

RUN_STATES = ["prepared", "running", "blocked", "completed", "failed", "cancelled"]
RUN_TERMINAL = frozenset({"completed", "failed", "cancelled"})

RUN_TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": "prepared", "dest": "running"},
    {"trigger": "block", "source": "running", "dest": "blocked"},
    {"trigger": "resume", "source": "blocked", "dest": "running"},
    {"trigger": "complete", "source": "running", "dest": "completed"},
    {"trigger": "fail", "source": ["running", "blocked"], "dest": "failed"},
    {"trigger": "cancel", "source": ["prepared", "running", "blocked"], "dest": "cancelled"},
    {"trigger": "retry", "source": "failed", "dest": "running"},
]


@cache
def _machine(kind: str) -> Any:
    from transitions import Machine

    states, table, initial = ((JOB_STATES, JOB_TRANSITIONS, "pending") if kind == "job"
                              else (RUN_STATES, RUN_TRANSITIONS, "prepared"))
    return Machine(model=None, states=states, transitions=table, initial=initial,
                   auto_transitions=False)


def destination(kind: str, trigger: str, state: str) -> str | None:
    """Where ``trigger`` leads from ``state``, or None when the declaration forbids it."""
    found = _machine(kind).get_transitions(trigger=trigger, source=state)
    return str(found[0].dest) if found else None


def allowed(kind: str, state: str) -> list[str]:
    return sorted(str(t) for t in _machine(kind).get_triggers(state))


def _check(kind: str, trigger: str, state: str, name: str) -> str:
    dest = destination(kind, trigger, state)
    if dest is None:
        options = allowed(kind, state)
        raise Conflict(
            f"{kind} {name} is {state!r}: {trigger!r} is not allowed from there",
            hint=("allowed from " + repr(state) + ": " + ", ".join(options)) if options
            else f"{state!r} is final", state=state, trigger=trigger)
    return dest


def check_job(trigger: str, state: str, name: str = "") -> str:
    return _check("job", trigger, state, name)


def check_run(trigger: str, state: str, name: str = "") -> str:
    return _check("run", trigger, state, name)


def mermaid(kind: str) -> str:
    """A state diagram of the declaration, drawn by ``transitions`` itself."""
    from transitions.extensions.diagrams import GraphMachine

    class Model:
        pass

    states, table, initial = ((JOB_STATES, JOB_TRANSITIONS, "pending") if kind == "job"
                              else (RUN_STATES, RUN_TRANSITIONS, "prepared"))
    model = Model()
    GraphMachine(model=model, states=states, transitions=table, initial=initial,
                 auto_transitions=False, graph_engine="mermaid", show_state_attributes=False,
                 title=f"{kind} lifecycle")
    text: str = model.get_graph().draw(None)  # type: ignore[attr-defined]
    # Drop the highlight of the current state (the docs show the lifecycle, not a
    # job), and make the front matter a mapping, which Mermaid requires.
    lines = [line for line in text.splitlines()
             if not line.strip().startswith(("classDef", "Class "))]
    return "\n".join(f"title: {line}" if line == f"{kind} lifecycle" else line
                     for line in lines) + "\n"


def state_machines_doc() -> str:
    parts = ["# State machines", "",
             "Generated from `striatum/runtime/machine.py` by "
             "`python -m striatum.runtime.machine > docs/state-machines.md`; "
             "do not edit by hand. The engine refuses any transition not drawn here "
             "(exit code 4, naming the current state).", ""]
    for kind, terminal in (("job", JOB_TERMINAL), ("run", RUN_TERMINAL)):
        parts += [f"## {kind.capitalize()}", "", "```mermaid", mermaid(kind).rstrip(), "```", "",
                  f"Final states: {', '.join(sorted(terminal))}.", ""]
    return "\n".join(parts)


if __name__ == "__main__":
    print(state_machines_doc(), end="")
