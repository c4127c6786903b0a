"""Starter workflows: ``workflow init`` copies one of the shipped examples."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import Conflict, UsageError
from ..resources import examples_dir

STYLES = ("minimal", "review", "code-change", "human-checkpoint", "support-ledger",
          "multi-review")
SYNTAX_FILES = {"json": "workflow.json", "dsl": "workflow.stm"}


def starter_files(style: str, syntax: str) -> list[tuple[Path, Path]]:
    """(source, path relative to the target directory) for every file of a starter."""
    if style not in STYLES:
        raise UsageError(f"unknown style {style!r}", hint="styles: " + ", ".join(STYLES))
    root = examples_dir() / style
    files = [(root / SYNTAX_FILES[syntax], Path(SYNTAX_FILES[syntax]))]
    prompts = root / "prompts"
    if prompts.is_dir():
        files.extend((p, p.relative_to(root)) for p in sorted(prompts.rglob("*")) if p.is_file())
    return files


def write_starter(style: str, directory: str, syntax: str = "json", force: bool = False
                  ) -> list[Path]:
    target = Path(directory)
    if target.exists() and not target.is_dir():
        raise UsageError(f"{directory} exists and is not a directory")
    files = starter_files(style, syntax)
    clashes = [str(target / rel) for _, rel in files if (target / rel).exists()]
    if clashes and not force:
        exist = "1 file already exists" if len(clashes) == 1 else (
            f"{len(clashes)} files already exist")
        more = f" and {len(clashes) - 3} more" if len(clashes) > 3 else ""
        raise Conflict(f"{exist}: {', '.join(clashes[:3])}{more}", files=clashes,
                       hint="pick another directory, or pass --force to overwrite them")
    written = []
    for source, rel in files:
        destination = target / rel
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        written.append(destination)
    return written
