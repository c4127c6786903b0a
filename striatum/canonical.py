"""Canonical JSON: the one byte form that digests and hash chains are taken over.

Keys sorted, no insignificant whitespace, UTF-8 without escaping non-ASCII,
integers only (floats are refused: their text form is not portable between
implementations, and nothing in a workflow or an event needs one).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _where(value: Any, where: str = "") -> str | None:
    """The path of the first float or non-string key (slow; only to word the error)."""
    if isinstance(value, float):
        return where or "/"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return where or "/"
            found = _where(item, f"{where}/{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _where(item, f"{where}/{index}")
            if found:
                return found
    return None


_SCALARS = frozenset({str, int, bool, type(None)})


def _check(value: Any) -> None:
    # Runs on every event and on whole compiled workflows, so the common case
    # (containers of plain scalars) is decided by set(map(type, ...)) in C.
    stack = [value]
    while stack:
        item = stack.pop()
        children: Any
        if isinstance(item, dict):
            if not set(map(type, item)) <= {str}:
                raise TypeError(f"canonical JSON needs string keys (at {_where(value)})")
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        elif isinstance(item, float):
            raise TypeError(f"canonical JSON refuses floats (at {_where(value)})")
        else:
            continue
        if not set(map(type, children)) <= _SCALARS:
            stack.extend(c for c in children if type(c) not in _SCALARS)


def canonical_json(value: Any, *, verify: bool = True) -> bytes:
    """``verify=False`` is for documents built by striatum from already-checked data
    (the compiled workflow, built from the IR whose numbers are ints by construction)."""
    if verify:
        _check(value)
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def text_safe(value: Any) -> Any:
    """``value`` with every string made one that UTF-8 and PostgreSQL (and so the record)
    can hold: a lone surrogate (a byte of a file name that was not UTF-8, kept by
    ``surrogateescape``; an escape in an agent's JSON) is written as its ``\\udcXX``
    escape, and a NUL as ``\\u0000``: a text column cannot hold one, nor jsonb its
    escape, so a reason carrying one would fail the transition that records it."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "\\u0000")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {text_safe(k): text_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        items = [text_safe(v) for v in value]
        return type(value)(items) if isinstance(value, tuple) else items
    return value


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
