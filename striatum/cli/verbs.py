"""A command that is one registry verb: call it, then print its document.

The command builds the verb's parameters from its arguments; the document it
prints with ``--json`` is the verb's result, the one every other face returns
for the same call, and its text is rendered from that document alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EXIT_OK
from .output import emit_json
from .session import settings


def call(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The result document of registry verb ``name``, called as this command's caller."""
    from ..runtime.config import open_store
    from ..server.registry import VERBS, Session, invoke

    repo, dsn = settings()
    session = Session(repo, lambda: open_store(dsn))
    try:
        return invoke(VERBS[name], params, session)
    finally:
        session.close()


def show(name: str, params: dict[str, Any], as_json: bool,
         render: Callable[[dict[str, Any]], None]) -> int:
    """Call the verb and print its document: as JSON, or as ``render`` words it."""
    document = call(name, params)
    if as_json:
        emit_json(document)
    else:
        render(document)
    return EXIT_OK
