"""What a job changed in the repository, and whether its ``writes`` globs allow it.

The repository's state is read through git (``status --porcelain -z``, with a
content hash of every dirty file), so a change is found even in a file that
was already dirty before the job ran. Paths are named from the target folder
(``--repo``), which may sit below the top of its work tree. Paths under
``.striatum/`` and the run's artifact root are striatum's own and never count.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from ..globs import matches
from .worktrees import checkout

Snapshot = dict[str, str]


def snapshot(repo: Path) -> Snapshot:
    """path -> content hash (or "deleted") of every path git sees as changed, the paths
    from ``repo`` (which may be a folder below the top of its work tree)."""
    found = checkout(str(repo))
    if found is None:
        return {}
    done = subprocess.run(["git", "-C", str(repo), "status", "--porcelain=v1", "-z",
                           "--untracked-files=all"], capture_output=True, timeout=300,
                          check=True)
    state: Snapshot = {}
    entries = done.stdout.split(b"\0")
    i = 0
    while i < len(entries):
        entry = entries[i]
        i += 1
        if len(entry) < 4:
            continue
        # Porcelain output names paths from the top of the work tree, wherever git runs.
        code, path = entry[:2], entry[3:].decode("utf-8", "surrogateescape")
        if code[:1] in (b"R", b"C"):
            i += 1  # the rename's source path follows; the destination is what changed
        state[found.relative(path)] = _digest(found.top / path)
    return state


# How much of the files already changed when a pass starts is copied aside, so that a
# failed attempt's edits to them can be undone exactly (see ``set_aside``).
COPY_CAP = 64 << 20


def baseline(repo: Path, job_scratch: Path, iteration: int) -> Snapshot:
    """The repository as it was when this pass of the job first started.

    Kept in the job's scratch folder and reused by every retry of the pass, so a
    change outside ``writes`` left behind by a failed attempt still counts
    against the next one instead of becoming its starting point. The files already
    changed then (an earlier job's work, say) are copied beside it, up to COPY_CAP,
    so that a failed attempt's edits to them can be taken back.
    """
    import json

    path = job_scratch / f"baseline-i{iteration}.json"
    try:
        loaded: Snapshot = json.loads(path.read_text(encoding="utf-8"))
        return loaded
    except (OSError, ValueError):
        pass
    state = snapshot(repo)
    job_scratch.mkdir(parents=True, exist_ok=True)
    copies, room = job_scratch / f"baseline-i{iteration}", COPY_CAP
    for name, digest in state.items():
        source = repo / name
        if digest in ("deleted", "directory") or not source.is_file():
            continue
        size = source.stat().st_size
        if size > room:
            continue  # not copied: set_aside leaves this file as the attempt left it
        room -= size
        (copies / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copies / name)
    path.write_text(json.dumps(state), encoding="utf-8")
    return state


def set_aside(repo: Path, job_scratch: Path, iteration: int, touched: list[str],
              keep: Path) -> tuple[list[str], list[str]]:
    """Take back a failed attempt's changes to the shared working tree, so the retry
    starts from what the pass started from; never lose them: each changed file is first
    copied under ``keep`` (the attempt's scratch folder). A file that was clean at the
    pass's start goes back to the committed version (or away, if git did not know it);
    one already changed then goes back to the copy ``baseline`` kept. Returns (the
    paths restored, the paths left as the attempt left them: no copy to restore)."""
    import json

    try:
        before: Snapshot = json.loads(
            (job_scratch / f"baseline-i{iteration}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return [], list(touched)
    copies = job_scratch / f"baseline-i{iteration}"
    found = checkout(str(repo))
    restored: list[str] = []
    left: list[str] = []
    for name in touched:
        current = repo / name
        if current.is_file():
            (keep / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(current, keep / name)
        was = before.get(name)
        if was is None:  # clean when the pass started
            if found is not None and _tracked(repo, name):
                subprocess.run(["git", "-C", str(repo), "checkout", "--", name],
                               capture_output=True, timeout=300, check=True)
            elif current.is_file() or current.is_symlink():
                current.unlink()
            restored.append(name)
        elif was == "deleted":
            if current.is_file() or current.is_symlink():
                current.unlink()
            restored.append(name)
        elif (copies / name).is_file() and _digest(copies / name) == was:
            current.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(copies / name, current)
            restored.append(name)
        else:
            left.append(name)
    return restored, left


def _tracked(repo: Path, name: str) -> bool:
    done = subprocess.run(["git", "-C", str(repo), "ls-files", "--error-unmatch", "--", name],
                          capture_output=True, timeout=300)
    return done.returncode == 0


def _digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except IsADirectoryError:
        return "directory"
    except OSError:
        return "deleted"


def changed(before: Snapshot, after: Snapshot, ignore: tuple[str, ...]) -> list[str]:
    paths = {p for p in set(before) | set(after) if before.get(p) != after.get(p)}
    return sorted(p for p in paths if not any(p == i or p.startswith(i + "/") for i in ignore))


def listed(paths: list[str], limit: int = 10) -> str:
    """Paths for a message: the first ``limit``, and how many more."""
    more = len(paths) - limit
    return ", ".join(paths[:limit]) + (f" and {more} more" if more > 0 else "")


def outside(paths: list[str], globs: tuple[str, ...] | list[str]) -> list[str]:
    """The paths no glob allows (directories allow what is inside them: "src/**").

    The glob dialect is ``striatum.globs``, the one lint reads `writes` with."""
    return [p for p in paths if not any(matches(g, p) for g in globs)]
