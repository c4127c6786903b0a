"""Canonical JSON is fixed by these vectors: hash chains depend on every byte."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from striatum.canonical import canonical_json, sha256_hex, text_safe
from striatum.runtime.audit import Event

VECTORS = [
    ({}, b"{}", "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"),
    ({"b": 1, "a": [True, None, "x"]}, b'{"a":[true,null,"x"],"b":1}', None),
    ({"é": "ü", "z": {"y": -3}}, '{"z":{"y":-3},"é":"ü"}'.encode(), None),
    ("line\nbreak\u2028", b'"line\\nbreak\xe2\x80\xa8"', None),
]


@pytest.mark.parametrize(("value", "expected", "digest"), VECTORS)
def test_vectors(value: object, expected: bytes, digest: str | None) -> None:
    assert canonical_json(value) == expected
    if digest:
        assert sha256_hex(expected) == digest


def test_floats_are_refused_with_their_place() -> None:
    with pytest.raises(TypeError, match="/a/1"):
        canonical_json({"a": [1, 2.5]})


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({1: "x"})


def test_compiled_examples_hold_no_float_so_skipping_the_check_is_safe() -> None:
    from pathlib import Path

    from striatum.canonical import _check
    from striatum.compiler.compile import check, compiled_document

    for path in sorted(Path(__file__).resolve().parents[2].glob("examples/*/workflow.*")):
        comp = check(str(path))
        assert comp.ok, path
        _check(compiled_document(comp))


def test_text_safe_writes_a_nul_and_a_lone_surrogate_as_their_escapes() -> None:
    assert text_safe({"why": "a\x00b", "list": ["\x00", ("x\udce9",)], "k\x00": 1}) == {
        "why": "a\\u0000b", "list": ["\\u0000", ("x\\udce9",)], "k\\u0000": 1}
    assert text_safe("plain é") == "plain é"


def test_an_events_payload_holds_no_nul_escape_whatever_its_state_carries() -> None:
    """jsonb refuses the escape of a NUL, and every event's payload is read through it as
    it is written: text from outside a verb's arguments (a row's state) is made safe too."""
    at = datetime(2026, 12, 5, tzinfo=UTC)
    event = Event("job.fail", "r", "j", {"lease_owner": "a\x00b"}, {"reason": "c\x00"})
    payload = event.payload(at)
    assert json.loads(payload)["state"]["lease_owner"] == "a\\u0000b"
    assert json.loads(payload)["data"]["reason"] == "c\\u0000"
    assert "\\u0000" not in payload.replace("\\\\u0000", "")
    plain = Event("job.fail", "r", "j", {"lease_owner": "a\\u0000b"}, {})
    assert json.loads(plain.payload(at))["state"]["lease_owner"] == "a\\u0000b"
