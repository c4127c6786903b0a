"""Stage 2 of the DSL: positioned JSON -> the plain document plus a locator.

It reports what a JSON object cannot hold: a key given twice.
"""

from __future__ import annotations

from typing import Any

from ..diagnostics import Diagnostic, Path, diag
from ..text import clip
from .nodes import Array, Entry, Node, Object, Position, Scalar, placed


class DslLocator:
    """``(path, key) -> (line, column)``, answered from the positions the parser kept."""

    def __init__(self, values: dict[Path, Position], keys: dict[Path, Position]) -> None:
        self._values = values
        self._keys = keys

    def __call__(self, path: Path, key: bool = False) -> Position:
        if key and path in self._keys:
            return self._keys[path]
        probe = path
        # A path to something not written (a default, a missing key): point
        # at the nearest enclosing thing that was.
        while probe not in self._values:
            if not probe:
                return 1, 1
            probe = probe[:-1]
        return self._values[probe]


class _Builder:
    def __init__(self) -> None:
        self.values: dict[Path, Position] = {}
        self.keys: dict[Path, Position] = {}
        self.problems: list[Diagnostic] = []

    def node(self, node: Node, path: Path) -> Any:
        self.values[path] = node.at
        if isinstance(node, Scalar):
            return node.value
        if isinstance(node, Array):
            return [self.node(item, (*path, i)) for i, item in enumerate(node.items)]
        return self.object(node, path)

    def object(self, node: Object, path: Path) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first: dict[str, Entry] = {}
        for entry in node.entries:
            child = (*path, entry.key)
            if entry.key in first:
                self.problems.append(_twice(node, entry, first[entry.key], child))
                continue
            first[entry.key] = entry
            if entry.key_at is not None:
                self.keys[child] = entry.key_at
            out[entry.key] = self.node(entry.value, child)
        return out


def _twice(node: Object, entry: Entry, first: Entry, path: Path) -> Diagnostic:
    line, column = entry.key_at or entry.value.at
    was = first.key_at or first.value.at
    message = node.twice.replace("{}", clip(entry.word or entry.key))
    return placed(diag("STR011", message, path,
                       hint=f"the first is at line {was[0]}, column {was[1]}; remove one"),
                  (line, column))


def build(root: Object) -> tuple[dict[str, Any], DslLocator, list[Diagnostic]]:
    """Stage 2: the raw document, its locator, and what the document could not hold."""
    builder = _Builder()
    document = builder.object(root, ())
    builder.values[()] = root.at
    locator = DslLocator(builder.values, builder.keys)
    return document, locator, builder.problems
