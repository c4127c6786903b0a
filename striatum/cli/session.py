"""Open the store for a command.

Every change a command makes is audited by the core, in the transaction that
makes it (``runtime.audit``), as whoever STRIATUM_ACTOR names (else user@host).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ..runtime.store import Store


def settings() -> tuple[str, str | None]:
    ctx = click.get_current_context()
    root = ctx.find_root().obj
    return root.repo, root.dsn


@contextmanager
def store() -> Iterator[Store]:
    from ..runtime.config import open_store

    _, dsn = settings()
    opened = open_store(dsn)
    try:
        yield opened
    finally:
        opened.close()
