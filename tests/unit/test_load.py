"""Every bad file gets one located diagnostic with a code, never an exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from striatum.compiler.compile import check
from striatum.compiler.load import MAX_BYTES, read_source


def only(source_or_comp: object) -> tuple[str, int | None, int | None, str]:
    diagnostics = source_or_comp.diagnostics  # type: ignore[attr-defined]
    assert len(diagnostics) == 1, diagnostics
    d = diagnostics[0]
    return d.code, d.line, d.column, d.message


def test_missing_file(tmp_path: Path) -> None:
    code, line, col, message = only(read_source(str(tmp_path / "nope.json")))
    assert (code, line, col) == ("STR001", 1, 1)
    assert "no such file" in message


def test_directory(tmp_path: Path) -> None:
    code, _, _, message = only(read_source(str(tmp_path)))
    assert code == "STR002" and "is a directory" in message


def test_empty_and_blank(tmp_path: Path) -> None:
    for content in (b"", b"  \n\t\n"):
        path = tmp_path / "w.json"
        path.write_bytes(content)
        assert only(read_source(str(path)))[0] == "STR004"


def test_binary_points_at_the_nul_byte(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_bytes(b'{\n  "name": "x\x00"}')
    assert only(read_source(str(path)))[:3] == ("STR003", 2, 13)


def test_invalid_utf8_points_at_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_bytes(b'{"name":\n "\xff"}')
    code, line, col, message = only(read_source(str(path)))
    assert (code, line, col) == ("STR003", 2, 3)
    assert "0xff" in message


def test_too_large(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_BYTES + 1)
    code, _, _, message = only(read_source(str(path)))
    assert code == "STR005" and "limit" in message


def test_json_syntax_error_is_located_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{\n  "name": "x",\n  "lanes": {},\n}\n')
    source = read_source(str(path))
    code, line, col, _ = only(source)
    assert (code, line, col) == ("STR010", 4, 1)
    assert source.diagnostics[0].hint and "trailing comma" in source.diagnostics[0].hint


def test_duplicate_key_is_an_error_at_the_second_one(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text('{\n  "name": "a",\n  "name": "b"\n}\n')
    code, line, col, message = only(read_source(str(path)))
    assert (code, line, col) == ("STR010", 3, 3)
    assert "appears twice" in message


def test_deep_nesting(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    code = read_source(str(path)).diagnostics[0].code
    assert code in ("STR012", "STR010")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text("{}")
    path.chmod(0)
    assert only(read_source(str(path)))[0] == "STR007"


def test_top_level_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_text("[1, 2]")
    code, line, col, message = only(check(str(path)))
    assert (code, line, col) == ("STR103", 1, 1)
    assert "should be an object" in message


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "w.json"
    path.write_bytes(b'\xef\xbb\xbf{"name": "w", "lanes": {"a": {"command": ["x"]}}, '
                     b'"jobs": [{"id": "j", "lane": "a"}]}')
    assert check(str(path)).ok
