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
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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


class Lanes(Protocol):
    """The lanes a lease-only gate serves: each live lane's environment, by its lease."""

    def env(self, token: str) -> Mapping[str, str] | None: ...


class Pool:
    """The daemon's connections (psycopg_pool), each switched to the runtime role once,
    when opened, and checked as it is lent (a server restarted meanwhile costs a
    reconnect, not a failed call). On the home's embedded server (``embedded``), a
    server found stopped (`striatum db stop`) is started again, by one call while the
    others wait, and the pool opened anew on it."""

    def __init__(self, dsn: str, size: int, *, timeout: float = 5.0, wait: bool = True,
                 name: str = "striatum daemon", embedded: bool = False) -> None:
        self.dsn = dsn
        self.size = size
        self.timeout = timeout
        self.name = name
        self.embedded = embedded
        self.runtime_role = False
        self.restarts = 0  # how many times it started the embedded server again
        self._restarting = threading.Lock()
        # Connections lent and not yet back: with all of them out, a call that waits in
        # vain waited for the calls in progress, not for the database.
        self._lent = 0
        self._counting = threading.Lock()
        self._pool = self._open(dsn, wait=wait)

    def _open(self, dsn: str, *, wait: bool = True) -> ConnectionPool[Any]:
        from psycopg_pool import ConnectionPool

        from ..runtime.store import wrap_errors

        pool: ConnectionPool[Any] = ConnectionPool(
            dsn, min_size=1, max_size=self.size, open=False, name=self.name.replace(" ", "-"),
            kwargs={"autocommit": True, "application_name": self.name},
            configure=self._configure, check=ConnectionPool.check_connection,
            timeout=self.timeout)
        with wrap_errors():
            # Not waiting (a worker's lane socket): the connections are made when the
            # database answers, since a worker may start before it does.
            pool.open(wait=wait, timeout=self.timeout)
        return pool

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        from ..runtime.store import use_runtime_role

        self.runtime_role = use_runtime_role(conn)

    @contextmanager
    def lend(self, actor: str) -> Iterator[Callable[[], Store]]:
        """A function that opens a store for ``actor`` on a connection of the pool the
        first time it is called; the connection goes back when the block ends."""

        from ..runtime.store import Store

        lent: list[Store] = []
        lenders: list[tuple[ConnectionPool[Any], psycopg.Connection[Any]]] = []

        def store() -> Store:
            if not lent:
                lenders.append(self._connection())
                with self._counting:
                    self._lent += 1
                lent.append(Store(self.dsn, lenders[0][1], actor, self.runtime_role))
            return lent[0]

        try:
            yield store
        finally:
            if lenders:
                # To the pool that lent it: a restart may have put another in its place.
                pool, conn = lenders[0]
                with self._counting:
                    self._lent -= 1
                pool.putconn(conn)

    def _connection(self) -> tuple[ConnectionPool[Any], psycopg.Connection[Any]]:
        from psycopg_pool import PoolTimeout

        pool = self._pool
        # On the embedded server, a short first wait: a server that was stopped is
        # started again sooner than the pool's whole timeout.
        first = min(1.0, self.timeout) if self.embedded else self.timeout
        try:
            return pool, pool.getconn(timeout=first)
        except PoolTimeout as exc:
            if not self.embedded:
                raise self._unavailable() from exc
        pool = self._restart(pool)
        try:
            return pool, pool.getconn()
        except PoolTimeout as exc:
            raise self._unavailable() from exc

    def _restart(self, failed: ConnectionPool[Any]) -> ConnectionPool[Any]:
        """The pool to lend from once the embedded server runs: started again (if it is
        stopped) by the first call that found it so; the calls behind it wait for that
        one, then find the server running and the pool renewed."""
        from ..runtime.embedded import ensure_running, server_running

        with self._restarting:
            if self._pool is not failed:
                return self._pool  # another call restarted it meanwhile
            if server_running():
                return failed  # running, only busy: wait the rest of the timeout
            logger.warning("the embedded PostgreSQL is not running: starting it again")
            dsn = ensure_running()
            self.dsn = dsn
            self._pool = self._open(dsn)
            self.restarts += 1
        # Its connections were to the stopped server; those lent now go back to it, and
        # are closed, as the pool is.
        failed.close(timeout=0)
        return self._pool

    def _unavailable(self) -> StoreUnavailable:
        if self._lent >= self.size:
            return StoreUnavailable(
                f"{self.name} is busy: all {self.size} of its database connections serve "
                f"calls in progress, and none came free within {self.timeout:g} s",
                hint=f"make fewer calls at once ({self.name} serves {self.size} at a time), "
                     "or try again once the calls in progress end",
                busy=True, connections=self.size)
        return StoreUnavailable(
            f"cannot reach PostgreSQL: no connection within {self.timeout:g} s",
            hint="check the database (`striatum daemon status` names it); once it is back, "
                 "the next call is served")

    def close(self) -> None:
        self._pool.close()


class Gate:
    """With ``tokens``, the daemon's gate (or the web UI's, ``face="web"``): every verb,
    to whoever holds the capability. With ``lanes`` instead, a worker's lane socket:
    lease-only, no token exists; only the lease verbs are served, each to the live lease
    of one of the worker's own lanes."""

    def __init__(self, pool: Pool, tokens: Tokens | None, home: Path,
                 describe: Callable[[], dict[str, Any]], *, lanes: Lanes | None = None,
                 face: str = "daemon") -> None:
        assert (tokens is None) != (lanes is None), "a gate holds tokens or serves lanes"
        self.pool = pool
        self.tokens = tokens
        self.lanes = lanes
        # What the audit rows name after the actor: daemon, web, or lane.
        self.face = face if lanes is None else "lane"
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
        held = self.tokens.holding(envelope.get("token")) if self.tokens else None
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
                session = Session(_repo(envelope), store, self.describe,
                                  lane_env=self.lanes.env(args["lease"]) if self.lanes
                                  else None)
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
        whoever presents the job's current, live lease in its ``lease`` parameter; on a
        lane socket, to the lease of one of the worker's own lanes, and nothing else."""
        if held is not None and verb.permitted(held):
            return held
        if self.lanes is not None and verb.capability != "lease":
            lease_verbs = ", ".join(v.name for v in registry.permitted("lease"))
            raise _Refused(Forbidden(
                f"{verb.name} is not served on a lane's socket, which serves only the lease "
                f"verbs ({lease_verbs})",
                hint="a lane acts on its own job with its lease; anything else is the "
                     "principal's (`striatum daemon`, outside the lane)",
                verb=verb.name, capability=verb.capability))
        if verb.capability == "lease":
            from ..errors import LeaseLost, NotFound
            from ..runtime.leases import check_held

            try:
                check_held(store(), args["run"], args["job"], args["lease"])
            except (LeaseLost, NotFound) as exc:
                raise _Refused(exc) from exc
            if self.lanes is not None and self.lanes.env(args["lease"]) is None:
                raise _Refused(Forbidden(
                    f"this lease of {args['run']}/{args['job']} is not held by a lane of "
                    "this worker",
                    hint="a lane calls its own worker's socket ($STRIATUM_SOCKET) with its "
                         "own lease ($STRIATUM_LEASE)", verb=verb.name))
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
