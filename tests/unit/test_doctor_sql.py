"""What doctor's SQL is bound to stays in step with the declarations it checks against."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from striatum.runtime.doctor import PROBLEMS, RPC_PROBLEMS, legal_transitions
from striatum.runtime.machine import (
    JOB_STATES,
    JOB_TRANSITIONS,
    RUN_STATES,
    RUN_TRANSITIONS,
    destination,
)
from striatum.runtime.records import REPLAYED_JOB_COLUMNS, REPLAYED_RUN_COLUMNS
from striatum.runtime.sql import SQL_DIR, queries, query


def test_the_bound_transitions_are_exactly_what_the_machines_allow() -> None:
    legal = legal_transitions()
    bound = set(zip(legal["legal_types"], legal["legal_from"], legal["legal_to"], strict=True))
    allowed = set()
    for kind, states, table in (("job", JOB_STATES, JOB_TRANSITIONS),
                                ("run", RUN_STATES, RUN_TRANSITIONS)):
        for trigger in {t["trigger"] for t in table}:
            for state in states:
                dest = destination(kind, trigger, state)
                if dest is not None:
                    allowed.add((f"{kind}.{trigger}", state, dest))
    assert bound == allowed


def test_the_replay_compares_every_replayed_column_and_no_other() -> None:
    text = query("doctor_event_contents")
    for alias, columns in (("j", REPLAYED_JOB_COLUMNS), ("r", REPLAYED_RUN_COLUMNS)):
        compared = set(re.findall(rf"f\.state->'(\w+)', 'null'\)\s*=\s*(?:coalesce\()?"
                                  rf"to_jsonb\({alias}\.(\w+)\)", text))
        assert compared == {(c, c) for c in columns}, (alias, compared)


def test_every_problem_code_the_sql_names_has_a_message() -> None:
    def named(prefix: str) -> set[str]:
        text = "\n".join(queries()[name] for name in queries() if name.startswith(prefix))
        return set(re.findall(r"THEN '(\w+)'", text)) - {"run", "job"}

    rpc = named("doctor_rpc_")
    assert rpc == set(RPC_PROBLEMS)
    assert named("doctor_") - rpc <= set(PROBLEMS), named("doctor_") - rpc - set(PROBLEMS)


def test_doctor_sql_is_loaded_beside_the_other_queries() -> None:
    assert (SQL_DIR / "doctor.sql").is_file()
    names = queries()
    assert "doctor_event_contents" in names and "append_event" in names


def test_a_name_defined_in_two_files_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from striatum.runtime import sql

    for file in ("a.sql", "b.sql"):
        (tmp_path / file).write_text("-- same: one query --\nSELECT 1;\n", encoding="utf-8")
    monkeypatch.setattr(sql, "SQL_DIR", tmp_path)
    sql.queries.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="'same' is defined twice"):
            sql.queries()
    finally:
        monkeypatch.undo()
        sql.queries.cache_clear()
