""""Did you mean": the one rule for finding a near name, used by every stage."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

CUTOFF = 0.6  # difflib's similarity ratio a name needs to be suggested


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option nearest to ``word``, or None when none is near enough."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=CUTOFF)
    return close[0] if close else None


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the nearest option, or None."""
    close = closest(word, options)
    return None if close is None else f"did you mean {close!r}?"
