"""What the daemon does with one request line: read it, decide what the caller may do,
run the registry's verb, audit the call, and write the answer (docs/daemon.md).

Nothing here knows any one verb: the method names a registry verb, the params
are checked against its schema (``registry.bind``), the capability against the
verb's, the path parameters (``Verb.paths``) resolved against the caller's
working directory, and the call is the verb's own. Every call, allowed or
refused, leaves one audit row: the core's, written in the transaction of the
change, when the verb changed the record; else one written here, naming the
registry's verb and the outcome (``ok`` or the error's code).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..canonical import text_safe
from ..errors import (
    EXIT_INTERNAL,
    Forbidden,
    StoreError,
    StoreUnavailable,
    StriatumError,
    UsageError,
)
from . import protocol, registry
from .protocol import PROTOCOL
from .registry import Capability, Session, Verb

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

    from ..runtime.store import Store

logger = logging.getLogger("striatum.daemon")
ACTOR_MAX = 200


@dataclass(frozen=True)
class Peer:
    """The process at the other end of a connection, as the kernel tells it."""

    pid: int | None
    uid: int | None


@dataclass(frozen=True)
class Tokens:
    principal: str
    viewer: str

    def holding(self, token: Any) -> Capability | None:
        if not isinstance(token, str):
            return None
        presented = token.encode("utf-8", "replace")
        if hmac.compare_digest(presented, self.principal.encode()):
            return "principal"
        if hmac.compare_digest(presented, self.viewer.encode()):
            return "viewer"
        return None


class Pool:
    """The daemon's connections (psycopg_pool), each switched to the runtime role once,
    when opened, and checked as it is lent (a server restarted meanwhile costs a
    reconnect, not a failed call)."""

    def __init__(self, dsn: str, size: int, *, timeout: float = 5.0) -> None:
        from psycopg_pool import ConnectionPool

        from ..runtime.store import wrap_errors

        self.dsn = dsn
        self.timeout = timeout
        self.runtime_role = False
        self._pool: ConnectionPool[Any] = ConnectionPool(
            dsn, min_size=1, max_size=size, open=False, name="striatum-daemon",
            kwargs={"autocommit": True, "application_name": "striatum daemon"},
            configure=self._configure, check=ConnectionPool.check_connection,
            timeout=timeout)
        with wrap_errors():
            self._pool.open(wait=True, timeout=timeout)

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        from ..runtime.store import use_runtime_role

        self.runtime_role = use_runtime_role(conn)

    @contextmanager
    def lend(self, actor: str) -> Iterator[Callable[[], Store]]:
        """A function that opens a store for ``actor`` on a connection of the pool the
        first time it is called; the connection goes back when the block ends."""
        from psycopg_pool import PoolTimeout

        from ..runtime.store import Store

        lent: list[Store] = []

        def store() -> Store:
            if not lent:
                try:
                    conn = self._pool.getconn()
                except PoolTimeout as exc:
                    raise StoreUnavailable(
                        f"cannot reach PostgreSQL: no connection within {self.timeout:g} s",
                        hint="check the database (`striatum daemon status` names it)"
                    ) from exc
                lent.append(Store(self.dsn, conn, actor, self.runtime_role))
            return lent[0]

        try:
            yield store
        finally:
            if lent:
                self._pool.putconn(lent[0]._conn)

    def close(self) -> None:
        self._pool.close()


class Gate:
    def __init__(self, pool: Pool, tokens: Tokens, home: Path,
                 describe: Callable[[], dict[str, Any]], *, face: str = "daemon") -> None:
        self.pool = pool
        self.face = face  # what the audit rows name after the actor: daemon, web
        self.tokens = tokens
        self.home = str(home.resolve())
        self.describe = describe

    def handle(self, line: bytes, peer: Peer) -> bytes | None:
        """The answer to one request line (None for a notification); never raises."""
        try:
            return self._handle(line, peer)
        except Exception as exc:  # a bug: logged, and the caller still gets an answer
            logger.exception("a request failed outside any verb")
            return protocol.error(None, protocol.INTERNAL_ERROR, {
                "error": "internal", "exit": EXIT_INTERNAL,
                "message": f"internal error: {type(exc).__name__}: {exc}",
                "hint": "this is a bug in striatum; the daemon's log has the traceback"})

    def _handle(self, line: bytes, peer: Peer) -> bytes | None:
        try:
            message = json.loads(line)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return protocol.error(None, protocol.PARSE_ERROR, _usage(
                f"the request is not JSON: {exc}",
                "send one JSON-RPC 2.0 request per line (docs/daemon.md)"))
        problem = _malformed(message)
        if problem:
            ident = message.get("id") if isinstance(message, dict) else None
            ident = ident if isinstance(ident, str | int) else None
            return protocol.error(ident, protocol.INVALID_REQUEST, problem)
        ident = message.get("id")
        rpc_code, outcome = self.call(message["method"], message.get("params", {}),
                                      message.get("striatum") or {}, peer)
        if "id" not in message:
            return None
        if rpc_code is None:
            return protocol.result(ident, outcome)
        return protocol.error(ident, rpc_code, outcome)

    def call(self, method: str, params: Any, envelope: dict[str, Any], peer: Peer
             ) -> tuple[int | None, dict[str, Any]]:
        """(None, the result) or (the JSON-RPC error code, striatum's error document)."""
        held = self.tokens.holding(envelope.get("token"))
        actor = _actor(envelope, peer)
        verb = registry.VERBS.get(method)
        name = method if verb is not None else text_safe(method[:100])
        args = params if isinstance(params, dict) else {"params": params}
        with self.pool.lend(f"{actor} {self.face}:{held or 'none'}") as store:
            try:
                if verb is None:
                    raise UsageError(f"no verb {method[:100]!r}",
                                     hint="docs/surfaces.md lists the verbs")
                if not isinstance(params, dict):
                    raise UsageError("params must be an object of the verb's parameters",
                                     hint="JSON-RPC's by-position params are not served",
                                     verb=verb.name)
                args = registry.bind(verb, params)
                if self._permit(verb, args, held, store) != held:
                    held = "lease"  # a live lease token: the rows name what the call held
                    store().actor = f"{actor} {self.face}:lease"
                self._locate(verb, args, envelope, held)
                session = Session(_repo(envelope), store, self.describe)
                document = verb.call(session, args)
            except _Refused as refused:
                exc = refused.error
                self._audit(store, name, args, exc.code, quiet=True)
                return protocol.FORBIDDEN, {**exc.to_json(), "exit": exc.exit_code}
            except StriatumError as exc:
                if not isinstance(exc, StoreUnavailable | StoreError):
                    # As in the core: a call the database failed leaves no row, since the
                    # database could not take one either.
                    self._audit(store, name, args, exc.code, quiet=True)
                return _rpc_code(exc, verb, args), {**exc.to_json(), "exit": exc.exit_code}
            except Exception as exc:  # a bug: logged, and the caller told
                logger.exception("%s failed", name)
                self._audit(store, name, args, "internal", quiet=True)
                return protocol.INTERNAL_ERROR, {
                    "error": "internal", "exit": EXIT_INTERNAL,
                    "message": f"internal error: {type(exc).__name__}: {exc}",
                    "hint": "this is a bug in striatum; the daemon's log has the traceback"}
            try:
                self._audit(store, name, args, "ok")
            except StriatumError as exc:
                return protocol.CALL_FAILED, {**exc.to_json(), "exit": exc.exit_code}
        return None, document

    def _permit(self, verb: Verb, args: dict[str, Any], held: Capability | None,
                store: Callable[[], Store]) -> Capability:
        """The capability the call runs with, or the refusal. A lease verb is open to
        whoever presents the job's current, live lease in its ``lease`` parameter."""
        if held is not None and verb.permitted(held):
            return held
        if verb.capability == "lease":
            from ..errors import LeaseLost, NotFound
            from ..runtime.leases import check_held

            try:
                check_held(store(), args["run"], args["job"], args["lease"])
            except (LeaseLost, NotFound) as exc:
                raise _Refused(exc) from exc
            return "lease"
        raise _Refused(Forbidden(f"{verb.name} needs the {verb.capability} capability; this call "
                        f"holds {held or 'no valid credential'}",
                        hint="present the principal token (the daemon's client-token file) "
                             "in the envelope; a viewer token reads only, a lease token acts "
                             "only on its own job", verb=verb.name, capability=verb.capability))

    def _locate(self, verb: Verb, args: dict[str, Any], envelope: dict[str, Any],
                held: Capability) -> None:
        """Resolve the path parameters against the caller's working directory; a caller
        other than the principal reads nothing under the striatum home through them."""
        for key in verb.paths:
            value = args.get(key)
            if not isinstance(value, str):
                continue
            if not os.path.isabs(value):
                value = os.path.join(_cwd(envelope), value)
            args[key] = value
            real = os.path.realpath(value)
            if held != "principal" and (real == self.home
                                        or real.startswith(self.home + os.sep)):
                raise Forbidden(f"{key}: {value} is inside the striatum home, which only the "
                                "principal may read through the daemon",
                                hint="name a file of the repository or the job's artifact "
                                     "folder", parameter=key)

    def _audit(self, store: Callable[[], Store], verb: str, args: dict[str, Any],
               outcome: str, *, quiet: bool = False) -> None:
        """The call's row, unless the core wrote one already. ``quiet``: best effort (a
        refusal stands whether or not the row could be written)."""
        try:
            opened = store()
            if opened.audited:
                return
            row = {"actor": opened.actor, "verb": verb, "outcome": outcome,
                   "args_digest": _digest(args)}
            if outcome == "ok":
                # A read's row: a server crash may lose the last of these (the chain stays
                # whole, a tail shorter), which spares every read a wait for the disk.
                # A refusal's row, and every change's, waits for it.
                opened.transaction(lambda cur: _unflushed(cur, row), pipelined=True)
            else:
                opened.call("append_audit", row)
            opened.audited += 1
        except StriatumError:
            if not quiet:
                raise
            logger.warning("could not audit a refused %s (%s)", verb, outcome)


class _Refused(Exception):
    """The capability check's refusal: ``error`` (forbidden; for a lease token, why the
    lease is not live: lease_lost, not_found) answered as FORBIDDEN."""

    def __init__(self, error: StriatumError) -> None:
        super().__init__(error.message)
        self.error = error


def _unflushed(cur: psycopg.Cursor[Any], row: dict[str, Any]) -> None:
    from ..runtime.store import send

    send(cur, "commit_unflushed")
    send(cur, "append_audit", row)


def _malformed(message: Any) -> dict[str, Any] | None:
    hint = "a request is {\"jsonrpc\": \"2.0\", \"id\": N, \"method\": VERB, \"params\": {...}}"
    if isinstance(message, list):
        return _usage("batches are not served: send one request per line", hint)
    if not isinstance(message, dict):
        return _usage("the request is not a JSON object", hint)
    if message.get("jsonrpc") != "2.0":
        return _usage("the request lacks \"jsonrpc\": \"2.0\"", hint)
    if "id" in message and not isinstance(message["id"], str | int | None) or \
            isinstance(message.get("id"), bool):
        return _usage("the id must be a string, an integer or null", hint)
    if not isinstance(message.get("method"), str):
        return _usage("the request names no method", hint)
    envelope = message.get("striatum")
    if envelope is not None and not isinstance(envelope, dict):
        return _usage("\"striatum\" (the envelope) must be an object", hint)
    version = (envelope or {}).get("protocol", PROTOCOL)
    if version != PROTOCOL:
        return _usage(f"protocol {version!r} is not spoken here: this daemon speaks "
                      f"protocol {PROTOCOL}",
                      "use a client of the daemon's version, or restart the daemon with "
                      "the installed striatum")
    return None


def _usage(message: str, hint: str) -> dict[str, Any]:
    return {**UsageError(message, hint=hint).to_json(), "exit": UsageError.exit_code}


def _rpc_code(exc: StriatumError, verb: Verb | None, args: dict[str, Any]) -> int:
    if verb is None:
        return protocol.METHOD_NOT_FOUND
    if isinstance(exc, Forbidden):
        return protocol.FORBIDDEN  # a path under the home, refused to a non-principal
    if isinstance(exc, UsageError) and exc.details.get("verb") == verb.name:
        return protocol.INVALID_PARAMS  # bind's refusal of the parameters
    return protocol.CALL_FAILED


def _actor(envelope: dict[str, Any], peer: Peer) -> str:
    said = envelope.get("actor")
    if isinstance(said, str) and said.strip():
        return str(text_safe(said.strip()[:ACTOR_MAX]))
    return f"pid {peer.pid}" if peer.pid else "unknown"


def _cwd(envelope: dict[str, Any]) -> str:
    cwd = envelope.get("cwd")
    if not isinstance(cwd, str) or not os.path.isabs(cwd):
        raise UsageError("a relative path needs the caller's working directory",
                         hint="send \"cwd\" (absolute) in the envelope, or absolute paths")
    return cwd


def _repo(envelope: dict[str, Any]) -> str:
    repo = envelope.get("repo")
    if isinstance(repo, str) and repo:
        return repo if os.path.isabs(repo) else os.path.join(_cwd(envelope), repo)
    cwd = envelope.get("cwd")
    return cwd if isinstance(cwd, str) and os.path.isabs(cwd) else "/"


def _digest(args: dict[str, Any]) -> str:
    """The audit's digest of the arguments, secrets left out; arguments canonical JSON
    cannot hold (a float in a refused call) are digested as plain JSON."""
    from ..runtime.audit import Call

    kept = text_safe({k: v for k, v in args.items() if k not in registry.SECRET_PARAMS})
    try:
        return Call("", kept).digest
    except (TypeError, ValueError):
        plain = json.dumps(kept, sort_keys=True, default=str, ensure_ascii=False)
        return hashlib.sha256(plain.encode("utf-8", "replace")).hexdigest()
