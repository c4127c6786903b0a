"""Where a worker's lane socket folder goes: its socket's address must fit in 107 bytes."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from striatum.server.lanegate import SOCKET_NAME, LaneGate, folder_parent
from striatum.server.place import SOCKET_PATH_MAX


def test_a_short_temporary_folder_holds_the_lane_folder(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert folder_parent() == tmp_path


def test_a_deep_temporary_folder_sends_the_lane_socket_to_tmp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    assert folder_parent() == Path("/tmp")
    gate = LaneGate("host=/nonexistent dbname=none")
    try:
        assert gate.folder.parent == Path("/tmp")
        assert gate.socket == gate.folder / SOCKET_NAME
        assert len(str(gate.socket).encode()) <= SOCKET_PATH_MAX
    finally:
        gate.folder.rmdir()
