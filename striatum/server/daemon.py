"""The daemon: one process per striatum home that owns the database connections and
serves the registry's verbs on a UNIX socket (docs/daemon.md).

Its runtime folder (``place.RuntimeDir``, mode 0700) holds the socket, the pid
file, locked for as long as the daemon lives (the lock, not the pid, says whether
one runs: a daemon that was killed leaves a file nobody holds, and a socket the
next start removes), and the tokens, written anew (mode 0600) at every start.

Connections are served by an asyncio loop (a client that connects and waits
costs a few kilobytes, not a thread); each request runs in a thread of a pool
as large as the database pool, through ``gate.Gate``. Stopping (SIGTERM,
SIGINT) closes the socket and every idle connection, lets the calls in progress
finish and answer, then closes the database pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import secrets
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import DaemonUnavailable, StriatumError, UsageError
from . import protocol
from .gate import Gate, Peer, Pool, Tokens
from .place import RuntimeDir, check_socket_path, dsn_digest, prepare, take_lock, write_secret

logger = logging.getLogger("striatum.daemon")
MAX_CONNECTIONS = 256  # beyond these, a new connection is told so and closed
IDLE_SECONDS = 60.0  # a connection that sends nothing for this long is closed
# Descriptors kept free beside the clients' for the database pool, the log, the
# libraries (and a client refused past the limit: it needs one to be told so).
SPARE_FILES = 64
BACKLOG = 1024  # connections the kernel holds until accepted (capped by net.core.somaxconn)


def issue_tokens(place: RuntimeDir) -> Tokens:
    tokens = Tokens(secrets.token_hex(32), secrets.token_hex(32))
    write_secret(place.client_token, tokens.principal)
    write_secret(place.viewer_token, tokens.viewer)
    return tokens


# -- the process -------------------------------------------------------------------------------


@dataclass
class _Connection:
    task: asyncio.Task[None]
    busy: bool = False


class Server:
    """The connection loop of a socket that serves a ``gate.Gate``: the daemon's, and each
    worker's lane socket (``lanegate``). ``run`` blocks until ``stop`` (from any thread),
    or SIGTERM/SIGINT when run on the main thread."""

    face = "server"

    def __init__(self, *, idle_seconds: float = IDLE_SECONDS,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.idle_seconds = idle_seconds
        self.max_connections = max_connections
        self.database = ""
        self.open_files = 0  # the soft limit of open files it runs with
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._open: dict[asyncio.Task[None], _Connection] = {}
        self._stopping = False
        self._stop_asked = False

    def run(self, where: str, gate: Gate, calls: ThreadPoolExecutor,
            ready: Callable[[], None] | None = None) -> None:
        asyncio.run(self._main(where, gate, calls, ready))

    def stop(self) -> None:
        self._stop_asked = True  # a stop asked before the loop runs is kept for it
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # stopped already: its loop is closed
                loop.call_soon_threadsafe(stop.set)

    async def _main(self, where: str, gate: Gate, calls: ThreadPoolExecutor,
                    ready: Callable[[], None] | None) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self._stop_asked:
            self._stop.set()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._loop.add_signal_handler(signum, self._stop.set)

        async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                            ) -> None:
            await self._connection(reader, writer, gate, calls)

        # A burst of clients waits in the kernel's queue to be accepted (and, past the
        # limit, told so) rather than being refused a connection outright.
        server = await asyncio.start_unix_server(connected, path=where,
                                                 limit=protocol.MAX_FRAME, backlog=BACKLOG)
        os.chmod(where, 0o600)
        logger.info("striatum %s %s (pid %d) serving %s on %s", self.face, __version__,
                    os.getpid(), self.database, where)
        if ready is not None:
            ready()
        await self._stop.wait()
        logger.info("stopping: %d connection(s) open", len(self._open))
        self._stopping = True
        server.close()
        # New clients find no socket (and are told no daemon answers) at once, not after
        # the calls in progress.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(where)
        for task, connection in list(self._open.items()):
            if not connection.busy:
                task.cancel()
        if self._open:
            await asyncio.gather(*self._open, return_exceptions=True)
        logger.info("stopped")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          gate: Gate, calls: ThreadPoolExecutor) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(task)
        self._open[task] = connection
        loop = asyncio.get_running_loop()
        try:
            peer = _peer(writer)
            if peer.uid is not None and peer.uid not in (os.geteuid(), 0):
                return  # the folder's mode keeps other users out; this says so again
            if len(self._open) > self.max_connections:
                await _hang_up(writer, DaemonUnavailable(
                    f"the {self.face} serves {self.max_connections} connections at most",
                    hint="close idle connections, or try again"))
                return
            while not self._stopping:
                try:
                    line = await asyncio.wait_for(reader.readline(), self.idle_seconds)
                except (TimeoutError, ConnectionError):
                    return
                except ValueError:  # longer than a frame: the stream cannot be resynced
                    await _too_long(writer)
                    return
                if len(line) > protocol.MAX_FRAME:
                    # The reader's limit counts the bytes before the newline: a line of
                    # one byte more than a frame, its newline included, passes it.
                    await _too_long(writer)
                    return
                if not line.strip():
                    if not line:
                        return  # the client closed its end
                    continue
                connection.busy = True
                answer = await loop.run_in_executor(calls, gate.handle, line, peer)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()
                connection.busy = False
        except asyncio.CancelledError:
            pass  # an idle connection, closed by the stop
        except ConnectionError:
            pass  # the client went away before its answer
        finally:
            del self._open[task]
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class Daemon(Server):
    """A daemon for one runtime folder and one database. ``serve`` blocks until
    ``stop`` (from any thread) or SIGTERM/SIGINT (when served from the main thread)."""

    face = "daemon"

    def __init__(self, dsn: str | None, place: RuntimeDir, *, connections: int = 8,
                 home: Path | None = None, idle_seconds: float = IDLE_SECONDS,
                 max_connections: int = MAX_CONNECTIONS, notify: str | None = None) -> None:
        super().__init__(idle_seconds=idle_seconds, max_connections=max_connections)
        self.notify = notify  # a command run with each new inbox item (runtime.notify)
        self.dsn = dsn
        self.place = place
        self.connections = connections
        self.home = home or place.path.parent
        self.started = (datetime.now(UTC), time.monotonic())

    def describe(self) -> dict[str, Any]:
        return {"face": "daemon", "pid": os.getpid(), "version": __version__,
                "started_at": self.started[0].isoformat(timespec="seconds"),
                "uptime_seconds": int(time.monotonic() - self.started[1]),
                "database": self.database, "socket": str(self.place.socket),
                "max_connections": self.max_connections, "open_files": self.open_files}

    def serve(self, ready: Callable[[], None] | None = None) -> bool:
        """Serve until stopped; False (at once) when another daemon holds the folder."""
        prepare(self.place)
        lock = take_lock(self.place)
        if lock is None:
            return False
        pool = None
        try:
            from ..runtime.config import checked, describe

            # Migrates a schema that is behind (on the embedded server, as its owner), and
            # starts the embedded server when it is the one and is not running.
            database = checked(self.dsn)  # the runtime role's login
            self.database = describe(database.dsn)
            self._fit_open_files()
            pool = Pool(database.dsn, self.connections, embedded=database.embedded)
            gate = Gate(pool, issue_tokens(self.place), self.home, self.describe)
            write_secret(self.place.dsn_digest, dsn_digest(self.dsn))
            where = check_socket_path(self.place.socket)
            self.place.socket.unlink(missing_ok=True)  # a killed daemon's
            watching = self._watch(pool)
            try:
                with ThreadPoolExecutor(self.connections, "striatum-call") as calls:
                    self.run(where, gate, calls, ready)
            finally:
                if watching is not None:
                    watching.set()
        finally:
            self.place.socket.unlink(missing_ok=True)
            for token in (self.place.client_token, self.place.viewer_token,
                          self.place.dsn_digest):
                token.unlink(missing_ok=True)
            if pool is not None:
                pool.close()
            os.close(lock)
        return True

    def _watch(self, pool: Pool) -> threading.Event | None:
        """With ``notify``, a thread that runs it for each new inbox item; the event it
        returns stops that thread."""
        if not self.notify:
            return None
        from ..runtime.notify import Notifier, watch

        def look(notifier: Notifier) -> None:
            with pool.lend("daemon notify") as store:
                notifier.check(store())

        stop = threading.Event()
        watch(Notifier(self.notify, logger.warning), look, stop)
        return stop

    def _fit_open_files(self) -> None:
        """Raise the soft limit of open files to the hard one when the connections it
        serves (and its spare descriptors) need more; when even the hard limit is too
        low, serve fewer connections, and say so, rather than fail to accept."""
        wanted = self.max_connections + self.connections + SPARE_FILES
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            # An unlimited hard limit may still be above what the kernel allows a process.
            raised = wanted if hard == resource.RLIM_INFINITY else hard
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                logger.info("open-file limit raised from %d to %d", soft, raised)
                soft = raised
            except (ValueError, OSError) as exc:
                logger.warning("could not raise the open-file limit from %d: %s", soft, exc)
        self.open_files = soft if soft != resource.RLIM_INFINITY else -1
        if soft != resource.RLIM_INFINITY and soft < wanted:
            fewer = max(1, soft - self.connections - SPARE_FILES)
            logger.warning("the open-file limit (%d, hard %d) leaves room for %d "
                           "connections, not %d: serving %d (raise `ulimit -n`)", soft,
                           hard, fewer, self.max_connections, fewer)
            self.max_connections = fewer


async def _hang_up(writer: asyncio.StreamWriter, error: StriatumError) -> None:
    """Say why the connection ends (as an answer to no request), before it does."""
    writer.write(protocol.error(None, protocol.INVALID_REQUEST,
                                {**error.to_json(), "exit": error.exit_code}))
    await writer.drain()


async def _too_long(writer: asyncio.StreamWriter) -> None:
    await _hang_up(writer, UsageError(
        f"a request line is longer than {protocol.MAX_FRAME} bytes",
        hint="publish large content as a file; the connection is closed"))


def _peer(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    option = getattr(socket, "SO_PEERCRED", None)
    if sock is None or option is None:
        return Peer(None, None)
    try:
        pid, uid, _ = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option,
                                                          struct.calcsize("3i")))
    except OSError:
        return Peer(None, None)
    return Peer(pid, uid)
