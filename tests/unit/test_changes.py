"""A failed attempt's changes are taken back from the pass's baseline, and never lost:
the paths with no copy to restore are left as the attempt left them and said so."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from striatum.runtime import changes


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / "tracked.txt").write_text("committed\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "base")
    return repo


def test_a_file_dirty_before_the_pass_and_too_large_to_copy_is_left_and_kept(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (repo / "big.txt").write_text("x" * 100)  # untracked and dirty when the pass starts
    (repo / "small.txt").write_text("s")
    monkeypatch.setattr(changes, "COPY_CAP", 10)  # room for small.txt, not for big.txt
    scratch = tmp_path / "scratch"
    before = changes.baseline(repo, scratch, 1)
    assert set(before) == {"big.txt", "small.txt"}
    assert not (scratch / "baseline-i1" / "big.txt").exists()

    (repo / "big.txt").write_text("attempt's edit")
    (repo / "small.txt").write_text("attempt's edit")
    (repo / "tracked.txt").write_text("attempt's edit\n")
    keep = tmp_path / "left"
    restored, left = changes.set_aside(repo, scratch, 1,
                                       ["big.txt", "small.txt", "tracked.txt"], keep)

    assert sorted(restored) == ["small.txt", "tracked.txt"]
    assert left == ["big.txt"]
    assert (repo / "small.txt").read_text() == "s"
    assert (repo / "tracked.txt").read_text() == "committed\n"
    assert (repo / "big.txt").read_text() == "attempt's edit"  # not restored, not lost
    for name in ("big.txt", "small.txt", "tracked.txt"):
        assert (keep / name).read_text().startswith("attempt's edit")


def test_with_no_baseline_to_read_every_path_is_left_as_the_attempt_left_it(
        repo: Path, tmp_path: Path) -> None:
    (repo / "tracked.txt").write_text("attempt's edit\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "baseline-i2.json").write_text("{not json")
    restored, left = changes.set_aside(repo, scratch, 2, ["tracked.txt"], tmp_path / "left")
    assert (restored, left) == ([], ["tracked.txt"])
    assert (repo / "tracked.txt").read_text() == "attempt's edit\n"
    restored, left = changes.set_aside(repo, scratch, 3, ["tracked.txt"], tmp_path / "left")
    assert (restored, left) == ([], ["tracked.txt"])  # no baseline file at all


def test_a_copy_that_no_longer_matches_the_baseline_is_not_restored(
        repo: Path, tmp_path: Path) -> None:
    (repo / "notes.txt").write_text("before the pass")
    scratch = tmp_path / "scratch"
    changes.baseline(repo, scratch, 1)
    (scratch / "baseline-i1" / "notes.txt").write_text("a copy changed since")
    (repo / "notes.txt").write_text("attempt's edit")
    restored, left = changes.set_aside(repo, scratch, 1, ["notes.txt"], tmp_path / "left")
    assert (restored, left) == ([], ["notes.txt"])
    assert (repo / "notes.txt").read_text() == "attempt's edit"


def test_a_file_the_attempt_created_goes_and_one_it_deleted_comes_back(
        repo: Path, tmp_path: Path) -> None:
    scratch = tmp_path / "scratch"
    changes.baseline(repo, scratch, 1)
    (repo / "new.txt").write_text("made by the attempt")
    (repo / "tracked.txt").unlink()
    keep = tmp_path / "left"
    restored, left = changes.set_aside(repo, scratch, 1, ["new.txt", "tracked.txt"], keep)
    assert (sorted(restored), left) == (["new.txt", "tracked.txt"], [])
    assert not (repo / "new.txt").exists()
    assert (keep / "new.txt").read_text() == "made by the attempt"
    assert (repo / "tracked.txt").read_text() == "committed\n"
