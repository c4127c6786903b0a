"""Load the SQL: every query lives in a file of sql/ (queries.sql, and doctor.sql for
``striatum doctor``) under a ``-- name: what --`` header; names are unique across files.

No statement is assembled from strings at run time; values are always bound
parameters (``%(name)s``), so nothing a user types can change a query's shape.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import LiteralString

_HEADER = re.compile(r"^-- ([a-z_]+): (.+?) --$", re.MULTILINE)
SQL_DIR = Path(__file__).resolve().parent / "sql"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@cache
def queries() -> dict[str, LiteralString]:
    found: dict[str, LiteralString] = {}
    for path in sorted(SQL_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        headers = list(_HEADER.finditer(text))
        for i, header in enumerate(headers):
            end = headers[i + 1].start() if i + 1 < len(headers) else len(text)
            name = header.group(1)
            if name in found:
                raise RuntimeError(f"query {name!r} is defined twice (again in {path.name})")
            # Trusted text shipped with the package, never user input.
            found[name] = text[header.end():end].strip()
    return found


def query(name: str) -> LiteralString:
    return queries()[name]


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration file, in order."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("[0-9][0-9][0-9][0-9]_*.sql")):
        version = int(path.name[:4])
        out.append((version, path.stem[5:], path.read_text(encoding="utf-8")))
    versions = [v for v, _, _ in out]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return out
