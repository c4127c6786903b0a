"""The git side of an attempt: where the target sits in its work tree, and the
worktrees that isolate a job (``isolation: worktree``).

The target repository (``--repo``) may be a folder below the top of its git work
tree. git names paths from the top, while a job's ``writes`` and striatum's own
folders are relative to the target, so every path git reports is translated
with ``Checkout.relative``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import Conflict


@dataclass(frozen=True)
class Checkout:
    """A target folder inside a git work tree: the tree's top, and the folder's path from
    it ("" at the top, else ending in "/")."""

    top: Path
    prefix: str

    def relative(self, path_from_top: str) -> str:
        """A path git reports (from the top) as a path from the target folder; one outside
        the folder comes out as ../..., which no ``writes`` glob allows."""
        if path_from_top.startswith(self.prefix):
            return path_from_top[len(self.prefix):]
        return os.path.relpath(path_from_top, self.prefix or ".")


_checkouts: dict[str, Checkout] = {}


def checkout(folder: str) -> Checkout | None:
    """The work tree ``folder`` is in, or None when it is not in one (asked again next
    time: a folder may become a repository; where one is never changes)."""
    found = _checkouts.get(folder)
    if found is None:
        done = subprocess.run(["git", "-C", folder, "rev-parse", "--show-toplevel",
                               "--show-prefix"], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            return None
        lines = done.stdout.split("\n")
        found = Checkout(Path(lines[0]), lines[1] if len(lines) > 1 else "")
        _checkouts[folder] = found
    return found


def git(folder: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, timeout=600,
                          check=True)


def add_worktree(repo: Path, base_commit: str | None, root: Path) -> tuple[Path, Path]:
    """A detached worktree of ``base_commit`` at ``root`` (in the attempt's scratch): its
    root, and the target folder inside it (where the lane runs)."""
    found = checkout(str(repo))
    if not base_commit or found is None:
        raise Conflict("isolation: worktree needs the target to be a git repository with a "
                       "commit when the run is prepared",
                       hint="commit in the repository, then prepare a new run")
    if root.exists():
        remove_worktree(repo, root)
    git(repo, "worktree", "add", "--detach", str(root), base_commit)
    return root, root / found.prefix if found.prefix else root


def worktree_diff(root: Path, base: str | None, path: Path) -> Path:
    """Everything the attempt changed in its worktree, as a binary-safe diff file at
    ``path``."""
    git(root, "add", "-A")
    diff = git(root, "diff", "--cached", "--binary", base or "HEAD").stdout
    path.write_bytes(diff)
    return path


def diff_paths(root: Path, base: str | None, repo: Path) -> list[str]:
    """The paths the attempt changed in its worktree, from the target folder ``repo``
    (whose place in its work tree the worktree repeats)."""
    names = git(root, "diff", "--cached", "--name-only", "-z", base or "HEAD").stdout
    found = checkout(str(repo))
    paths = (n.decode("utf-8", "surrogateescape") for n in names.split(b"\0") if n)
    return sorted(found.relative(p) if found else p for p in paths)


def remove_worktree(repo: Path, root: Path) -> None:
    """Remove an attempt's worktree; never raises (what cannot be removed is left to
    `git worktree prune`)."""
    try:
        git(repo, "worktree", "remove", "--force", str(root))
    except (subprocess.SubprocessError, OSError):
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True,
                           timeout=60)
