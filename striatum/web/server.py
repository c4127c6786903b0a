"""Start the web face: the database pool and the gate as the daemon opens them, the
credentials (``guard.principal_secret``), the app, and uvicorn on a loopback address."""

from __future__ import annotations

import contextlib
import secrets
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import __version__
from ..server.gate import Gate, Pool, Tokens
from ..server.place import RuntimeDir
from .app import Face, create_app
from .guard import allowed_hosts, check_loopback, principal_secret

POOL_SIZE = 4


@contextmanager
def web_face(dsn: str | None, place: RuntimeDir, *, mutations: bool,
             describe: dict[str, Any] | None = None) -> Iterator[Face]:
    """The face the pages call, open for the block: its pool closed and the secret this
    server made (if it made one) removed when the block ends."""
    from ..runtime.config import checked
    from ..runtime.config import describe as where

    database = checked(dsn)  # migrates a schema that is behind, starts the embedded server
    secret, made = principal_secret(place)
    pool = Pool(database.dsn, POOL_SIZE, name="striatum web")
    status = {"face": "web", "version": __version__, "database": where(database.dsn),
              **(describe or {})}
    viewer = secrets.token_hex(32)
    try:
        gate = Gate(pool, Tokens(secret, viewer), place.path.parent, lambda: status,
                    face="web")
        yield Face(gate, viewer, secret, secret, mutations)
    finally:
        pool.close()
        if made is not None:
            with contextlib.suppress(OSError):
                made.unlink()


def serve(dsn: str | None, place: RuntimeDir, host: str, port: int, *, mutations: bool,
          announce: Any = None, notify: str | None = None) -> None:
    import uvicorn

    check_loopback(host)
    with web_face(dsn, place, mutations=mutations,
                  describe={"address": f"http://{host}:{port}/"}) as face, \
            _notifying(face, notify):
        app = create_app(face, allowed_hosts(host, port))
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                timeout_graceful_shutdown=2, lifespan="off")
        if announce is not None:
            announce()
        # uvicorn stops on SIGTERM, then raises it again to the handler it found: this
        # one makes that a clean exit, so the block above still removes the secret.
        previous = signal.signal(signal.SIGTERM, _stopped)
        try:
            uvicorn.Server(config).run()
        finally:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def _notifying(face: Face, notify: str | None) -> Iterator[None]:
    """With ``notify``, run it for each new inbox item while the server runs."""
    if not notify:
        yield
        return
    import sys
    import threading

    from ..runtime.notify import Notifier, watch

    def look(notifier: Notifier) -> None:
        with face.gate.pool.lend("web notify") as store:
            notifier.check(store())

    stop = threading.Event()
    watch(Notifier(notify, lambda line: print(f"striatum: {line}", file=sys.stderr)),
          look, stop)
    try:
        yield
    finally:
        stop.set()


def _stopped(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def url(host: str, port: int) -> str:
    where = f"[{host}]" if ":" in host else host
    return f"http://{where}:{port}/"



