"""Which `writes` globs may match a common path (STR305), over the glob dialect of
``striatum.globs``: two globs overlap when the product of their automata reaches its goal."""

from __future__ import annotations

from functools import cache

from ...globs import ONE, GlobsTooComplex, glob_witness, literal_prefix, tokens


@cache
def globs_overlap(a: str, b: str) -> bool:
    """Whether some path matches both globs."""
    # A glob that matches nothing ('[z-a]') overlaps nothing, itself included,
    # so even a == b goes through the search (a short one when they are equal).
    for folder, other in ((a, b), (b, a)):
        if _matches_all_under(folder) and literal_prefix(other).startswith(folder[:-2]):
            # 'src/**' matches every path that starts with 'src/', and every path the
            # other glob matches does: they overlap when the other matches any path.
            return _matches_some(other)
    try:
        return glob_witness(a, b) is not None
    except GlobsTooComplex:
        return True  # "may both write" stays true when we cannot tell


def _matches_all_under(glob: str) -> bool:
    """Whether ``glob`` is literal text and a final ``**`` (every path starting so)."""
    return glob.endswith("**") and literal_prefix(glob) == glob[:-2]


def _matches_some(glob: str) -> bool:
    """Whether some path matches: only a class that holds nothing ('[z-a]') matches none."""
    return all(chars for kind, chars in tokens(glob) if kind == ONE)


def _overlapping_patterns(patterns: list[str]) -> dict[str, list[str]]:
    """pattern -> the patterns (itself included) that may match a path it matches.

    Two globs can only share a path when one's literal prefix starts the
    other's; sorting the prefixes turns that into a range scan, so a
    10,000-job workflow with a directory each does not compare every pair.
    """
    by_prefix: dict[str, list[str]] = {}
    for pattern in patterns:
        by_prefix.setdefault(literal_prefix(pattern), []).append(pattern)
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
