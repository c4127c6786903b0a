"""The workflows runs are pinned to, read once per process.

A digest names immutable content, and a run's digest never changes, so both
are cached: a transition or a claim does not fetch and parse a compiled
workflow each time. The caches are shared by every thread of a worker (its
claim loop and its lane threads), hence the lock.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ..errors import NotFound
from .store import fetch_one

if TYPE_CHECKING:
    import psycopg

    from ..compiler.compiled import CompiledWorkflow
    from .store import Store

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """A bounded map, least recently used out first, safe to share between threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value, or ``make()``'s, cached. ``make`` runs outside the lock: two
        threads may both make a missing value; the values are equal, one is kept."""
        found = self.get(key)
        if found is None:
            found = make()
            self.put(key, found)
        return found

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


_workflows: Lru[str, CompiledWorkflow] = Lru(64)
_run_digests: Lru[str, str] = Lru(1024)


def compiled(cur: psycopg.Cursor[Any], digest: str) -> CompiledWorkflow:
    """The compiled workflow of ``digest``, fetched on first use in this process (inside
    the caller's transaction)."""
    return _workflows.get_or_make(
        digest, lambda: _parse(digest, fetch_one(cur, "load_workflow", {"digest": digest})))


def compiled_of(store: Store, digest: str) -> CompiledWorkflow:
    """``compiled``, for a caller that holds no transaction."""
    return _workflows.get_or_make(
        digest, lambda: _parse(digest, next(iter(store.execute("load_workflow",
                                                               {"digest": digest})), None)))


def _parse(digest: str, row: Any) -> CompiledWorkflow:
    from ..compiler.compiled import CompiledWorkflow

    if row is None:  # pragma: no cover - a foreign key forbids it
        raise NotFound(f"workflow {digest} is missing")
    return CompiledWorkflow.from_document(json.loads(row[0]))


def remember_run(run_id: str, digest: str) -> None:
    _run_digests.put(run_id, digest)


def known(run_id: str) -> CompiledWorkflow | None:
    """The workflow of a run this process has seen already, without a query (a
    transition uses it to lock the jobs a change will reach with the run)."""
    digest = _run_digests.get(run_id)
    return None if digest is None else _workflows.get(digest)
