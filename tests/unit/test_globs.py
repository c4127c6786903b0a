"""The `writes` glob dialect (striatum.globs): one reading for the runtime's matcher and
lint's overlap search, checked against each other and against an independent reference."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from striatum.compiler.compile import check
from striatum.compiler.lint import _overlapping_patterns, globs_overlap, lint
from striatum.globs import (
    ONE,
    GlobsTooComplex,
    automaton,
    glob_witness,
    literal_prefix,
    matches,
    tokens,
)
from striatum.runtime.changes import outside

# ---------------------------------------------------------------- the dialect


# glob -> (paths it matches, paths it does not)
DIALECT: dict[str, tuple[list[str], list[str]]] = {
    "src/*.py": (["src/a.py", "src/.py"], ["src/a/b.py"]),
    "src/**": (["src/a/b.py", "src/"], ["src"]),
    "src/**/x.py": (["src/x.py", "src/a/b/x.py"], ["src/ax.py"]),
    "src/?": (["src/a"], ["src//", "src/ab"]),
    "src/[ab]": (["src/b"], ["src/c"]),
    "src/[a-c]": (["src/b"], ["src/d"]),
    "src/[!a]": (["src/b"], ["src/a"]),
    "src/[^a]": (["src/b"], ["src/a"]),
    "src/[]]": (["src/]"], ["src/a"]),
    "src/[!]]": (["src/a"], ["src/]"]),
    "src/[a-]": (["src/-"], ["src/b"]),
    "src/[z-a]": ([], ["src/z", "src/a"]),  # a range written backwards holds nothing
    "src/[*]": (["src/*"], ["src/a"]),
    "src/a[": (["src/a["], ["src/a"]),  # an unclosed '[' is itself
    "src/a.py": (["src/a.py"], ["src/aXpy"]),  # '.' is no wildcard
    "a+(b)": (["a+(b)"], ["aa(b)"]),
    "a\\b": (["a\\b"], ["ab"]),  # no escape character
    "*": (["line\nbreak"], ["a/b"]),
    "docs/*.md": (["docs/readme.md"], ["docs/readme.md.bak"]),  # the whole path must match
}


@pytest.mark.parametrize("glob", DIALECT)
def test_the_dialect(glob: str) -> None:
    matched, unmatched = DIALECT[glob]
    for path in matched + unmatched:
        assert matches(glob, path) is (path in matched), path
        assert automaton(glob).accepts(path) is (path in matched), path


@pytest.mark.parametrize("glob", ["src[!a]x", "src[^a]x", "src[!]x", "src[/]x", "src[.-0]x"])
def test_a_class_never_matches_a_slash(glob: str) -> None:
    # The runtime once read `[!a]` as "any char but a", '/' included, so `src[!a]x`
    # let a job change `src/x` while lint saw no overlap with `src/*`.
    assert outside(["src/x"], [glob]) == ["src/x"]
    assert not globs_overlap(glob, "src/*")


def test_the_runtime_allows_what_a_class_holds() -> None:
    assert outside(["srcbx", "srcax", "src/x"], ["src[!a]x"]) == ["srcax", "src/x"]
    assert outside(["src/b"], ["src/[a-c]"]) == []


# ---------------------------------------------------------------- overlaps


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ("src/**", "src/a/*.py", True),
    ("docs/*.md", "src/*.md", False),
    ("a*", "*b", True),
    ("*.py", "*/x.py", False),
    ("src/**/x.py", "src/x.py", True),  # `**/` may match no folder at all
    ("**", "anything/at/all", True),
    ("src/*", "src/a/b", False),
    ("src/?", "src/ab", False),
    ("src/[ab]", "src/c", False),  # a class holds what it lists
    ("src/[ab]", "src/[bc]", True),
    ("src/[!ab]", "src/[ab]", False),
    ("src/[a-c]", "src/?", True),
    ("src/[ab]", "src/cd", False),
    ("src/[ab]/x", "src//x", False),
    ("src/[z-a]", "src/[z-a]", False),  # matches nothing, not even what it matches
    ("a[", "a[", True),  # an unclosed '[' is literal
    ("x", "x", True),
    ("x", "y", False),
    ("", "", True),
    ("", "*", True),
    ("", "?", False),
    ("***/b", "b", True),
])
def test_glob_intersection(a: str, b: str, overlap: bool) -> None:
    assert globs_overlap(a, b) is overlap
    assert globs_overlap(b, a) is overlap


def test_the_example_path_fills_each_star_and_respects_classes() -> None:
    assert glob_witness("src/**", "src/a/*.py", filled=True) == "src/a/x.py"
    assert glob_witness("src/[!x-z]*", "src/*.md", filled=True) == "src/a.md"
    assert glob_witness("src/[*]", "src/?") == "src/*"


def test_str305_reads_classes_as_the_runtime_does(tmp_path: Path) -> None:
    doc = {"name": "w", "lanes": {"a": {"command": ["x"]}}, "final": ["p", "q"], "jobs": [
        {"id": "p", "lane": "a", "writes": ["src/[ab].py", "docs/[!r]*"]},
        {"id": "q", "lane": "a", "writes": ["src/c.py", "docs/readme.md", "docs/n*.md"]}]}
    path = tmp_path / "workflow.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    found = [d for d in lint(check(str(path))) if d.code == "STR305"]
    assert [d.message for d in found] == [
        "jobs 'p' and 'q' can run at the same time and may both write paths matching "
        "'docs/[!r]*' and 'docs/n*.md', e.g. 'docs/nx.md'"]


def test_adversarial_globs_are_assumed_to_overlap() -> None:
    a, b = "*a" * 512, "*b" * 511 + "c"
    with pytest.raises(GlobsTooComplex):
        glob_witness(a, b)
    assert globs_overlap(a, b)


# ---------------------------------------------------------------- properties

PARTS = ["a", "b", "/", "-", "*", "**", "**/", "?", "[ab]", "[!a]", "[^b]", "[a-c]", "[!/]",
         "[]a]", "[/]", "[b-a]", "[", "]", "!"]
globs = st.lists(st.sampled_from(PARTS), max_size=6).map("".join)
paths = st.text(alphabet="ab/c-]![", max_size=8)


@settings(max_examples=500)
@given(globs, paths)
def test_the_matcher_and_the_automaton_agree(glob: str, path: str) -> None:
    assert matches(glob, path) is automaton(glob).accepts(path), (glob, path)


@settings(max_examples=500)
@given(globs, globs)
def test_a_witness_matches_both_globs(a: str, b: str) -> None:
    for filled in (False, True):
        witness = glob_witness(a, b, filled=filled)
        if witness is not None:
            assert matches(a, witness) and matches(b, witness), (a, b, filled, witness)


def reference(glob: str) -> re.Pattern[str]:
    """The dialect written out again as a regex, independently of striatum.globs."""
    out, i = "", 0
    while i < len(glob):
        c = glob[i]
        if c == "*":
            j = i
            while j < len(glob) and glob[j] == "*":
                j += 1
            if j - i == 1:
                out += "[^/]*"
            elif j < len(glob) and glob[j] == "/":
                out += "(?:.*/)?"
                j += 1
            else:
                out += ".*"
            i = j
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            j = i + 1
            if j < len(glob) and glob[j] in "!^":
                j += 1
            if j < len(glob) and glob[j] == "]":
                j += 1
            close = glob.find("]", j)
            if close < 0:
                out, i = out + re.escape(c), i + 1
                continue
            body = glob[i + 1:close]
            negate = body[:1] in ("!", "^")
            members = body[1:] if negate else body
            chars, k = set(), 0
            while k < len(members):
                if k + 2 < len(members) and members[k + 1] == "-":
                    chars |= {chr(n) for n in range(ord(members[k]), ord(members[k + 2]) + 1)}
                    k += 3
                else:
                    chars.add(members[k])
                    k += 1
            listed = "".join(re.escape(ch) for ch in sorted(chars))
            if negate:
                out += "[^/" + listed + "]"
            else:
                out += "(?!/)[" + listed + "]" if listed else "(?!)"
            i = close + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out, re.DOTALL)


BRUTE_STRINGS = ["".join(t) for n in range(6) for t in itertools.product("ab/c", repeat=n)]


@settings(max_examples=400)
@given(globs, globs)
def test_glob_intersection_agrees_with_brute_force(a: str, b: str) -> None:
    ra, rb = reference(a), reference(b)
    common = next((s for s in BRUTE_STRINGS if ra.fullmatch(s) and rb.fullmatch(s)), None)
    witness = glob_witness(a, b)
    if common is not None:
        assert witness is not None, f"{a!r} and {b!r} both match {common!r}"
        assert len(witness) <= len(common)
    if witness is not None:
        assert ra.fullmatch(witness) and rb.fullmatch(witness), (a, b, witness)


@settings(max_examples=300)
@given(globs, paths)
def test_the_matcher_agrees_with_the_reference(glob: str, path: str) -> None:
    assert matches(glob, path) is (reference(glob).fullmatch(path) is not None), (glob, path)


@settings(max_examples=100)
@given(st.lists(globs, max_size=8, unique=True))
def test_the_prefix_index_finds_every_overlapping_pair(patterns: list[str]) -> None:
    index = _overlapping_patterns(patterns)
    for p, q in itertools.product(patterns, repeat=2):
        assert (q in index[p]) is globs_overlap(p, q), (p, q)


def _by_automaton(a: str, b: str) -> bool:
    try:
        return glob_witness(a, b) is not None
    except GlobsTooComplex:
        return True


folders = st.lists(st.sampled_from(["a", "b", "/", "-", "!", "]"]), max_size=4).map(
    lambda parts: "".join(parts) + "**")


@settings(max_examples=500)
@given(st.one_of(folders, globs), globs)
def test_the_folder_shortcut_agrees_with_the_automaton(a: str, b: str) -> None:
    # 'P**' against a glob whose every path starts with P is decided without the
    # automaton; the answer must be the automaton's, either way round.
    globs_overlap.cache_clear()
    assert globs_overlap(a, b) is _by_automaton(a, b), (a, b)
    assert globs_overlap(b, a) is _by_automaton(b, a), (a, b)


@settings(max_examples=500)
@given(globs)
def test_the_literal_prefix_is_what_the_tokens_begin_with(glob: str) -> None:
    prefix = []
    for kind, chars in tokens(glob):
        if kind != ONE or len(chars) != 1 or chars[0][0] != chars[0][1]:
            break
        prefix.append(chr(chars[0][0]))
    assert literal_prefix(glob) == "".join(prefix), glob
