"""Glob intersection for STR305: whether two `writes` globs can match the same path.

Each glob is tokenized into a small automaton; two globs overlap when the
product of their automata reaches its goal, and the path it spells is an example.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from functools import cache

_LIT, _ONE, _STAR, _ANY, _SKIP_2 = range(5)
_Token = tuple[int, str]


def _glob_tokens(pattern: str) -> tuple[_Token, ...]:
    """``?`` one non-'/' char; ``*`` a run of them; ``**`` any run; ``**/`` also nothing
    (so ``src/**/x.py`` covers ``src/x.py``, as in gitignore); ``[...]`` one non-'/' char
    whatever the class holds (conservative); anything else itself."""
    out: list[_Token] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            if j - i == 1:
                out.append((_STAR, ""))
            elif j < n and pattern[j] == "/":
                # `**/` is (any run, then '/') or nothing: the group may be jumped over.
                out.extend(((_SKIP_2, ""), (_ANY, ""), (_LIT, "/")))
                j += 1
            else:
                out.append((_ANY, ""))
            i = j
        elif c == "?":
            out.append((_ONE, ""))
            i += 1
        elif c == "[" and (close := _class_end(pattern, i)) > 0:
            out.append((_ONE, ""))
            i = close + 1
        else:
            out.append((_LIT, c))
            i += 1
    return tuple(out)


def _class_end(pattern: str, start: int) -> int:
    """The index of the ']' closing the class at ``start``, or -1 (then '[' is literal)."""
    j = start + 1
    if j < len(pattern) and pattern[j] == "!":
        j += 1
    if j < len(pattern) and pattern[j] == "]":
        j += 1  # a ']' first in the class is a member, as in fnmatch
    return pattern.find("]", j)


def _closures(tokens: tuple[_Token, ...]) -> list[tuple[int, ...]]:
    """For each position, the positions reachable from it by matching nothing."""
    out: list[tuple[int, ...]] = [()] * (len(tokens) + 1)
    out[len(tokens)] = (len(tokens),)
    for i in range(len(tokens) - 1, -1, -1):
        kind = tokens[i][0]
        if kind in (_STAR, _ANY):
            out[i] = (i, *out[i + 1])
        elif kind == _SKIP_2:
            out[i] = tuple(dict.fromkeys((i, *out[i + 1], *out[i + 3])))
        else:
            out[i] = (i,)
    return out


def _step(tokens: tuple[_Token, ...], i: int, c: str) -> tuple[int, ...]:
    if i == len(tokens):
        return ()
    kind, value = tokens[i]
    if kind == _LIT:
        return (i + 1,) if c == value else ()
    if kind == _ONE:
        return (i + 1,) if c != "/" else ()
    if kind == _STAR:
        return (i,) if c != "/" else ()
    if kind == _ANY:
        return (i,)
    return ()  # _SKIP_2 only jumps


class GlobsTooComplex(Exception):
    """The search for a common path passed its budget (only adversarial globs get here)."""


def glob_witness(a: str, b: str, *, budget: int = 100_000) -> str | None:
    """A path both globs match (a shortest one), or None when no path matches both.

    Breadth-first search of the product of the two patterns' automata. Chars
    that neither pattern names behave alike, so one stand-in (``other``) is
    tried for all of them; and in a given state only the literals the two
    current tokens want can differ from it, so each state tries at most four
    chars. Raises GlobsTooComplex after looking at ``budget`` transitions.
    """
    ta, tb = _glob_tokens(a), _glob_tokens(b)
    ca, cb = _closures(ta), _closures(tb)
    literals = {value for kind, value in ta + tb if kind == _LIT}
    other = next(c for c in map(chr, itertools.count(ord("x"))) if c not in literals)
    goal = (len(ta), len(tb))
    parent: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {}
    queue: deque[tuple[int, int]] = deque()
    work = 0
    for state in itertools.product(ca[0], cb[0]):
        parent[state] = None
        queue.append(state)
    while queue:
        state = queue.popleft()
        if state == goal:
            return _spell(parent, state)
        for c in _chars_at(ta, tb, state, other):
            for ni in _step(ta, state[0], c):
                for nj in _step(tb, state[1], c):
                    work += len(ca[ni]) * len(cb[nj])
                    if work > budget:
                        raise GlobsTooComplex(f"{a!r} and {b!r}")
                    for nxt in itertools.product(ca[ni], cb[nj]):
                        if nxt not in parent:
                            parent[nxt] = (state, c)
                            queue.append(nxt)
    return None


def _chars_at(ta: tuple[_Token, ...], tb: tuple[_Token, ...], state: tuple[int, int],
              other: str) -> dict[str, None]:
    wanted = dict.fromkeys(("/", other))
    for tokens, i in ((ta, state[0]), (tb, state[1])):
        if i < len(tokens) and tokens[i][0] == _LIT:
            wanted[tokens[i][1]] = None
    return wanted


def _spell(parent: dict[tuple[int, int], tuple[tuple[int, int], str] | None],
           state: tuple[int, int]) -> str:
    chars = []
    link = parent[state]
    while link is not None:
        state, c = link
        chars.append(c)
        link = parent[state]
    return "".join(reversed(chars))


@cache
def globs_overlap(a: str, b: str) -> bool:
    """Whether some path matches both globs."""
    # Every token matches something, so a glob always overlaps itself; jobs
    # often share one, and this skips the search for it.
    if a == b:
        return True
    try:
        return glob_witness(a, b) is not None
    except GlobsTooComplex:
        return True  # "may both write" stays true when we cannot tell


def _literal_prefix(pattern: str) -> str:
    match = re.match(r"[^*?\[]*", pattern)
    return match.group() if match else ""


def _overlapping_patterns(patterns: list[str]) -> dict[str, list[str]]:
    """pattern -> the patterns (itself included) that may match a path it matches.

    Two globs can only share a path when one's literal prefix starts the
    other's; sorting the prefixes turns that into a range scan, so a
    10,000-job workflow with a directory each does not compare every pair.
    """
    by_prefix: dict[str, list[str]] = {}
    for pattern in patterns:
        by_prefix.setdefault(_literal_prefix(pattern), []).append(pattern)
    prefixes = sorted(by_prefix)
    out: dict[str, list[str]] = {pattern: [] for pattern in patterns}
    for i, prefix in enumerate(prefixes):
        j = i
        # The prefixes that extend this one are a run in sorted order, from it on.
        while j < len(prefixes) and prefixes[j].startswith(prefix):
            mine, theirs = by_prefix[prefix], by_prefix[prefixes[j]]
            for k, p in enumerate(mine):
                for q in theirs[k:] if j == i else theirs:  # each pair once
                    if globs_overlap(p, q):
                        out[p].append(q)
                        if q != p:
                            out[q].append(p)
            j += 1
    return out


def _nonempty_stars(pattern: str) -> str:
    return re.sub(r"(?<!\*)\*(?!\*)", "?*", pattern)
