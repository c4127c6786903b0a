"""Who an attempt's lane ran: the executable its program resolved to and the model its
command names, chained as the attempt's ``attempt.start`` event before the lane starts.
An attempt an operator claims itself (``job claim``) chains one too, in its claim's own
statement (``leases.take``, the query ``claim_job_started``): ``"by": "operator"``, the
lease's owner, no executable, and the model the operator stated (``--model``,
``STRIATUM_MODEL``), else none: unknown, not guessed.

A later reader (``job show``, ``run events``, a corpus bundle and its in-toto
statements) can then check who judged what from the record itself, not from a
workflow whose lanes a run may have replaced, on a machine whose PATH it cannot
see. The event changes no state: doctor and ``corpus verify`` chain it like any
other, and runs recorded before it existed verify as they did.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..canonical import canonical_json, text_safe
from . import audit
from .audit import Event, append_events, verb
from .lanes import lane_environment
from .leases import held

if TYPE_CHECKING:
    import psycopg

    from ..compiler.ir import Lane
    from .store import Store

START = "attempt.start"


def model_of(command: Sequence[str] | None) -> str | None:
    """The model a lane's command names (``--model M``, ``--model=M``, ``-m M``), as written."""
    args = list(command or [])
    for index, arg in enumerate(args):
        if arg in ("--model", "-m") and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
    return None


def executable_of(program: str, env: Mapping[str, str], cwd: Path) -> str | None:
    """The absolute path the lane's program runs from, found as the lane finds it: a
    name through the lane's PATH, a path relative to the lane's working folder; None
    when there is none (the lane then cannot start, and its attempt fails)."""
    if os.sep in program or (os.altsep and os.altsep in program):
        candidate = cwd / program
        found = str(candidate) if os.access(candidate, os.X_OK) and candidate.is_file() \
            else None
    else:
        # The lane's PATH as its exec reads it, from the lane's folder: a relative (or
        # empty) entry names a folder below it.
        # os.path, not pathlib: resolved at every claim, ~10 entries each time.
        entries = env.get("PATH", os.defpath).split(os.pathsep)
        found = shutil.which(program,
                             path=os.pathsep.join(os.path.join(cwd, e) for e in entries))
    return os.path.normpath(os.path.join(cwd, found)) if found else None


def start_data(lane: str, argv: Sequence[str], env: Mapping[str, str], cwd: Path
               ) -> dict[str, Any]:
    return {"lane": lane, "executable": executable_of(argv[0], env, cwd) if argv else None,
            "model": model_of(argv)}


def operator_start_data(lane: str, owner: str, model: str | None) -> dict[str, Any]:
    """Who works an attempt an operator claimed itself: no program striatum started (no
    executable), the lease's owner, and a model only as the operator stated it (None:
    unknown, never a guess). The claim's statement writes the same text itself (the
    query ``claim_job_started``); ``Claim.started`` holds this one."""
    return {"lane": lane, "executable": None, "model": model or None, "by": "operator",
            "owner": owner}


def start_text(data: Mapping[str, Any]) -> str:
    """``data`` as the event's payload holds it (canonical JSON)."""
    return canonical_json(text_safe(dict(data))).decode("utf-8")


# A placeholder fills to an absolute path (prompt_file, artifact_dir) or to an id that
# starts with a letter: only an argument that begins with one of these can become a
# flag once filled.
_MAY_BECOME_FLAG = ("-", "{job}", "{run}")


def _same_for_every_job(lane: Lane) -> bool:
    """Whether any attempt on ``lane`` resolves to the same start data, whichever job it
    runs and in whichever folder (the repository, or a worktree of it): its program
    names no placeholder and is found the same way from any folder, and no placeholder
    can change the model its command names."""
    command = lane.command
    if not command or "{" in command[0]:
        return False
    program = command[0]
    if not os.path.isabs(program):
        if os.sep in program or (os.altsep and os.altsep in program):
            return False  # relative to the attempt's folder
        path = lane_environment(dict(lane.env), {}).get("PATH", os.defpath)
        if not all(os.path.isabs(entry) for entry in path.split(os.pathsep)):
            return False
    for index, arg in enumerate(command[1:], start=1):
        if "{" in arg and (arg.startswith(_MAY_BECOME_FLAG)
                           or command[index - 1] in ("--model", "-m")):
            return False
    return True


def known_starts(lanes: Mapping[str, Lane], repo: Path) -> dict[str, str]:
    """The start data of each of a run's command lanes (``lanes``, run in ``repo``) that
    needs no job to resolve (``start_text``), by lane: a worker that knows its run sends
    them with its claim, so the attempt's start is chained in the claim's own statement
    and costs no transaction of its own. Resolved at each claim, as the lane's start
    would resolve it."""
    found = {}
    for name, lane in lanes.items():
        if lane.kind == "command" and _same_for_every_job(lane):
            env = lane_environment(dict(lane.env), {})
            found[name] = start_text(start_data(name, lane.command, env, repo))
    return found


@verb("attempt start")
def record_start(store: Store, run_id: str, job_id: str, token: str,
                 data: dict[str, Any]) -> None:
    """Chain who the held attempt's lane runs (``start_data``); refused with LeaseLost
    when the lease is no longer the caller's."""

    def work(cur: psycopg.Cursor[Any]) -> None:
        row, run, at = held(cur, run_id, job_id, token)
        append_events(cur, run.repo_id, [Event(START, run.id, row.job_id, row.state(), data)],
                      at)
        audit.record(cur, store)

    store.transaction(work, pipelined=True)
