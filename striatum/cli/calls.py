"""How a command calls its registry verb: through the home's daemon when one serves the
database the command would use, else on a connection of its own (docs/daemon.md).

Both ways the command builds the verb's parameters, calls it, and renders the
verb's result document, so the output and the exit codes are the same; only the
direct way imports psycopg (and jsonschema, to check the parameters here rather
than in the daemon).

The daemon is used when no ``--direct`` (or ``STRIATUM_DIRECT``) was given, its
socket accepts a connection, and either the command names no DSN or the daemon was
started with that same DSN (the sha256 in its runtime folder). A socket nobody
listens on (a killed daemon's) means the direct way; a daemon that goes away
during a call is ``DaemonUnavailable`` (exit 6), since the call may have applied.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import DaemonUnavailable, UsageError

if TYPE_CHECKING:
    from ..runtime.store import Store
    from ..server.client import Client
    from ..server.registry import Session


class Caller:
    """The verbs of one command, called on one connection: the daemon's or a store's."""

    def __init__(self, client: Client | None, session: Session | None) -> None:
        self.client = client
        self.session = session

    @property
    def routed(self) -> bool:
        return self.client is not None

    def __call__(self, verb: str, params: dict[str, Any]) -> dict[str, Any]:
        if self.client is not None:
            found: dict[str, Any] = self.client.call(verb, params)
            return found
        from ..server.registry import VERBS, invoke

        assert self.session is not None
        return invoke(VERBS[verb], params, self.session)

    @property
    def store(self) -> Store:
        """The direct way's store (a worker started after the call needs its DSN)."""
        assert self.session is not None, "the daemon's way has no store of its own"
        return self.session.store

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        if self.session is not None:
            self.session.close()


@contextmanager
def calls(*, direct: bool = False) -> Iterator[Caller]:
    """A caller for this command line; ``direct``: never through the daemon (a command
    that goes on to work a run keeps connections of its own)."""
    root = click.get_current_context().find_root().obj
    client = None if direct or root.direct else daemon_client(root.repo, root.dsn)
    session = None
    if client is None:
        from ..runtime.config import open_store
        from ..server.registry import Session

        dsn = root.dsn
        session = Session(root.repo, lambda: open_store(dsn))
    caller = Caller(client, session)
    try:
        yield caller
    finally:
        caller.close()


def daemon_client(repo: str, dsn: str | None) -> Client | None:
    """A client connected to the home's daemon, if it serves the database ``dsn`` names
    (None: the home's default), else None."""
    from ..server.place import runtime_dir
    from ..server.where import serves

    place = runtime_dir()
    if not serves(str(place.path), dsn):
        return None
    from ..runtime.actor import default_actor
    from ..server.client import Client

    client = Client(place, actor=default_actor(), repo=os.path.abspath(repo))
    try:
        return client.connect()
    except (DaemonUnavailable, UsageError):  # refused (a killed daemon's socket), too long
        return None
