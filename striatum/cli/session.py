"""Open the store for a command, and record every mutating command in the audit chain.

The audit row (actor, verb, a digest of the arguments, outcome) is written in
its own transaction after the command, whether it succeeded or was refused:
a refused stale completion is exactly what an investigator wants to see.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click

from ..errors import StriatumError

if TYPE_CHECKING:
    from ..runtime.store import Store


def actor() -> str:
    configured = os.environ.get("STRIATUM_ACTOR")
    if configured:
        return configured
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


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


@contextmanager
def audited(verb: str, args: dict[str, Any]) -> Iterator[Store]:
    from ..runtime.audit import append_audit
    from ..runtime.store import fetch_one

    with store() as opened:
        outcome = "ok"
        try:
            yield opened
        except StriatumError as exc:
            outcome = exc.code
            raise
        except BaseException:
            outcome = "error"
            raise
        finally:
            safe_args = {k: v for k, v in args.items() if k not in ("lease", "token")}
            try:
                opened.transaction(lambda cur: append_audit(
                    cur, actor=actor(), verb=verb, args=safe_args, outcome=outcome,
                    at=fetch_one(cur, "now")[0]))
            except StriatumError:
                pass  # the command's own outcome matters more than its audit row
