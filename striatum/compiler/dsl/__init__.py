"""The DSL loader: workflow text in the DSL -> the same raw document JSON gives.

Two stages, each callable on its own (docs/dsl.md describes the language):

1. ``nodes.parse_nodes``: lark's LALR parser, with the contextual lexer, turns
   the text into *positioned JSON*: the document's shape plus where every part
   was written. A syntax error becomes one STR011 diagnostic
   (``syntax.syntax_diagnostic``) saying in words what was found and what was
   expected.
2. ``build.build``: positioned JSON -> the plain document plus a locator,
   reporting what a JSON object cannot hold (a key given twice).

``parse_dsl`` chains them and never raises, whatever the text; ``printer``
writes a workflow back as DSL text. lark is imported only when a DSL text is
parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..load import Source


def parse_dsl(text: str, file: str) -> Source:
    """Parse DSL ``text``; every failure is a located STR0xx diagnostic, never an exception."""
    from .loader import parse_dsl as parse

    return parse(text, file)
