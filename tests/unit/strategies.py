"""Hypothesis strategies for workflow documents, shared by the compiler tests.

``valid_workflows`` builds small workflows that the compiler must accept: a
random DAG of ``needs`` (file order shuffled independently of the graph), up
to three reviews with a bounded ``revise`` back to a strict ancestor, up to two
checkpoints with 2-3 choices naming direct successors, and no checkpoint
inside any revision region (reach(target) minus the strict descendants of the
reviewer).  Every document it draws is valid by construction, so nothing is
discarded.

``mutated_documents`` starts from a valid document and damages it (deleted,
inserted, renamed and replaced keys and values at random paths, wrong types,
huge numbers, unicode, duplicate keys, deep nesting) and returns the JSON
*text*: some of what it writes (5,000-digit integers, NaN, duplicate keys) has
no Python value that ``json.dumps`` would serialise.  ``hostile_bytes`` gives
raw file contents: random bytes, truncated JSON, invalid UTF-8, BOMs, NULs.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

LANES: dict[str, Any] = {"a": {"command": ["x"]}, "b": {"command": ["y"]}}
CHOICE_NAMES = ("go", "stop", "retry", "hold")
ON_EXHAUSTED = (None, "escalate", "fail", "accept")  # None: leave the default (escalate)
ON_REPEAT = (None, "continue", "escalate")  # None: leave the default (continue)


def descendants(children: Mapping[int, Iterable[int]] | Sequence[Iterable[int]],
                node: int) -> set[int]:
    """Strict descendants of ``node``."""
    seen: set[int] = set()
    stack = list(children[node])
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(children[n])
    return seen


def region(children: dict[int, set[int]], target: int, reviewer: int) -> set[int]:
    """What a ``needs_revision`` of ``reviewer`` sends back to pending."""
    return ({target} | descendants(children, target)) - descendants(children, reviewer)


@st.composite
def valid_workflows(draw: st.DrawFn, *, max_jobs: int = 7, max_reviews: int = 3,
                    max_checkpoints: int = 2, max_budget: int = 2) -> dict[str, Any]:
    """A small workflow document the compiler must accept."""
    n = draw(st.integers(1, max_jobs))
    # The DAG is drawn over topological positions 0..n-1 (edges only go forward).
    parents: dict[int, set[int]] = {0: set()}
    for j in range(1, n):
        fewest = draw(st.sampled_from((0, 1, 1, 1)))  # mostly connected, some extra roots
        parents[j] = draw(st.sets(st.integers(0, j - 1), min_size=fewest, max_size=min(j, 3)))
    children: dict[int, set[int]] = {i: set() for i in range(n)}
    for j, ps in parents.items():
        for p in ps:
            children[p].add(j)
    ancestors = {j: {a for a in range(n) if j in descendants(children, a)} for j in range(n)}

    def pick_checkpoints(excluded: set[int]) -> set[int]:
        free = [j for j in range(n) if j not in excluded]
        k = min(len(free), draw(st.sampled_from((0, 1, 1, 2))), max_checkpoints)
        return set(draw(st.lists(st.sampled_from(free), unique=True, min_size=k, max_size=k))
                   ) if free else set()

    def pick_reviews(checkpoints: set[int]) -> tuple[list[int], dict[int, dict[str, Any]]]:
        candidates = [j for j in range(n) if j not in checkpoints and ancestors[j]]
        k = min(len(candidates), draw(st.sampled_from((1, 1, 2, 2, 3, 0))), max_reviews)
        reviewers = sorted(draw(st.lists(st.sampled_from(candidates), unique=True,
                                         min_size=k, max_size=k))) if candidates else []
        revise: dict[int, dict[str, Any]] = {}
        for r in reviewers:
            targets = sorted(t for t in ancestors[r]
                             if not (region(children, t, r) & checkpoints))
            if not targets or not draw(st.sampled_from((True, True, True, True, False))):
                continue
            spec: dict[str, Any] = {"target": draw(st.sampled_from(targets)),
                                    "max": draw(st.integers(1, max_budget))}
            on_exhausted = draw(st.sampled_from(ON_EXHAUSTED))
            if on_exhausted is not None:
                spec["on_exhausted"] = on_exhausted
            on_repeat = draw(st.sampled_from(ON_REPEAT))
            if on_repeat is not None:
                spec["on_repeat"] = on_repeat
            revise[r] = spec
        return reviewers, revise

    # Either kind may be placed first; the other then keeps clear of it, so that
    # no checkpoint ends up inside a revision region (STR210).
    if draw(st.booleans()):
        checkpoints = pick_checkpoints(set())
        reviewers, revise = pick_reviews(checkpoints)
    else:
        reviewers, revise = pick_reviews(set())
        in_regions = set(reviewers).union(
            *(region(children, names_t["target"], r) for r, names_t in revise.items()))
        checkpoints = pick_checkpoints(in_regions)

    # Names are shuffled so that neither the names nor the file order follow the graph.
    names = [f"j{i}" for i in range(n)]
    names = draw(st.permutations(names))
    file_order = draw(st.permutations(list(range(n))))

    jobs = []
    for node in file_order:
        job: dict[str, Any] = {"id": names[node], "lane": draw(st.sampled_from(sorted(LANES)))}
        if node in checkpoints:
            job["kind"] = "checkpoint"
        elif node in reviewers:
            job["kind"] = "review"
        elif draw(st.booleans()):
            job["kind"] = "task"
        if parents[node]:
            needs = draw(st.permutations(sorted(parents[node])))
            job["needs"] = [names[p] for p in needs]
        if node in revise:
            spec = dict(revise[node])
            spec["target"] = names[spec["target"]]
            job["revise"] = spec
        if node in checkpoints:
            k = draw(st.integers(2, 3))
            kids = sorted(children[node])
            choices = {}
            for name in CHOICE_NAMES[:k]:
                chosen = draw(st.sets(st.sampled_from(kids))) if kids else set()
                choices[name] = [names[c] for c in draw(st.permutations(sorted(chosen)))]
            job["choices"] = choices
        jobs.append(job)
    return {"name": "w", "lanes": LANES, "jobs": jobs}


# --------------------------------------------------------------------------
# Damaged documents


@dataclass(frozen=True)
class Raw:
    """A JSON token written verbatim (what json.dumps cannot or will not write)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """An object written with its keys as given (so a key may appear twice)."""

    items: tuple[tuple[str, Any], ...]


RAW_TOKENS = (
    "1" * 5000,                  # beyond Python's int-from-string digit limit
    "-" + "9" * 4301,
    "1e999999", "-1e999999", "1.5e-400", "-0", "0.0", "1.0",
    "NaN", "Infinity", "-Infinity",
    '"\\ud800"', '"\\udfff\\ud800"', '"\\u0000"', '"a\\u0000b"',
    '"../../etc/passwd"', '"/abs/path"', '""', '" "',
    "18446744073709551617", "-9223372036854775809", "1001", "0", "-1", "1000",
)

KEYS = ("name", "lanes", "jobs", "id", "lane", "kind", "needs", "revise", "target", "max",
        "on_exhausted", "on_repeat", "choices", "prompt", "text", "produces", "consumes", "writes",
        "final", "vars", "title", "version", "timeout", "env", "command", "isolation",
        "max_attempts", "$schema", "__proto__", "", "0")

WORDS = ("task", "review", "checkpoint", "escalate", "fail", "accept", "command", "operator",
         "human", "worktree", "none", "a", "b", "w", "go", "stop", "j0", "j1", "j2", "j9",
         "0bad", "has space", "é", "名前", "💥", "-x", "_", "x" * 65, "a/../b")

leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=2**63 - 2, max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12), st.sampled_from(WORDS), st.sampled_from(KEYS),
    st.sampled_from(RAW_TOKENS).map(Raw),
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), children,
                        max_size=4),
    )


json_values = st.recursive(leaves, _containers, max_leaves=10)


def deep(depth: int, leaf: str = "1", kind: str = "[") -> Raw:
    if kind == "[":
        return Raw("[" * depth + leaf + "]" * depth)
    return Raw('{"a":' * depth + leaf + "}" * depth)


def dumps(value: Any, *, ensure_ascii: bool = True, indent: int | None = None) -> str:
    """json.dumps that also writes ``Raw`` tokens and ``Pairs`` objects."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Pairs):
        inner = ", ".join(f"{json.dumps(k, ensure_ascii=ensure_ascii)}: "
                          f"{dumps(v, ensure_ascii=ensure_ascii)}" for k, v in value.items)
        return "{" + inner + "}"
    if isinstance(value, dict):
        sep = "\n" + " " * (indent or 0) if indent else " "
        inner = ("," + sep).join(f"{json.dumps(k, ensure_ascii=ensure_ascii)}: "
                                 f"{dumps(v, ensure_ascii=ensure_ascii, indent=indent)}"
                                 for k, v in value.items())
        return "{" + inner + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dumps(v, ensure_ascii=ensure_ascii, indent=indent)
                               for v in value) + "]"
    return json.dumps(value, ensure_ascii=ensure_ascii)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _ids(doc: Any) -> list[str]:
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list):
        return []
    return [j["id"] for j in jobs if isinstance(j, dict) and isinstance(j.get("id"), str)]


MUTATIONS = ("delete", "replace", "insert", "rename", "reference", "duplicate", "dupkey",
             "deep", "retype")


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """The JSON text of a valid workflow damaged by 1-4 random mutations."""
    doc: Any = draw(valid_workflows())
    doc = json.loads(json.dumps(doc))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(MUTATIONS))
        ids = _ids(doc)
        if not path:
            if op in ("replace", "retype"):
                doc = draw(json_values)
            continue
        parent, key = _get(doc, path[:-1]), path[-1]
        if isinstance(parent, Raw | Pairs) or not isinstance(parent, dict | list):
            continue
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = draw(json_values)
        elif op == "retype":  # the same content, the wrong type
            old = parent[key]
            if not isinstance(old, list):
                parent[key] = [old]
            elif draw(st.booleans()):
                parent[key] = old[0] if old else {}
            else:
                parent[key] = str(old)
        elif op == "reference":  # a plausible value that points at something (often wrong)
            pool = ids + ["nope", "j0", "a", "b"]
            parent[key] = draw(st.one_of(st.sampled_from(pool),
                                         st.lists(st.sampled_from(pool), max_size=4)))
        elif op == "insert":
            target = parent[key]
            if isinstance(target, dict):
                target[draw(st.sampled_from(KEYS) | st.text(max_size=5))] = draw(json_values)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(json_values))
            else:
                parent[key] = [target, draw(json_values)]
        elif op == "rename" and isinstance(parent, dict):
            new = draw(st.sampled_from(KEYS) | st.text(max_size=5))
            parent[new] = parent.pop(key)
        elif op == "duplicate" and isinstance(parent, list):
            parent.insert(draw(st.integers(0, len(parent))), json.loads(json.dumps(parent[key]))
                          if not _has_raw(parent[key]) else parent[key])
        elif op == "dupkey" and isinstance(parent, dict):
            items = list(parent.items())
            items.insert(draw(st.integers(0, len(items))), (key, draw(json_values)))
            replacement = Pairs(tuple(items))
            if len(path) == 1:
                doc = replacement
                break
            _get(doc, path[:-2])[path[-2]] = replacement
        elif op == "deep":
            parent[key] = deep(draw(st.sampled_from((50, 900, 3000, 100_000))),
                               kind=draw(st.sampled_from("[{")))
    return dumps(doc, ensure_ascii=draw(st.booleans()), indent=draw(st.sampled_from((None, 2))))


def _has_raw(value: Any) -> bool:
    if isinstance(value, Raw | Pairs):
        return True
    if isinstance(value, dict):
        return any(_has_raw(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_raw(v) for v in value)
    return False


INVALID_UTF8 = (b"\xff", b"\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xe2\x82",
                b"\xf0\x28\x8c\xbc", b"\xf8\xa1\xa1\xa1\xa1", b"\xed\xa0\x80", b"\xc0\xaf",
                b"\x80")


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """Raw file contents: random, truncated, badly encoded or oddly wrapped."""
    valid = json.dumps(draw(valid_workflows()), indent=draw(st.sampled_from((None, 2)))
                       ).encode()
    kind = draw(st.sampled_from(("random", "truncated", "badutf8", "bom", "nul", "utf16",
                                 "prefix", "blank", "mutated-truncated")))
    if kind == "random":
        return draw(st.binary(max_size=300))
    if kind == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if kind == "badutf8":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.sampled_from(INVALID_UTF8)) + valid[at:]
    if kind == "bom":
        return b"\xef\xbb\xbf" + valid
    if kind == "nul":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + b"\x00" + valid[at:]
    if kind == "utf16":
        return valid.decode().encode(draw(st.sampled_from(("utf-16", "utf-16-le", "utf-32"))))
    if kind == "prefix":
        return draw(st.sampled_from((b"//", b"#", b"\xef\xbb\xbf\xef\xbb\xbf", b"[", b"'",
                                     b"\r\n", b"\t", b"\x1b[31m"))) + valid
    if kind == "blank":
        return draw(st.sampled_from((b"", b" ", b"\n\n", b"\t\r\n", b"\xef\xbb\xbf")))
    text = draw(mutated_documents()).encode("utf-8", "surrogatepass")
    return text[: draw(st.integers(0, len(text)))]


@contextlib.contextmanager
def workflow_file(content: dict[str, Any] | str | bytes, suffix: str = ".json"
                  ) -> Iterator[str]:
    """Write ``content`` (a document, text or bytes) to a fresh temporary file."""
    if isinstance(content, dict):
        data = json.dumps(content, indent=2).encode()
    elif isinstance(content, str):
        data = content.encode("utf-8", "surrogatepass")
    else:
        data = content
    with tempfile.TemporaryDirectory(prefix="striatum-test-") as directory:
        path = os.path.join(directory, "workflow" + suffix)
        with open(path, "wb") as handle:
            handle.write(data)
        yield path
