"""Positions inside a JSON text, found only when a diagnostic needs one.

``json.loads`` is ~200x faster than any parser that keeps positions, so the
document is parsed without them and this scanner walks the (already valid)
text once, on the first lookup, to index where every key and value starts.
"""

from __future__ import annotations

import re
from functools import cached_property

from .diagnostics import Path
from .text import line_starts, position_in

_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')
_ESCAPE_FREE = re.compile(r'"[^"\\]*"')


class JsonLocator:
    def __init__(self, text: str) -> None:
        self._text = text

    @cached_property
    def _line_starts(self) -> list[int]:
        return line_starts(self._text)

    @cached_property
    def _index(self) -> tuple[dict[Path, int], dict[Path, int]]:
        import json

        values: dict[Path, int] = {}
        keys: dict[Path, int] = {}
        # Each frame: [path, is_object, next_index, expecting_key]
        stack: list[list[object]] = []
        expecting_value_at: Path | None = ()
        for match in _TOKEN.finditer(self._text):
            token = match.group()
            start = match.start()
            if token in ",:":
                if token == "," and stack:
                    frame = stack[-1]
                    if frame[1]:
                        frame[3] = True
                    else:
                        path = frame[0]
                        assert isinstance(path, tuple)
                        index = frame[2]
                        assert isinstance(index, int)
                        frame[2] = index + 1
                        expecting_value_at = (*path, index + 1)
                continue
            if token in "}]":
                stack.pop()
                expecting_value_at = None
                continue
            if stack and stack[-1][1] and stack[-1][3]:
                # An object key.
                frame = stack[-1]
                key = token[1:-1] if _ESCAPE_FREE.fullmatch(token) else json.loads(token)
                path = frame[0]
                assert isinstance(path, tuple)
                child = (*path, key)
                keys.setdefault(child, start)
                frame[3] = False
                expecting_value_at = child
                continue
            here = expecting_value_at if expecting_value_at is not None else ()
            values.setdefault(here, start)
            if token == "{":
                stack.append([here, True, 0, True])
                expecting_value_at = None
            elif token == "[":
                stack.append([here, False, 0, False])
                expecting_value_at = (*here, 0)
            else:
                expecting_value_at = None
        return values, keys

    def offset_to_position(self, offset: int) -> tuple[int, int]:
        return position_in(self._line_starts, offset)

    def __call__(self, path: Path, key: bool = False) -> tuple[int, int]:
        values, keys = self._index
        probe = path
        while True:
            table = keys if key and probe == path else values
            if probe in table:
                return self.offset_to_position(table[probe])
            if not probe:
                return 1, 1
            # A path into something that is not there (a missing key): point
            # at the nearest enclosing value.
            probe = probe[:-1]
