"""A lane's command under bubblewrap (``bwrap``): what a sandboxed lane sees.

The lane runs as the worker's OS user, so without a sandbox it reads whatever that
user reads: the striatum home (the server's ``pgpass``, the daemon's tokens), other
repositories, other lanes' environments in ``/proc``. Under the sandbox it sees:

* the system read-only, a private ``/tmp`` and ``/dev/shm``, its own pid namespace and
  ``/proc`` (other lanes' processes, and the lease tokens in their environment, are
  not there), and no capability (a root worker's lane cannot unmount what hides);
* its repository (or worktree) and its ``HOME`` writable: agent CLIs keep their
  configuration and credentials in ``HOME``;
* nothing of the striatum home, the daemon's runtime folder, ``~/.pgpass``, or any
  other repository the database knows a run of (an empty folder or ``/dev/null`` in
  their place), except the socket named by ``STRIATUM_SOCKET``, bound at its path.

It hides; it does not make the agent another user, and it leaves the network alone
(the agent CLIs call their vendors). docs/security.md says what that leaves open.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import SandboxUnavailable

BWRAP = "bwrap"
INSTALL_HINT = "install bubblewrap (`apt-get install bubblewrap`), or drop sandbox from the lane"
PROBE_SECONDS = 10.0


@dataclass(frozen=True)
class View:
    """What one sandboxed lane is shown, and what is hidden from it."""

    writable: tuple[Path, ...]  # its repository, its worktree, its HOME
    hidden: tuple[Path, ...]  # the striatum home, ~/.pgpass, other repositories
    sockets: tuple[Path, ...] = ()  # shown at their own path even inside what is hidden


@functools.lru_cache(maxsize=1)
def probe() -> str | None:
    """Why bwrap cannot sandbox a lane on this machine, or None when it can: asked once a
    process, by running the smallest sandbox there is."""
    found = shutil.which(BWRAP)
    if found is None:
        return f"`{BWRAP}` is not on this machine's PATH"
    try:
        done = subprocess.run([found, "--ro-bind", "/", "/", "--unshare-pid", "--cap-drop",
                               "ALL", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                               "true"],
                              capture_output=True, timeout=PROBE_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"`{BWRAP}` could not be run: {exc}"
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        return (f"`{BWRAP}` cannot make a sandbox here (exit {done.returncode}"
                + (f": {said[-1]}" if said else "") + ")")
    return None


def require() -> str:
    """The bwrap to run, or SandboxUnavailable saying why there is none and what to do (in
    the message: an attempt's reason keeps no hint). A Conflict: every attempt would meet
    it alike, so the job fails without spending its other attempts."""
    reason = probe()
    if reason is not None:
        raise SandboxUnavailable(f"the lane must run sandboxed, and {reason}: {INSTALL_HINT}",
                                 hint=INSTALL_HINT)
    return shutil.which(BWRAP) or BWRAP


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


def _depth(path: Path) -> int:
    return len(path.parts)


def wrap(argv: list[str], *, cwd: Path, view: View, bwrap: str = BWRAP) -> list[str]:
    """``argv`` run by bwrap with ``view``. Mounts are given shallowest first, so a deeper
    path always wins over the one that holds it: a repository inside a hidden folder is
    still shown, the striatum home inside a shown HOME is still hidden, the socket inside
    the hidden runtime folder is still there."""
    # --cap-drop ALL: a worker run as root would otherwise leave the lane root with every
    # capability, free to unmount what hides the home and read it again.
    out = [bwrap, "--die-with-parent", "--unshare-pid", "--cap-drop", "ALL",
           "--ro-bind", "/", "/",
           "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    mounts: list[tuple[Path, list[str]]] = []
    for path in _existing(view.writable):
        mounts.append((path, ["--bind", str(path), str(path)]))
    for path in _existing(view.hidden):
        # An empty folder over a folder; the empty device over a file.
        mounts.append((path, ["--tmpfs", str(path)] if path.is_dir()
                       else ["--ro-bind", "/dev/null", str(path)]))
    for path in _existing(view.sockets):
        mounts.append((path, ["--bind", str(path), str(path)]))
    for _, args in sorted(mounts, key=lambda mount: _depth(mount[0])):
        out += args
    return [*out, "--chdir", str(_real(cwd)), "--", *argv]


def _existing(paths: Iterable[Path]) -> list[Path]:
    """Each path once, resolved, if it is there: bwrap makes a mount point for a missing
    destination only where it can write, and a missing path has nothing to show or hide."""
    seen: dict[Path, None] = {}
    for path in paths:
        real = _real(path)
        if real != Path("/") and os.path.lexists(real):
            seen.setdefault(real)
    return list(seen)


def view_for(*, repo: Path, workdir: Path, env: Mapping[str, str], striatum_home: Path,
             repos: Iterable[str], worker_env: Mapping[str, str] | None = None) -> View:
    """The view of a lane working ``workdir`` of ``repo`` with environment ``env``; ``repos``
    are the repositories the database knows, ``striatum_home`` holds the server's data,
    its ``pgpass`` and the daemon's runtime folder (``run/``). The worker's own libpq
    password file (``PGPASSFILE``, ``~/.pgpass``) is hidden too, wherever HOME points."""
    source = os.environ if worker_env is None else worker_env
    mine = {_real(repo), _real(workdir)}
    writable = [repo, workdir]
    hidden = [striatum_home, striatum_home / "run"]
    homes = {home for home in (env.get("HOME"), source.get("HOME")) if home}
    hidden += [Path(home) / ".pgpass" for home in sorted(homes)]
    if source.get("PGPASSFILE"):
        hidden.append(Path(source["PGPASSFILE"]))
    if env.get("HOME"):
        writable.append(Path(env["HOME"]))
    hidden += [Path(path) for path in repos if _real(path) not in mine]
    socket = env.get("STRIATUM_SOCKET")
    return View(tuple(writable), tuple(hidden), (Path(socket),) if socket else ())
