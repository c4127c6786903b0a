"""A command that is one registry verb: call it, then print its document.

The command builds the verb's parameters from its arguments; the document it
prints with ``--json`` is the verb's result, the one every other face returns
for the same call, and its text is rendered from that document alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import EXIT_OK
from .calls import calls
from .output import emit_json


def call(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """The result document of registry verb ``name``, on a connection of this command's
    own: a loop that polls with it (the dashboard) would have the daemon audit every
    read it makes."""
    with calls(direct=True) as caller:
        return caller(name, params)


def show(name: str, params: dict[str, Any], as_json: bool,
         render: Callable[[dict[str, Any]], None]) -> int:
    """Call the verb (through the daemon when it serves this command's database:
    ``calls``) and print its document: as JSON, or as ``render`` words it."""
    with calls() as caller:
        document = caller(name, params)
    if as_json:
        emit_json(document)
    else:
        render(document)
    return EXIT_OK
