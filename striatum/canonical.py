"""Canonical JSON: the one byte form that digests and hash chains are taken over.

Keys sorted, no insignificant whitespace, UTF-8 without escaping non-ASCII,
integers only (floats are refused: their text form is not portable between
implementations, and nothing in a workflow or an event needs one).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def _check(value: Any, where: str) -> None:
    if isinstance(value, float):
        raise TypeError(f"canonical JSON refuses floats (at {where or '/'})")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"canonical JSON needs string keys (at {where or '/'})")
            _check(item, f"{where}/{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check(item, f"{where}/{index}")


def canonical_json(value: Any) -> bytes:
    _check(value, "")
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
