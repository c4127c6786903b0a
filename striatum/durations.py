"""Durations as a person reads them in one line: ``42 s``, ``17 min``, ``3 h 5 min``."""

from __future__ import annotations


def spoken(seconds: float) -> str:
    whole = max(0, int(seconds))
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min"
    return f"{whole // 3600} h {whole % 3600 // 60} min"
