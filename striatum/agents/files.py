"""Changes to files in a user's repository, planned before any is made: each can be shown
as a diff (``--dry-run``) and applied, and a plan that changes nothing is empty, which
is what makes running a command twice change nothing the second time."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class FileChange:
    path: Path
    before: str | None  # None: the file does not exist yet
    after: str

    @property
    def changes(self) -> bool:
        return self.before != self.after

    def diff(self, root: Path) -> str:
        name = os.path.relpath(self.path, root)
        return "".join(difflib.unified_diff(
            (self.before or "").splitlines(keepends=True), self.after.splitlines(keepends=True),
            fromfile="/dev/null" if self.before is None else f"a/{name}",
            tofile=f"b/{name}"))

    def apply(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".striatum-tmp")
        tmp.write_text(self.after, encoding="utf-8")
        os.replace(tmp, self.path)  # a reader never sees half a file


def read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}",
                         hint="striatum changes only text files it can read whole") from exc


def change(path: Path, after: str) -> FileChange:
    return FileChange(path, read(path), after)


def with_json_key(path: Path, keys: tuple[str, ...], value: Any) -> FileChange:
    """``path`` (a JSON object file) with ``value`` set at ``keys``, every other key kept
    as it was. A file that is not a JSON object is refused, never overwritten."""
    before = read(path)
    document = _json_object(path, before)
    node = _json_node(path, document, keys[:-1])
    if node.get(keys[-1]) == value:
        return FileChange(path, before, before or "")
    node[keys[-1]] = value
    return FileChange(path, before, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def with_json_items(path: Path, lists: dict[tuple[str, ...], list[str]]) -> FileChange:
    """``path`` (a JSON object file) with each list at ``keys`` holding its ``items``:
    those missing are appended, the user's own entries kept in their order, every other
    key kept as it was. A value there that is not a list is refused, never replaced."""
    before = read(path)
    document = _json_object(path, before)
    changed = False
    for keys, items in lists.items():
        node = _json_node(path, document, keys[:-1])
        found = node.setdefault(keys[-1], [])
        if not isinstance(found, list):
            raise UsageError(f"{path}: {'.'.join(keys)} is not a list; striatum will not "
                             "rewrite it", hint="fix the file, then run the command again")
        missing = [item for item in items if item not in found]
        found += missing
        changed = changed or bool(missing)
    if not changed:
        return FileChange(path, before, before or "")
    return FileChange(path, before, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def _json_object(path: Path, text: str | None) -> dict[str, Any]:
    try:
        document: Any = json.loads(text) if text and text.strip() else {}
    except ValueError as exc:
        raise UsageError(f"{path} is not valid JSON ({exc}); striatum will not rewrite it",
                         hint="fix or move the file, then run the command again") from exc
    if not isinstance(document, dict):
        raise UsageError(f"{path} holds a JSON {type(document).__name__}, not an object",
                         hint="fix or move the file, then run the command again")
    return document


def _json_node(path: Path, document: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The object at ``keys`` in ``document``, made when missing."""
    node = document
    for key in keys:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise UsageError(f"{path}: {key!r} is not an object; striatum will not rewrite it",
                             hint="fix the file, then run the command again")
        node = child
    return node


def with_toml_table(path: Path, keys: tuple[str, ...], value: dict[str, Any]) -> FileChange:
    """``path`` (a TOML file) with the table at ``keys`` set to ``value``, the rest of the
    file kept as written (comments and order too)."""
    import tomlkit
    from tomlkit.exceptions import TOMLKitError

    before = read(path)
    try:
        document = tomlkit.parse(before or "")
    except TOMLKitError as exc:
        raise UsageError(f"{path} is not valid TOML ({exc}); striatum will not rewrite it",
                         hint="fix or move the file, then run the command again") from exc
    node: Any = document
    for key in keys[:-1]:
        if key not in node:
            node[key] = tomlkit.table(is_super_table=True)
        node = node[key]
    if key_value(node, keys[-1]) == value:
        return FileChange(path, before, before or "")
    table = tomlkit.table()
    for name, item in value.items():
        table[name] = item
    node[keys[-1]] = table
    return FileChange(path, before, tomlkit.dumps(document))


def key_value(node: Any, key: str) -> Any:
    """A TOML table's value at ``key`` as plain Python (None when absent)."""
    found: Any = node.get(key) if hasattr(node, "get") else None
    return found.unwrap() if hasattr(found, "unwrap") else found


def with_section(path: Path, begin: str, end: str, body: str) -> FileChange:
    """``path`` with the text between the ``begin`` and ``end`` marker lines replaced by
    ``body``, or the marked section appended: a user's own text is never touched."""
    original = read(path)
    before = original or ""
    section = f"{begin}\n{body.rstrip()}\n{end}\n"
    start = before.find(begin)
    stop = before.find(end, start) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        after = before[:start] + section + before[stop + len(end):].lstrip("\n")
    else:
        after = before + ("\n" if before and not before.endswith("\n") else "") + \
            ("\n" if before.strip() else "") + section
    return FileChange(path, original, after)


def with_line(path: Path, line: str) -> FileChange:
    """``path`` with ``line`` appended unless a line of it is already exactly that."""
    before = read(path)
    text = before or ""
    if line in text.splitlines():
        return FileChange(path, before, text)
    return FileChange(path, before, text + ("\n" if text and not text.endswith("\n") else "")
                      + line + "\n")
