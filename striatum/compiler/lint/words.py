"""Words shared by the lint messages: quoted lists of names."""

from __future__ import annotations

from collections.abc import Iterable


def _quoted(ids: Iterable[str], limit: int = 6) -> str:
    """'a', 'b' and 'c' (and at most ``limit`` names, then "and N more")."""
    names = [repr(i) for i in ids]
    if len(names) > limit:
        names = [*names[:limit - 1], f"{len(names) - limit + 1} more"]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _jobs_phrase(ids: list[str]) -> str:
    return ("job " if len(ids) == 1 else "jobs ") + _quoted(ids)
