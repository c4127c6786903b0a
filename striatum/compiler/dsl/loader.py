"""The DSL pipeline: text -> positioned JSON -> document, locator and diagnostics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path as FsPath
from typing import Any

from lark.exceptions import UnexpectedInput

from ..diagnostics import Diagnostic, diag
from ..load import Source
from ..text import newlines_only
from .build import DslLocator, build
from .nodes import Rejected, parse_nodes, placed
from .syntax import syntax_diagnostic


def parse_dsl(text: str, file: str) -> Source:
    """Parse DSL ``text``; every failure is a located STR0xx diagnostic, never an exception."""
    document: dict[str, Any] | None
    locator: DslLocator | None
    try:
        document, locator, problems = _parse(text)
    except Exception as exc:  # noqa: BLE001 - the loader's promise: a diagnostic, no traceback
        document, locator = None, None
        problems = [placed(diag("STR011", f"the DSL parser failed: {type(exc).__name__}: {exc}",
                                hint="please report this with the file that caused it"),
                           (1, 1))]
    located = sorted((replace(p, file=file) for p in problems),
                     key=lambda d: (d.line or 0, d.column or 0, d.code))
    if located:
        document = None
    return Source(file, "dsl", text, document, locator, located, FsPath(file).parent)


def _parse(text: str) -> tuple[dict[str, Any] | None, DslLocator | None, list[Diagnostic]]:
    # lark counts lines by '\n' alone: with each bare '\r' made one, its lines are the
    # lines an editor shows, at the same offsets (a bare '\r' is never inside a token).
    text = newlines_only(text)
    try:
        root = parse_nodes(text)
    except UnexpectedInput as error:
        return None, None, [syntax_diagnostic(text, error)]
    except Rejected as rejected:
        return None, None, [placed(diag("STR011", rejected.message), rejected.at)]
    return build(root)
