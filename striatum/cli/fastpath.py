"""The routed fast path: the agent loop's verbs through the home's daemon, or a lane's
socket, without click.

A verb routed through the daemon spends most of its life starting Python and importing
click. When the command line is one of ``COMMANDS``, written exactly as the click
command accepts it, and the home's daemon serves the database the command would use,
the entry point parses it here from the table below, calls the verb on the daemon's
socket, prints the result document as the click command does (``render``; ``--json``:
the document) and exits with the same code. Inside a lane (``STRIATUM_SOCKET``), the
lease verbs go the same way to the lane's socket, the worker's, as the click command
sends them there (the lease is the capability; no token, no repository). Anything else
falls through to click (``main``), unparsed here: an option this table does not hold,
``--help``, a value click would refuse, ``--direct``, in a lane a verb other than a
lease verb or a run named by other than its whole id, no daemon or lane socket
answering; so every message about a command line is click's own. A refusal from the
daemon is reported by ``main.failed``, as the click path reports it (that path imports
click: errors are rare in the loop).

The table mirrors the click commands (``job``, ``run``); ``tests/unit/test_fastpath.py``
holds the two to each other, option by option, and to the verbs' parameter schemas.
Imports: the standard library's os, sys, re, json and _socket (and datetime to show a claim).
"""

from __future__ import annotations

import os
import re
import sys

TYPE_CHECKING = False  # typing itself is a few milliseconds of a routed command's start
if TYPE_CHECKING:
    from typing import Any

    Option = tuple[str, str, str | None, Any]

# An option: (parameter, kind, environment variable, default). Kinds: "text"; "stated"
# (text, an empty one not stated: None, as the command's ``value or None``); "run" (a
# run's id or a name for one, resolved by the daemon: run.resolve); "file" (made
# absolute here, as the command does); "seconds" (a lease length, 5..86400); "flag";
# "many" (repeatable: a list, left out of the call when empty, as the command does).
# A default of REQUIRED: the command line (or the variable) must give it.
REQUIRED = object()
WHOLE_ID = re.compile(r"\d{8}-\d{6}-[0-9a-f]{6}")  # a run's whole id: nothing to resolve
SECONDS = (5, 86400)
VERDICTS = ("accept", "needs_revision", "reject")
HELD: dict[str, Option] = {
    "--run": ("run", "run", "STRIATUM_RUN", REQUIRED),
    "--job": ("job", "text", "STRIATUM_JOB", REQUIRED),
    "--lease": ("lease", "text", "STRIATUM_LEASE", REQUIRED),
}
JSON: dict[str, Option] = {"--json": ("as_json", "flag", None, False)}
LEASE_SECONDS: dict[str, Option] = {"--lease-seconds": ("lease_seconds", "seconds", None, 300)}
REASON: dict[str, Option] = {"--reason": ("reason", "text", None, REQUIRED)}

# (noun, verb) -> (registry verb, positional arguments as (parameter, kind, choices),
# options by name).
COMMANDS: dict[tuple[str, str], tuple[str, tuple[tuple[str, str, tuple[str, ...]], ...],
                                      dict[str, Option]]] = {
    ("run", "status"): ("run.status", (("run", "run", ()),), JSON),
    ("job", "claim"): ("job.claim", (), {
        "--run": ("run", "run", "STRIATUM_RUN", REQUIRED),
        "--lane": ("lane", "text", None, None),
        "--owner": ("owner", "text", None, None),
        "--model": ("model", "stated", "STRIATUM_MODEL", None),
        **LEASE_SECONDS, **JSON}),
    ("job", "heartbeat"): ("job.heartbeat", (), {**HELD, **LEASE_SECONDS, **JSON}),
    ("job", "publish"): ("job.publish", (), {
        **HELD, "--artifact": ("artifact", "file", None, REQUIRED),
        "--as": ("name", "text", None, None), **JSON}),
    ("job", "verdict"): ("job.verdict", (("outcome", "text", VERDICTS),), {
        **HELD, **REASON, "--finding": ("findings", "many", None, ()), **JSON}),
    ("job", "complete"): ("job.complete", (), {**HELD, **JSON}),
    ("job", "release"): ("job.release", (), {**HELD, **JSON}),
    ("job", "fail"): ("job.fail", (), {**HELD, **REASON, **JSON}),
    ("job", "escalate"): ("job.escalate", (), {**HELD, **REASON, **JSON}),
}
GLOBAL = {"--repo": ("repo", "STRIATUM_REPO"), "--dsn": ("dsn", "STRIATUM_DSN")}


class Call:
    """A command line this path serves: the verb, its parameters, where and how; in a
    lane, ``lane`` is its socket's path."""

    def __init__(self, verb: str, params: dict[str, Any], repo: str, dsn: str | None,
                 as_json: bool, lane: str | None = None) -> None:
        self.verb, self.params, self.repo, self.dsn = verb, params, repo, dsn
        self.as_json, self.lane = as_json, lane


def parse(args: list[str], env: dict[str, str] | os._Environ[str]) -> Call | None:
    """The call ``args`` asks for, or None: not a command line this path serves exactly."""
    if env.get("STRIATUM_DIRECT"):
        return None  # never through the daemon
    lane = env.get("STRIATUM_SOCKET") or None
    if any("\udc80" <= ch <= "\udcff" for arg in args for ch in arg):
        return None  # bytes that were not UTF-8: click's message says which
    given: dict[str, Any] = {}
    at = _options(args, 0, {name: (key, "text", None, None)
                            for name, (key, _) in GLOBAL.items()}, given)
    if at < 0 or at + 2 > len(args) or (args[at], args[at + 1]) not in COMMANDS:
        return None
    verb, positional, options = COMMANDS[args[at], args[at + 1]]
    words: list[str] = []
    if lane is not None and "--lease" not in options:
        return None  # a lane's socket serves the lease verbs alone: click's refusal
    if _options(args, at + 2, options, given, words) < 0 or len(words) != len(positional):
        return None
    values: dict[str, Any] = {}
    for (key, _kind, choices), word in zip(positional, words, strict=True):
        if choices and word not in choices:
            return None
        values[key] = word
    for name, (key, kind, variable, default) in options.items():
        value = given.get(name) if name in given else _from_env(env, variable)
        if kind == "many":
            if value:
                values[key] = value
            continue
        if value is None:
            if default is REQUIRED:
                return None
            values[key] = default
            continue
        if kind == "stated":
            values[key] = value or None
            continue
        converted = _convert(kind, value)
        if converted is None:
            return None
        values[key] = converted
    repo = given.get("--repo") or _from_env(env, "STRIATUM_REPO") or "."
    if "--repo" in given and not given["--repo"] or not _readable(repo, dirs_only=True):
        return None
    if lane is not None and not WHOLE_ID.fullmatch(values["run"]):
        return None  # a lane's worker resolves no run names
    dsn = given.get("--dsn") or _from_env(env, "STRIATUM_DSN")
    return Call(verb, values, repo, dsn, bool(values.pop("as_json")), lane)


def _options(args: list[str], at: int, options: dict[str, Option], given: dict[str, Any],
             words: list[str] | None = None) -> int:
    """Read the options from ``at`` into ``given`` (a flag as "", a repeatable option as
    the list of its values): with ``words``, to the end, the other words into it;
    without, up to the first word. Returns where it stopped, or -1 at an argument this
    path leaves to click."""
    while at < len(args):
        arg = args[at]
        if not arg.startswith("-") or arg == "-":
            if words is None:
                return at
            words.append(arg)
            at += 1
            continue
        name, eq, value = arg.partition("=")
        many = name in options and options[name][1] == "many"
        if name not in options or name in given and not many:
            return -1  # --help, --, a short option, one given twice: click's to judge
        if options[name][1] == "flag":
            if eq:
                return -1
            value = ""
        elif not eq:
            at += 1
            if at == len(args) or args[at].startswith("-"):
                return -1
            value = args[at]
        if many:
            given.setdefault(name, []).append(value)
        else:
            given[name] = value
        at += 1
    return at


def _from_env(env: dict[str, str] | os._Environ[str], variable: str | None) -> str | None:
    # click reads an empty variable as unset
    return (env.get(variable) or None) if variable else None


def _convert(kind: str, value: str) -> Any:
    """``value`` as the click option's type would make it, or None where it might
    refuse it."""
    if kind == "flag":
        return True
    if kind == "seconds":
        low, high = SECONDS
        if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
            return None
        return int(value)
    if kind == "file":
        return os.path.abspath(value) if _readable(value, dirs_only=False) else None
    return value


def _readable(path: str, *, dirs_only: bool) -> bool:
    """Whether click's Path type would take ``path``: a path that is not there, or one
    that can be read (with ``dirs_only``, not a regular file)."""
    import stat

    try:
        found = os.stat(path)
    except OSError:
        return True
    return not (dirs_only and stat.S_ISREG(found.st_mode)) and os.access(path, os.R_OK)


def routed(args: list[str]) -> int | None:
    """Serve ``args`` here and return the exit code, or None: click's to serve."""
    call = parse(args, os.environ)
    if call is None:
        return None
    connected = _connect(call)
    if connected is None:
        return None  # no daemon answers: click's path goes direct (a lane's: says so)
    try:
        document = _ask(connected, call)
        out, err = _shown(call, document)
        if err:
            sys.stderr.write(err + "\n")
        if out:
            sys.stdout.write(out + "\n")
            sys.stdout.flush()
        return 0
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - reported as click's path does
        from .main import failed

        return failed(exc, call.as_json, call.as_json)
    finally:
        connected[0].close()


def _connect(call: Call) -> tuple[Any, dict[str, Any]] | None:
    """A socket connected to the lane's socket, or to the home's daemon if it serves the
    database the command names, and the envelope of its calls; else None."""
    import _socket  # the C module: ``socket`` itself imports enum and selectors

    from ..runtime.actor import default_actor

    envelope: dict[str, Any] = {"cwd": os.getcwd(), "actor": default_actor()}
    if call.lane is not None:
        address = call.lane  # the lease is the capability: no token, as ``job`` sends
    else:
        from ..server import where

        place = os.path.join(where.home_dir(), where.RUNTIME_DIR)
        address = os.path.join(place, where.SOCKET)
        if not where.serves(place, call.dsn):
            return None
        envelope["repo"] = os.path.abspath(call.repo)
        try:
            with open(os.path.join(place, where.CLIENT_TOKEN), encoding="ascii") as found:
                token = found.read().strip()
        except (OSError, UnicodeDecodeError):
            token = ""
        if token:
            envelope["token"] = token
    # A path too long for a socket address is the click path's to explain.
    if len(address.encode()) > 107:
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(300.0)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        return None
    return sock, envelope


def _ask(connected: tuple[Any, dict[str, Any]], call: Call) -> dict[str, Any]:
    """The verb's result document; a name for a run resolved by the daemon first."""
    import json

    from ..server.protocol import request

    sock, envelope = connected

    def ask(ident: int, verb: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            sock.sendall(request(ident, verb, params, envelope))
            line = _line(sock)
        except OSError as exc:
            raise _unanswered(call, verb, exc) from exc
        if not line:
            raise _unanswered(call, verb, None)
        answer = json.loads(line)
        if "error" in answer:
            from ..server.client import refusal

            raise refusal(answer)
        found: dict[str, Any] = answer["result"]
        return found

    params = call.params
    if not WHOLE_ID.fullmatch(params["run"]):
        params["run"] = ask(1, "run.resolve", {"run": params["run"]})["run"]
    if call.verb == "job.claim" and not params["owner"]:
        from ..runtime.actor import default_owner  # the daemon's would name the daemon

        params["owner"] = default_owner()
    return ask(2, call.verb, params)


def _unanswered(call: Call, verb: str, exc: OSError | None) -> Exception:
    from ..server.client import in_lane, unanswered

    said = unanswered(verb, exc)
    return said if call.lane is None else in_lane(said)


def _line(sock: Any) -> bytes:
    """One answer: the bytes up to its newline (or to the end, if the daemon hung up)."""
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def _shown(call: Call, document: dict[str, Any]) -> tuple[str, str]:
    """What the command prints: (stdout, stderr)."""
    from . import render

    if call.as_json:
        return render.as_json(document), ""
    if call.verb == "job.claim":
        return render.claimed(document)
    if call.verb == "run.status":
        return render.run_status(document), ""
    if call.verb == "job.heartbeat":
        return render.heartbeat(document), ""
    if call.verb == "job.publish":
        return render.published(document), ""
    return render.outcome(document), ""
