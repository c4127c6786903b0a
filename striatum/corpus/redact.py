"""Redaction: secrets replaced by a marker naming the rule that matched, and paths made
relative to the repository, in any text or JSON document the bundle carries.

A secret becomes ``[REDACTED:<rule id>]`` (for a URL's password, only the password).
An absolute path becomes relative to the repository (``/home/a/repo/src/x.py`` is
``src/x.py``, ``/home/a/.cache/x`` is ``../.cache/x``), so a bundle names no home
folder. What was replaced is told by the caller's record of it (``Redaction``): the
rules that matched and the sha256 of the original value, which binds the redacted
value to the original for whoever holds it (docs/provenance.md).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .rules import RULES, random_enough

MARKER = "[REDACTED:{rule}]"
PATH_RULE = "path"
SEEN_LIMIT = 10_000  # strings remembered per redactor, so memory stays bounded

# An absolute path of two components or more, not part of a URL or of a longer word.
_ABSOLUTE = re.compile(r"(?<![\w.:/~%-])(/(?:[\w.@+~-]+/)+[\w.@+~-]+/?)")


@dataclass
class Redactor:
    """Redacts with every rule; with ``repo``, also makes absolute paths relative to it."""

    repo: str | None = None
    paths: bool = True
    counts: dict[str, int] = field(default_factory=dict)
    # Strings repeat across rows (statuses, ids, names): each is redacted once.
    _seen: dict[str, tuple[str, list[str], dict[str, int]]] = field(default_factory=dict)

    def text(self, text: str) -> tuple[str, list[str]]:
        """The text redacted, and the ids of the rules that changed it (in rule order)."""
        seen = self._seen.get(text)
        if seen is None:
            if len(self._seen) >= SEEN_LIMIT:
                self._seen.clear()
            seen = self._seen[text] = self._redact(text)
        for rule, hits in seen[2].items():
            self.counts[rule] = self.counts.get(rule, 0) + hits
        return seen[0], list(seen[1])

    def _redact(self, text: str) -> tuple[str, list[str], dict[str, int]]:
        matched: list[str] = []
        counts: dict[str, int] = {}
        for rule in RULES:
            regex = rule.regex
            if regex.search(text) is None:
                continue
            hits = 0

            def replace(found: re.Match[str], rule: Any = rule) -> str:
                nonlocal hits
                group = "s" if "s" in found.re.groupindex else 0
                secret = found.group(group)
                if not random_enough(rule, secret) or secret.startswith("[REDACTED:"):
                    return found.group(0)  # not random, or redacted already
                hits += 1
                start, end = found.span(group)
                whole = found.group(0)
                offset = found.start(0)
                return (whole[:start - offset] + MARKER.format(rule=rule.id)
                        + whole[end - offset:])

            text = regex.sub(replace, text)
            if hits:
                matched.append(rule.id)
                counts[rule.id] = hits
        if self.paths and self.repo is not None and "/" in text:
            relative = _ABSOLUTE.sub(self._relative, text)
            if relative != text:
                matched.append(PATH_RULE)
                counts[PATH_RULE] = 1
                text = relative
        return text, matched, counts

    def _relative(self, found: re.Match[str]) -> str:
        assert self.repo is not None
        path = found.group(1)
        if path == self.repo or path.rstrip("/") == self.repo:
            return "."
        return os.path.relpath(path, self.repo)

    def document(self, value: Any, pointer: str = "") -> tuple[Any, list[dict[str, Any]]]:
        """A JSON value with every string redacted, and one record per string changed:
        where (a JSON pointer), which rules, and the sha256 of the original string."""
        found: list[dict[str, Any]] = []
        return self._walk(value, pointer, found), found

    def _walk(self, value: Any, pointer: str, found: list[dict[str, Any]]) -> Any:
        if isinstance(value, str):
            redacted, rules = self.text(value)
            if rules:
                found.append({"pointer": pointer or "/", "rules": rules,
                              "original_sha256": sha256_text(value)})
            return redacted
        if isinstance(value, dict):
            return {key: self._walk(item, f"{pointer}/{_escape(key)}", found)
                    for key, item in value.items()}
        if isinstance(value, list):
            return [self._walk(item, f"{pointer}/{index}", found)
                    for index, item in enumerate(value)]
        return value

    def data(self, data: bytes) -> tuple[bytes, list[str]]:
        """A file's bytes redacted as text (bytes that are not UTF-8 kept as they are)."""
        text = data.decode("utf-8", "surrogateescape")
        redacted, rules = self.text(text)
        return (redacted.encode("utf-8", "surrogateescape") if rules else data), rules


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
