"""Where doctor's time goes: the server's CPU per event for doctor's own queries and for
the pieces of its one pass, each run alone on one backend (no parallel workers), read
from ``/proc/<backend pid>/stat``. Only a server on this machine can be read so; for
another the breakdown is left out, never guessed.

CPU time rather than wall time: the machine is shared, and a backend's CPU seconds
barely move with the load around it, where its wall time doubles.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# The floor of any check in the server: every row's sha256 and its link to the row before,
# nothing else (the figure times it beside doctor). Its rows: (events, wrong).
FLOOR = ("SELECT count(*), count(*) FILTER (WHERE row_hash <> encode(sha256(convert_to("
         "previous_hash || payload, 'UTF8')), 'hex') OR previous_hash <> before) "
         "FROM (SELECT payload, previous_hash, row_hash, coalesce(lag(row_hash) OVER "
         "(ORDER BY seq), repeat('0', 64)) AS before FROM striatum.events) e")

# (label, query): each a count over every event, so the result crossing to the client
# is one row and the server's work is all that is measured.
PIECES = [
    ("read every row (scan, payload length)",
     "SELECT count(*) FROM striatum.events WHERE octet_length(payload) > 0"),
    ("sha256 of every row",
     "SELECT count(*) FROM striatum.events WHERE encode(sha256(convert_to("
     "previous_hash || payload, 'UTF8')), 'hex') <> row_hash"),
    ("the hash-only floor: sha256 and link of every row, in seq order", FLOOR),
    ("parse every payload (jsonb_to_record, the fields doctor reads)",
     "SELECT count(x.run) FROM striatum.events e, jsonb_to_record(e.payload::jsonb) "
     "AS x(at text, run text, job text, type text, state jsonb, data jsonb)"),
    ("check every payload is JSON (json, no tree built)",
     "SELECT count(*) FROM striatum.events WHERE payload::json IS NOT NULL"),
]


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def breakdown(dsn: str, repeat: int = 2) -> dict[str, Any] | None:
    """label -> server CPU µs per event (the least of ``repeat`` runs), doctor's two
    queries first; None when the backend's CPU cannot be read from here."""
    import psycopg

    from striatum.runtime.audit import GENESIS
    from striatum.runtime.doctor import legal_transitions
    from striatum.runtime.sql import query

    with psycopg.connect(dsn) as conn:
        conn.execute("SET max_parallel_workers_per_gather = 0")
        conn.execute("SET jit = off")
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        if _cpu_seconds(pid) is None:
            return None
        repo, events = conn.execute(  # type: ignore[misc]
            "SELECT min(repo_id), count(*) FROM striatum.events").fetchone()
        params = {"repo": repo, "cut": None, "genesis": GENESIS, "hashes": True,
                  **legal_transitions()}
        timed: list[tuple[str, Any, dict[str, Any]]] = [
            ("doctor's replay over the typed columns (doctor_event_columns)",
             query("doctor_event_columns"), params),
            ("doctor's chain pass: links and hashes (doctor_event_links)",
             query("doctor_event_links"), params),
            ("doctor's pass with --strict or without the proof (doctor_event_contents: "
             "parse, hash, columns, replay)",
             query("doctor_event_contents"), params),
            *((label, text, {}) for label, text in PIECES)]
        out: dict[str, Any] = {"events": events}
        for label, text, bound in timed:
            best = None
            for _ in range(repeat):
                before = _cpu_seconds(pid) or 0.0
                conn.execute(text, bound).fetchall()
                spent = (_cpu_seconds(pid) or 0.0) - before
                best = spent if best is None else min(best, spent)
            out[label] = 1e6 * (best or 0.0) / max(1, int(events))
        conn.rollback()
    return out
