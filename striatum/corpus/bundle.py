"""The bundle's format: its files, how a line is written, and its manifest.

A bundle is a folder of JSON Lines files and ``bundle.json``, which lists every
file with its sha256, size and line count. Every line is one JSON object with its
keys sorted and no insignificant whitespace, and each file's lines come in a fixed
order (chains by seq, rows by their keys), with no time of export anywhere: two
exports of the same history are byte-identical.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

FORMAT = "striatum.corpus/1"
MANIFEST = "bundle.json"
ARTIFACTS_DIR = "artifacts"

# The JSONL files, in the order they are written and verified.
REPOS = "repos.jsonl"
WORKFLOWS = "workflows.jsonl"
RUNS = "runs.jsonl"
JOBS = "jobs.jsonl"
EVENTS = "events.jsonl"
AUDIT = "audit.jsonl"
VERDICTS = "verdicts.jsonl"
ARTIFACTS = "artifacts.jsonl"
STATEMENTS = "statements.jsonl"
FILES = (REPOS, WORKFLOWS, RUNS, JOBS, EVENTS, AUDIT, VERDICTS, ARTIFACTS, STATEMENTS)

AUDIT_CHAIN = "audit"


def line(document: dict[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8") + b"\n"


class Writer:
    """One file of the bundle, hashed and counted as it is written (never held whole)."""

    def __init__(self, folder: Path, name: str) -> None:
        self.name = name
        self.path = folder / name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[bytes] = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._digest = hashlib.sha256()
        self.bytes = 0
        self.lines = 0

    def write(self, document: dict[str, Any]) -> None:
        self.raw(line(document))
        self.lines += 1

    def raw(self, data: bytes) -> None:
        self._file.write(data)
        self._digest.update(data)
        self.bytes += len(data)

    def close(self) -> dict[str, Any]:
        self._file.close()
        entry: dict[str, Any] = {"path": self.name, "sha256": self._digest.hexdigest(),
                                 "bytes": self.bytes}
        if self.name.endswith(".jsonl"):
            entry["lines"] = self.lines
        return entry

