"""Read a workflow file (JSON or DSL) into a raw document, or say exactly why not.

The raw document is JSON-shaped whichever syntax was written: the DSL loader
builds the same dicts and lists, plus a position table, so the schema, the IR
and every later stage see one form and point back into the file the user wrote.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostic, Locator, diag
from .text import echo, position

if TYPE_CHECKING:
    from .jsonpos import JsonLocator

# Room for a generated workflow of 100,000 jobs (20-30 MB), well short of a data dump.
MAX_BYTES = 48 * 1024 * 1024
JSON_SUFFIXES = (".json",)
DSL_SUFFIXES = (".stm", ".striatum")


@dataclass
class Source:
    """A file that was read and parsed (``document`` is None when it could not be)."""

    file: str
    format: str  # "json" or "dsl"
    text: str
    document: Any
    locator: Locator | None
    diagnostics: list[Diagnostic]
    directory: FsPath

    @property
    def ok(self) -> bool:
        return self.document is not None and not self.diagnostics


def _fail(file: str, fmt: str, d: Diagnostic, line: int = 1, column: int = 1,
          text: str = "") -> Source:
    located = Diagnostic(d.code, d.message, d.path, d.hint, d.severity, file, line, column)
    return Source(file, fmt, text, None, None, [located], FsPath(file).parent)


def detect_format(path: str, text: str) -> str:
    lower = path.lower()
    if lower.endswith(JSON_SUFFIXES):
        return "json"
    if lower.endswith(DSL_SUFFIXES):
        return "dsl"
    return "json" if text.lstrip().startswith("{") else "dsl"


def read_source(path: str, *, fmt: str | None = None) -> Source:
    """Read ``path``; every failure is a located diagnostic, never an exception."""
    guess = fmt or ("dsl" if path.lower().endswith(DSL_SUFFIXES) else "json")
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return _fail(path, guess, diag("STR001", f"no such file: {path}",
                                        hint="check the path; `striatum workflow init` "
                                             "writes a starter workflow"))
    except OSError as exc:
        return _fail(path, guess, diag("STR007", f"cannot read {path}: {exc.strerror}"))
    if os.path.isdir(path):
        return _fail(path, guess, diag("STR002", f"{path} is a directory, not a workflow file",
                                        hint="name the workflow.json or .stm file inside it"))
    if stat.st_size > MAX_BYTES:
        return _fail(path, guess, diag(
            "STR005", f"file is {stat.st_size:,} bytes; the limit is {MAX_BYTES:,}",
            hint="a workflow of 100,000 jobs is 20-30 MB; is this the right file?"))
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        return _fail(path, guess, diag("STR007", f"cannot read {path}: {exc.strerror}"))
    return parse_bytes(raw, path, fmt=fmt)


def parse_bytes(raw: bytes, file: str, *, fmt: str | None = None) -> Source:
    guess = fmt or ("dsl" if file.lower().endswith(DSL_SUFFIXES) else "json")
    if len(raw) > MAX_BYTES:
        return _fail(file, guess, diag("STR005", f"more than {MAX_BYTES:,} bytes"))
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, column = _byte_position(raw, nul)
        return _fail(file, guess, diag("STR003", "binary data (a NUL byte): this is not a "
                                                 "workflow text file"), line, column)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _byte_position(raw, exc.start)
        return _fail(file, guess, diag(
            "STR003", f"not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
            hint="save the file as UTF-8"), line, column)
    if not text.strip():
        return _fail(file, guess, diag("STR004", "the file is empty",
                                        hint="`striatum workflow init DIR` writes a starter"),
                     text=text)
    fmt = fmt or detect_format(file, text)
    if fmt == "json":
        return parse_json(text, file)
    if fmt == "dsl":
        from .dsl import parse_dsl

        return parse_dsl(text, file)
    return _fail(file, fmt, diag("STR006", f"unknown format {fmt!r}", hint="use json or dsl"))


def _byte_position(raw: bytes, offset: int) -> tuple[int, int]:
    """Where the byte at ``offset`` is, counting the characters before it on its line."""
    before = raw[:offset].decode("utf-8", "replace")
    return position(before, len(before))


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return result


class _BadNumber(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a JSON number")


_LONE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse_json(text: str, file: str) -> Source:
    from .jsonpos import JsonLocator

    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates,
                              parse_constant=_reject_constant)
    except _BadNumber as exc:
        word = re.search(r"-?\b(NaN|Infinity)\b", text)
        line, column = JsonLocator(text).offset_to_position(word.start() if word else 0)
        return _fail(file, "json", diag("STR010", f"invalid JSON: {exc}",
                                         hint="use an integer"), line, column, text)
    except json.JSONDecodeError as exc:
        # json counts only '\n' as a line break; the locator counts what editors count.
        line, column = JsonLocator(text).offset_to_position(exc.pos)
        return _fail(file, "json", diag("STR010", f"invalid JSON: {exc.msg}",
                                         hint=_json_hint(exc)), line, column, text)
    except _DuplicateKey as exc:
        locator = JsonLocator(text)
        line, column = _find_duplicate(text, exc.key, locator)
        return _fail(file, "json", diag(
            "STR010", f"key {echo(exc.key)} appears twice in one object",
            hint="JSON keeps only the last one; remove or rename the other"), line, column, text)
    except RecursionError:
        return _fail(file, "json", diag("STR012", "the document is nested too deeply",
                                         hint="a workflow needs at most 6 levels"), text=text)
    except ValueError:
        # Python refuses integers of more than 4,300 digits (a guard against
        # quadratic-time conversion); no workflow needs one.
        digits = re.search(r"\d{1000,}", text)
        line, column = JsonLocator(text).offset_to_position(digits.start() if digits else 0)
        return _fail(file, "json", diag("STR010", "invalid JSON: a number has more than "
                                                  "4,300 digits",
                                         hint="use an integer of at most a few digits"),
                     line, column, text)
    surrogate = _unpaired_surrogate(text, document)
    if surrogate is not None:
        line, column = JsonLocator(text).offset_to_position(surrogate)
        return _fail(file, "json", diag(
            "STR003", "a \\u escape names half of a UTF-16 surrogate pair, which is not text",
            hint="write the character itself, or both halves of the pair"), line, column, text)
    return Source(file, "json", text, document, JsonLocator(text), [], FsPath(file).parent)


def _unpaired_surrogate(text: str, document: Any) -> int | None:
    """Offset of a lone surrogate escape, which json.loads accepts but UTF-8 cannot hold."""
    first = _LONE_SURROGATE.search(text)
    if first is None:
        return None
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return first.start()
    return None


def _find_duplicate(text: str, key: str, locator: JsonLocator) -> tuple[int, int]:
    needle = json.dumps(key)
    hits = [m.start() for m in re.finditer(re.escape(needle) + r"\s*:", text)]
    offset = hits[1] if len(hits) > 1 else (hits[0] if hits else 0)
    return locator.offset_to_position(offset)


def _json_hint(exc: json.JSONDecodeError) -> str | None:
    if "Expecting property name" in exc.msg:
        return "a trailing comma before '}' or an unquoted key? JSON keys need double quotes"
    if "Expecting ',' delimiter" in exc.msg:
        return "a missing comma between two items?"
    if "Extra data" in exc.msg:
        return "there is text after the end of the top-level object"
    if "Expecting value" in exc.msg and exc.pos >= len(exc.doc.rstrip()):
        return "the file ends early: is it truncated?"
    if "Expecting value" in exc.msg:
        return "a trailing comma, a single-quoted string or a comment? JSON allows none"
    return None
