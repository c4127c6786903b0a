"""The glob dialect of a job's ``writes``, defined once.

``tokens`` reads a glob; from its tokens come both the matcher the runtime
checks changed paths with (``matches``) and the automaton lint intersects to
find parallel jobs that may write the same path (``glob_witness``), so the two
can never disagree about what a glob means.

- ``?`` is one character other than ``/``;
- ``*`` is any run of characters other than ``/``, the empty one included;
- ``**`` is any run of characters, ``/`` included; ``**/`` is such a run
  ending in ``/``, or nothing, so ``src/**/x.py`` also matches ``src/x.py``;
- ``[abc]`` and ``[a-z]`` are one character of the class, ``[!abc]`` (or
  ``[^abc]``) one character not in it; a class never matches ``/``. A ``]``
  right after the opening ``[``, ``[!`` or ``[^`` is a member, ``-`` first or
  last is itself, and a range written backwards (``[z-a]``) holds nothing;
- an unclosed ``[`` and every other character match themselves; there is no
  escape character (``[*]`` matches a ``*``).

A glob matches a path when it matches the whole path. Pure: no I/O.
"""

from __future__ import annotations

import itertools
import re
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

# A set of characters: sorted, disjoint, inclusive ranges of code points.
Chars = tuple[tuple[int, int], ...]

_MAX = 0x10FFFF
_SLASH = ord("/")
ANY_CHAR: Chars = ((0, _MAX),)
NOT_SLASH: Chars = ((0, _SLASH - 1), (_SLASH + 1, _MAX))

# Token kinds: consume one character of the set; consume any number of them;
# or (``**/``) jump over the next two tokens, matching nothing.
ONE, LOOP, SKIP = range(3)
Token = tuple[int, Chars]
_SKIP_GROUP = 2  # the tokens a SKIP may jump over: (LOOP any char, ONE '/')
_CACHED = 4096  # globs whose tokens, regex and automaton are kept (a worker lives long)


def _char(c: str) -> Chars:
    return ((ord(c), ord(c)),)


def _union(ranges: list[tuple[int, int]]) -> Chars:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return tuple(out)


def intersect(a: Chars, b: Chars) -> Chars:
    """The characters in both sets."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _complement(chars: Chars) -> Chars:
    out, start = [], 0
    for lo, hi in chars:
        if start < lo:
            out.append((start, lo - 1))
        start = hi + 1
    if start <= _MAX:
        out.append((start, _MAX))
    return tuple(out)


def _class_end(glob: str, start: int) -> int:
    """The index of the ``]`` closing the class opened at ``start``, or -1."""
    j = start + 1
    if j < len(glob) and glob[j] in "!^":
        j += 1
    if j < len(glob) and glob[j] == "]":
        j += 1
    return glob.find("]", j)


def _class(body: str) -> Chars:
    """The characters a class matches; ``body`` is what stands between the brackets."""
    negate = body[:1] in ("!", "^")
    members = body[1:] if negate else body
    ranges, k = [], 0
    while k < len(members):
        if k + 2 < len(members) and members[k + 1] == "-":
            ranges.append((ord(members[k]), ord(members[k + 2])))
            k += 3
        else:
            ranges.append((ord(members[k]), ord(members[k])))
            k += 1
    chars = _union(ranges)
    return intersect(_complement(chars) if negate else chars, NOT_SLASH)


@lru_cache(maxsize=_CACHED)
def tokens(glob: str) -> tuple[Token, ...]:
    """The glob as tokens, the one reading of the dialect."""
    out: list[Token] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if c == "*":
            j = i
            while j < n and glob[j] == "*":
                j += 1
            if j - i == 1:
                out.append((LOOP, NOT_SLASH))
            elif j < n and glob[j] == "/":
                out.extend(((SKIP, ()), (LOOP, ANY_CHAR), (ONE, _char("/"))))
                j += 1
            else:
                out.append((LOOP, ANY_CHAR))
            i = j
        elif c == "?":
            out.append((ONE, NOT_SLASH))
            i += 1
        elif c == "[" and (close := _class_end(glob, i)) > 0:
            out.append((ONE, _class(glob[i + 1:close])))
            i = close + 1
        else:
            out.append((ONE, _char(c)))
            i += 1
    return tuple(out)


_SPECIAL = re.compile(r"[*?\[]")


def literal_prefix(glob: str) -> str:
    """What every path the glob matches starts with."""
    special = _SPECIAL.search(glob)
    if special is None or special.group() != "[":
        # Up to the first '*' or '?' every character is itself; only a class may
        # still be one literal character, so only then are the tokens read.
        return glob if special is None else glob[:special.start()]
    prefix = []
    for kind, chars in tokens(glob):
        if kind != ONE or len(chars) != 1 or chars[0][0] != chars[0][1]:
            break
        prefix.append(chr(chars[0][0]))
    return "".join(prefix)


# ---------------------------------------------------------------- the matcher


def _regex_class(chars: Chars) -> str:
    if not chars:
        return "(?!)"
    return "[" + "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}"
                         for lo, hi in chars) + "]"


def _regex(toks: tuple[Token, ...]) -> str:
    out, i = [], 0
    while i < len(toks):
        kind, chars = toks[i]
        if kind == SKIP:
            out.append("(?:" + _regex(toks[i + 1:i + 1 + _SKIP_GROUP]) + ")?")
            i += 1 + _SKIP_GROUP
        else:
            out.append(_regex_class(chars) + ("*" if kind == LOOP else ""))
            i += 1
    return "".join(out)


@lru_cache(maxsize=_CACHED)
def compile_glob(glob: str) -> re.Pattern[str]:
    """A regular expression that matches exactly the paths ``glob`` matches (use fullmatch)."""
    return re.compile(_regex(tokens(glob)))


def matches(glob: str, path: str) -> bool:
    """Whether ``glob`` matches the whole of ``path``."""
    return compile_glob(glob).fullmatch(path) is not None


# ---------------------------------------------------------------- the automaton


@dataclass(frozen=True)
class Automaton:
    """A glob as a nondeterministic automaton: a state is a token position, and
    ``closures[i]`` holds the positions reachable from ``i`` by matching nothing."""

    tokens: tuple[Token, ...]
    closures: tuple[tuple[int, ...], ...]

    @property
    def goal(self) -> int:
        return len(self.tokens)

    def chars(self, i: int) -> Chars:
        """What position ``i`` may consume (nothing at the goal or a SKIP)."""
        if i == self.goal or self.tokens[i][0] == SKIP:
            return ()
        return self.tokens[i][1]

    def after(self, i: int) -> int:
        """Where position ``i`` goes after consuming a character."""
        return i + 1 if self.tokens[i][0] == ONE else i

    def accepts(self, path: str) -> bool:
        states = set(self.closures[0])
        for c in map(ord, path):
            states = {k for i in states if _holds(self.chars(i), c)
                      for k in self.closures[self.after(i)]}
            if not states:
                return False
        return self.goal in states


def _holds(chars: Chars, c: int) -> bool:
    return any(lo <= c <= hi for lo, hi in chars)


def _closures(toks: tuple[Token, ...]) -> tuple[tuple[int, ...], ...]:
    out: list[tuple[int, ...]] = [()] * (len(toks) + 1)
    out[len(toks)] = (len(toks),)
    for i in range(len(toks) - 1, -1, -1):
        kind = toks[i][0]
        if kind == LOOP:
            out[i] = (i, *out[i + 1])
        elif kind == SKIP:
            out[i] = tuple(dict.fromkeys((i, *out[i + 1], *out[i + 1 + _SKIP_GROUP])))
        else:
            out[i] = (i,)
    return tuple(out)


def _filled(toks: tuple[Token, ...]) -> tuple[Token, ...]:
    """Each ``*`` made to match at least one character (a SKIP group holds none)."""
    out: list[Token] = []
    for token in toks:
        if token == (LOOP, NOT_SLASH):
            out.append((ONE, NOT_SLASH))
        out.append(token)
    return tuple(out)


@lru_cache(maxsize=_CACHED)
def automaton(glob: str, *, filled: bool = False) -> Automaton:
    """The automaton of ``glob``; ``filled`` makes each ``*`` match at least one character."""
    toks = _filled(tokens(glob)) if filled else tokens(glob)
    return Automaton(toks, _closures(toks))


class GlobsTooComplex(Exception):
    """The search for a common path passed its budget (only adversarial globs get here)."""


_READABLE = "xabcdefghijklmnopqrstuvwyz0123456789"


def _pick(chars: Chars) -> str:
    """A character of the (non-empty) set, a readable one when the set has one."""
    for c in _READABLE:
        if _holds(chars, ord(c)):
            return c
    printable = intersect(chars, ((0x21, _MAX),))
    return chr((printable or chars)[0][0])


def glob_witness(a: str, b: str, *, budget: int = 100_000, filled: bool = False) -> str | None:
    """A path both globs match (a shortest one), or None when no path matches both.

    Breadth-first search of the product of the two automata. From a pair of
    positions, every character both may consume leads to the same next pair,
    so one step tries one character. ``filled`` asks for a path in which each
    ``*`` matched something ('src/x.py' reads better than 'src/.py'). Raises
    GlobsTooComplex after looking at ``budget`` transitions.
    """
    na, nb = automaton(a, filled=filled), automaton(b, filled=filled)
    goal = (na.goal, nb.goal)
    parent: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {}
    queue: deque[tuple[int, int]] = deque()
    work = 0
    for state in itertools.product(na.closures[0], nb.closures[0]):
        parent[state] = None
        queue.append(state)
    while queue:
        state = queue.popleft()
        if state == goal:
            return _spell(parent, state)
        common = intersect(na.chars(state[0]), nb.chars(state[1]))
        if not common:
            continue
        c = _pick(common)
        ca, cb = na.closures[na.after(state[0])], nb.closures[nb.after(state[1])]
        work += len(ca) * len(cb)
        if work > budget:
            raise GlobsTooComplex(f"{a!r} and {b!r}")
        for nxt in itertools.product(ca, cb):
            if nxt not in parent:
                parent[nxt] = (state, c)
                queue.append(nxt)
    return None


def _spell(parent: dict[tuple[int, int], tuple[tuple[int, int], str] | None],
           state: tuple[int, int]) -> str:
    chars = []
    link = parent[state]
    while link is not None:
        state, c = link
        chars.append(c)
        link = parent[state]
    return "".join(reversed(chars))
