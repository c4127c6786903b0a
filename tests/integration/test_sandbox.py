"""A lane under the sandbox (bubblewrap), run by a real worker on a real PostgreSQL.

Each test runs the same probe with and without the sandbox, so each can fail: what the
probe finds unsandboxed is what the sandbox must hide. The striatum home, the user's
``~/.pgpass`` and the other repository are put where the lane's own writable paths
would show them (inside its HOME, inside its repository), not under ``/tmp``, which the
sandbox replaces whole: that would hide them without the hiding this tests.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from striatum.runtime import runs, sandbox
from striatum.runtime.store import Store

from .worker_helpers import artifact_file, git_init, one_task, start_run, work, write_workflow

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(sandbox.probe() is not None,
                                 reason=f"no usable bubblewrap: {sandbox.probe()}")]

# Reports what it can reach into out.md, as JSON; waits (up to 20 s) for the peer lane's
# marker first, so the peer is alive while it looks in /proc.
PROBE = r"""
import json, os, pathlib, subprocess, sys, time
home, other, repo = sys.argv[1:4]
mine = os.environ["STRIATUM_LEASE"]
deadline = time.monotonic() + 20
while not os.path.exists(os.path.join(repo, "peer-started")) and time.monotonic() < deadline:
    time.sleep(0.1)
def readable(path):
    try:
        return pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return None
# Undo the hiding, as a lane of a root worker could with every capability.
for hidden in (home, other, os.path.join(os.environ["HOME"], ".pgpass")):
    subprocess.run(["umount", "-l", hidden], capture_output=True)
leases = set()
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        leases |= {e[15:].decode() for e in environ if e.startswith(b"STRIATUM_LEASE=")}
mentions = []
for top in (os.path.join(repo, ".striatum"), os.environ["HOME"]):
    for folder, _, names in os.walk(top):
        for name in names:
            text = readable(os.path.join(folder, name))
            if text is not None and mine in text:
                mentions.append(os.path.join(folder, name))
pathlib.Path(repo, "src", "written.txt").write_text("by the lane\n")
# Whether each secret was readable, not the secret: the report is published.
report = {"pgpass": readable(os.path.join(home, "pgpass")) is not None,
          "client_token": readable(os.path.join(home, "run", "client-token")) is not None,
          "user_pgpass": readable(os.path.join(os.environ["HOME"], ".pgpass")) is not None,
          "other_repo": readable(os.path.join(other, "secret.txt")) is not None,
          "other_leases": len(leases - {mine}), "token_in_files": mentions,
          "pid1": readable("/proc/1/cmdline")}
pathlib.Path(os.environ["STRIATUM_ARTIFACT_DIR"], "out.md").write_text(json.dumps(report))
"""
PEER = r"""
import os, pathlib, sys, time
repo = sys.argv[1]
pathlib.Path(repo, "peer-started").write_text("")
deadline = time.monotonic() + 20
while not os.path.exists(os.path.join(os.environ["STRIATUM_REPO"], "src", "written.txt")) \
        and time.monotonic() < deadline:
    time.sleep(0.1)
pathlib.Path(os.environ["STRIATUM_ARTIFACT_DIR"], "peer.md").write_text("done")
"""


def _places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """The user's HOME with a ~/.pgpass and the striatum home inside it; a repository with
    another repository (with a run of its own) inside it."""
    user = tmp_path / "user"
    home = user / ".local" / "share" / "striatum"
    (home / "run").mkdir(parents=True)
    (home / "pgpass").write_text("*:*:*:postgres:the-owners-secret\n")
    (home / "run" / "client-token").write_text("the-principal-token\n")
    (user / ".pgpass").write_text("*:*:*:me:the-users-secret\n")
    (user / ".pgpass").chmod(0o600)
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.setenv("STRIATUM_HOME", str(home))
    repo = tmp_path / "repo"
    repo.mkdir()
    git_init(repo, commit=True)
    other = repo / "vendor" / "other"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("the other repository's secret\n")
    return {"home": home, "user": user, "repo": repo, "other": other}


def _probe_run(store: Store, places: dict[str, Path], lane: dict[str, Any]) -> str:
    repo, home, other = places["repo"], places["home"], places["other"]
    # The other repository is one the database knows: it has a run.
    start_run(store, one_task(other / "flow", {"command": ["true"]}), other)
    flow = write_workflow(repo / "flow", {
        "name": "probe",
        "lanes": {"probe": {**lane, "command": [sys.executable, "-c", PROBE, str(home),
                                                str(other), str(repo)]},
                  "peer": {"command": [sys.executable, "-c", PEER, str(repo)]}},
        "jobs": [{"id": "look", "lane": "probe", "prompt": {"text": "Look around."},
                  "produces": ["out.md"]},
                 {"id": "beside", "lane": "peer", "prompt": {"text": "Wait."},
                  "produces": ["peer.md"]}]})
    return start_run(store, flow, repo)


@pytest.mark.parametrize("sandboxed", [False, True], ids=["unsandboxed", "sandboxed"])
def test_a_sandboxed_lane_works_its_repository_and_sees_nothing_else(
        store: Store, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        sandboxed: bool) -> None:
    places = _places(tmp_path, monkeypatch)
    run_id = _probe_run(store, places, {"sandbox": sandboxed})
    outcomes = work(dsn, run_id, timeout=90, concurrency=2, until_run_ends=True)
    assert runs.status(store, run_id).run.status == "completed", outcomes
    # It wrote its repository, and the worker published what it left and completed it.
    assert (places["repo"] / "src" / "written.txt").read_text() == "by the lane\n"
    report = json.loads(artifact_file(store, run_id, places["repo"], "look", "out.md").read_text())
    found = {key: report[key] for key in ("pgpass", "client_token", "user_pgpass",
                                          "other_repo")}
    if sandboxed:
        assert found == dict.fromkeys(found, False), report
        assert report["other_leases"] == 0, report
        assert "bwrap" in (report["pid1"] or ""), report  # its own pid namespace
    else:
        assert found == dict.fromkeys(found, True), report
        assert report["other_leases"], report  # the peer's token, in /proc
    # Whatever it could see, no file striatum wrote for it holds its lease token.
    assert report["token_in_files"] == [], report
    secrets = ("the-owners-secret", "the-principal-token", "the-users-secret")
    for path in places["repo"].rglob("*"):
        if path.is_file() and ".git" not in path.parts and "vendor" not in path.parts:
            text = path.read_text(errors="replace")
            assert not any(secret in text for secret in secrets), path


def test_the_worker_flag_sandboxes_every_lane(store: Store, dsn: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    places = _places(tmp_path, monkeypatch)
    run_id = _probe_run(store, places, {})  # the workflow does not ask for it
    work(dsn, run_id, timeout=90, concurrency=2, until_run_ends=True, sandbox=True)
    report = json.loads(artifact_file(store, run_id, places["repo"], "look", "out.md").read_text())
    assert (report["pgpass"], report["other_repo"], report["other_leases"]) == (
        False, False, 0), report


def _take_bwrap_away(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH with git but no bwrap, and the probe's cache forgotten (again at the end)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git") or "/usr/bin/git")
    monkeypatch.setenv("PATH", str(bin_dir))
    sandbox.probe.cache_clear()


@pytest.fixture
def forget_probe() -> Iterator[None]:
    yield
    sandbox.probe.cache_clear()


def test_without_bwrap_a_sandboxed_lane_is_refused_not_run_unsandboxed(
        store: Store, dsn: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        forget_probe: None) -> None:
    ran = tmp_path / "ran"
    flow = one_task(tmp_path / "flow", {"command": [sys.executable, "-c",
                                                    f"open({str(ran)!r}, 'w')"],
                                        "sandbox": True})
    # Prepared where bwrap runs, claimed by a worker where it does not.
    run_id = start_run(store, flow, repo)
    _take_bwrap_away(tmp_path, monkeypatch)
    outcomes = work(dsn, run_id, timeout=60, until_run_ends=True)
    assert not ran.exists()
    assert [o.status for o in outcomes] == ["failed"], outcomes
    assert "`bwrap` is not on this machine's PATH" in outcomes[0].detail, outcomes
    assert "apt-get install bubblewrap" in outcomes[0].detail, outcomes
    assert runs.status(store, run_id).run.status == "failed"  # once: it is final
    # And prepare, here, refuses such a run before it exists.
    found = runs.preflight_of(flow, str(repo), overrides={}, lanes={})
    errors = [f for f in found if f.severity == "error"]
    assert len(errors) == 1 and "lane agent must run sandboxed" in errors[0].message, found
    assert errors[0].hint is not None and "apt-get install bubblewrap" in errors[0].hint


def test_the_socket_the_lane_is_given_is_reachable_inside_the_hidden_runtime_folder(
        store: Store, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket named by STRIATUM_SOCKET (a worker's lease-only socket) in the striatum
    home's runtime folder: bound in, while the folder's tokens stay hidden."""
    places = _places(tmp_path, monkeypatch)
    path = places["home"] / "run" / "lanes.sock"
    heard: list[bytes] = []
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen(1)
        server.settimeout(60)

        def serve() -> None:
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                with conn:
                    heard.append(conn.recv(100))

        listener = threading.Thread(target=serve, daemon=True)
        listener.start()
        talk = ("import os, pathlib, socket; s = socket.socket(socket.AF_UNIX); "
                "s.connect(os.environ['STRIATUM_SOCKET']); s.sendall(b'from the lane'); "
                "token = os.path.join(os.path.dirname(os.environ['STRIATUM_SOCKET']), "
                "'client-token'); pathlib.Path(os.environ['STRIATUM_ARTIFACT_DIR'], "
                "'out.md').write_text(str(os.path.exists(token)))")
        flow = one_task(tmp_path / "flow", {"command": [sys.executable, "-c", talk],
                                            "env": {"STRIATUM_SOCKET": str(path)},
                                            "sandbox": True})
        run_id = start_run(store, flow, places["repo"])
        outcomes = work(dsn, run_id, timeout=60, until_run_ends=True)
        listener.join(10)
    assert [o.status for o in outcomes] == ["succeeded"], outcomes
    assert heard == [b"from the lane"]
    assert artifact_file(store, run_id, places["repo"], "write", "out.md").read_text() \
        == "False"
