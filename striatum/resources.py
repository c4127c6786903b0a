"""Find the files that ship with striatum: the grammar, the schema, the examples.

In a wheel they sit in ``striatum/_data``; in a source checkout (editable
install, tests run from the tree) they are the top-level folders.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"striatum is missing its {name}/ folder; reinstall the package")


def schema_path() -> Path:
    return data_dir("schemas") / "workflow.schema.json"


def grammar_path() -> Path:
    return data_dir("grammar") / "striatum.lark"


def examples_dir() -> Path:
    return data_dir("examples")


def playbook_path() -> Path:
    """The operator's playbook (docs/HOW_TO_AGENT.md), also the striatum skill's text."""
    return data_dir("docs") / "HOW_TO_AGENT.md"
