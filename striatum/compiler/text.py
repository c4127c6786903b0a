"""Lines and echoes: how diagnostics count lines, and how they quote what was written.

A line ends at ``\\r\\n``, ``\\r`` or ``\\n``, as editors (and Jinja) count
them, in every position striatum reports: the JSON locator, the DSL's tokens,
a byte that is not UTF-8, a template's line, and the source line the CLI draws
a caret under. A value a message quotes is cut to ``ECHO_LIMIT`` characters,
the longest a name may be, so a 10,000-character id does not fill the screen.
"""

from __future__ import annotations

import bisect
import re

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BARE_CR = re.compile(r"\r(?!\n)")
ECHO_LIMIT = 64


def line_starts(text: str) -> list[int]:
    """The offset where each line starts."""
    return [0, *(m.end() for m in LINE_BREAK.finditer(text))]


def position_in(starts: list[int], offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of ``offset`` given the text's ``line_starts``."""
    line = bisect.bisect_right(starts, offset) - 1
    return line + 1, offset - starts[line] + 1


def position(text: str, offset: int) -> tuple[int, int]:
    """(line, column), both from 1, of ``offset`` in ``text``."""
    return position_in(line_starts(text), offset)


def lines(text: str) -> list[str]:
    """The lines, without their breaks (a break at the very end opens no line)."""
    parts = LINE_BREAK.split(text)
    return parts[:-1] if parts and not parts[-1] else parts


def line(text: str, number: int) -> str | None:
    """Line ``number`` (from 1), or None past the end."""
    found = lines(text)
    return found[number - 1] if 1 <= number <= len(found) else None


def newlines_only(text: str) -> str:
    """``text`` with each bare ``\\r`` made a ``\\n``: the same offsets, and the same
    lines for a parser that only counts ``\\n`` (a ``\\r\\n`` it already counts once)."""
    return _BARE_CR.sub("\n", text)


def clip(value: str, limit: int = ECHO_LIMIT) -> str:
    """``value``, cut to ``limit`` characters with an ellipsis when it is longer."""
    return value if len(value) <= limit else value[:limit - 1] + "…"


def echo(value: object) -> str:
    """A value as a message quotes it: ``repr`` of a string cut to ``ECHO_LIMIT``."""
    return repr(clip(value)) if isinstance(value, str) else clip(repr(value))
