"""Building or reading something large without the garbage collector's pauses.

A parsed 10,000-job workflow is about a million live objects; reading a 10,000-job run
makes tens of thousands that all live until the answer is sent (a record a job, its
JSON, a hold a job); none of them is in a cycle. The collector, run every 700
allocations, walks them again and again while they pile up: about a third of
``run.status`` and ``why`` of such a run (``python -m bench bigrun``), and enough to
make checking, compiling, linting and planning a workflow grow faster than linearly
(``python -m bench compile``). Paused for the block, it collects what is left once,
afterwards, as usual.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_readers = 0  # reads in progress in this process (a daemon reads from many threads)
_was_enabled = False


@contextmanager
def paused() -> Iterator[None]:
    """The collector off while the block runs, back as it was when the last block in
    any thread ends (a process that turned it off itself keeps it off)."""
    global _readers, _was_enabled
    with _lock:
        if _readers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _readers += 1
    try:
        yield
    finally:
        with _lock:
            _readers -= 1
            if _readers == 0 and _was_enabled:
                gc.enable()
