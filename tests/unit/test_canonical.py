"""Canonical JSON is fixed by these vectors: hash chains depend on every byte."""

from __future__ import annotations

import pytest

from striatum.canonical import canonical_json, sha256_hex

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
