"""Writing many rows at once: a transition that touches thousands of jobs (starting a
large run, a fan-out's root readying every task) sends its rows as arrays, a bounded
batch per statement, instead of one statement a row.

Below ``MANY`` rows a transition keeps its statements per row: they are pipelined
and wait for nothing, where a batch of events waits once for its chain's head.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

MANY = 64  # from this many rows of one kind, a transition writes them in batches
BATCH = 5000  # rows per statement: bounds the size of one message to the server


def slices(items: Sequence[T], size: int = BATCH) -> Iterator[Sequence[T]]:
    """``items`` in slices of at most ``size``, in order."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def columns(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows of named values as one array per name (the parameters of an ``unnest``)."""
    return {name: [row[name] for row in rows] for name in names}
