"""The bwrap argv a sandboxed lane runs under, the probe, and ``sandbox`` in the contract."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from striatum import compiler
from striatum.compiler.compiled import CompiledWorkflow
from striatum.compiler.dsl import parse_dsl
from striatum.compiler.dsl.printer import to_dsl
from striatum.compiler.ir import normalize
from striatum.errors import SandboxUnavailable
from striatum.runtime import preflight as preflight_module
from striatum.runtime import sandbox
from striatum.runtime.sandbox import View, view_for, wrap


def mounts(argv: list[str]) -> list[tuple[str, ...]]:
    """The mounts after the fixed ones, as (option, *paths), in order."""
    cut = argv.index("--chdir")
    rest = argv[argv.index("/dev/shm") + 1:cut]
    out: list[tuple[str, ...]] = []
    while rest:
        width = 2 if rest[0] == "--tmpfs" else 3
        out.append(tuple(rest[:width]))
        rest = rest[width:]
    return out


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in ("user/.local/share/striatum/run", "user/code/repo/vendor/other",
                   "user/code/elsewhere"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "user/.pgpass").write_text("*:*:*:me:secret\n")
    (tmp_path / "user/.local/share/striatum/run/lanes.sock").write_text("")
    return tmp_path


def test_the_fixed_part_isolates_pids_proc_tmp_drops_capabilities_and_dies_with_its_parent(
        tree: Path) -> None:
    argv = wrap(["claude", "-p"], cwd=tree, view=View((), ()), bwrap="/usr/bin/bwrap")
    assert argv[:16] == ["/usr/bin/bwrap", "--die-with-parent", "--unshare-pid",
                         "--cap-drop", "ALL", "--ro-bind", "/", "/", "--dev", "/dev",
                         "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    assert argv[-5:] == ["--chdir", str(tree), "--", "claude", "-p"]
    assert "--unshare-net" not in argv  # the agent CLIs call their vendors


def test_the_home_and_the_other_repositories_are_hidden_the_lane_s_own_shown(
        tree: Path) -> None:
    user, repo = tree / "user", tree / "user/code/repo"
    home = user / ".local/share/striatum"
    view = view_for(repo=repo, workdir=repo, env={"HOME": str(user)}, striatum_home=home,
                    repos=[str(repo), str(repo / "vendor/other"), str(user / "code/elsewhere"),
                           str(tree / "gone")], worker_env={"HOME": str(user)})
    assert mounts(wrap(["x"], cwd=repo, view=view)) == [
        # shallowest first: the deeper path wins over the one that holds it
        ("--bind", str(user), str(user)),
        ("--ro-bind", "/dev/null", str(user / ".pgpass")),
        ("--bind", str(repo), str(repo)),
        ("--tmpfs", str(user / "code/elsewhere")),
        ("--tmpfs", str(home)),
        ("--tmpfs", str(home / "run")),
        ("--tmpfs", str(repo / "vendor/other")),
    ]  # a repository that is no longer there has nothing to hide


def test_the_socket_is_shown_inside_the_hidden_runtime_folder(tree: Path) -> None:
    home = tree / "user/.local/share/striatum"
    repo = tree / "user/code/repo"
    socket = home / "run/lanes.sock"
    view = view_for(repo=repo, workdir=repo, env={"STRIATUM_SOCKET": str(socket)},
                    striatum_home=home, repos=[], worker_env={})
    found = mounts(wrap(["x"], cwd=repo, view=view))
    assert found.index(("--tmpfs", str(home / "run"))) < found.index(
        ("--bind", str(socket), str(socket)))
    assert ("--bind", str(tree / "user"), str(tree / "user")) not in found  # no HOME given


def test_a_worktree_and_pgpassfile_and_a_symlinked_home(tree: Path, tmp_path: Path) -> None:
    repo = tree / "user/code/repo"
    worktree = tree / "wt"
    worktree.mkdir()
    (tmp_path / "link").symlink_to(tree / "user")
    secrets = tree / "secrets.conf"
    secrets.write_text("x")
    view = view_for(repo=repo, workdir=worktree, env={"HOME": str(tmp_path / "link")},
                    striatum_home=tree / "none", repos=[str(repo)],
                    worker_env={"PGPASSFILE": str(secrets)})
    found = mounts(wrap(["x"], cwd=worktree, view=view))
    assert ("--bind", str(worktree), str(worktree)) in found
    assert ("--bind", str(tree / "user"), str(tree / "user")) in found  # resolved
    assert ("--ro-bind", "/dev/null", str(secrets)) in found
    assert ("--ro-bind", "/dev/null", str(tree / "user/.pgpass")) in found


@pytest.fixture
def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PATH", str(tmp_path))
    sandbox.probe.cache_clear()
    yield
    sandbox.probe.cache_clear()


def test_without_bwrap_the_probe_says_why_and_require_refuses(no_bwrap: None) -> None:
    assert sandbox.probe() == "`bwrap` is not on this machine's PATH"
    with pytest.raises(SandboxUnavailable) as refused:
        sandbox.require()
    assert refused.value.code == "sandbox_unavailable" and refused.value.exit_code == 4
    assert "apt-get install bubblewrap" in refused.value.message


def test_preflight_refuses_a_sandboxed_lane_without_bwrap(no_bwrap: None) -> None:
    compiled = _compiled('workflow w\nlane a = ["x"] sandbox\nlane b = ["y"] sandbox\n'
                         'task t by a { prompt text "p" }\ntask u by b { prompt text "p" }')
    found = preflight_module._sandbox(compiled)
    assert [(f.severity, f.message.split(",")[0]) for f in found] == [
        ("error", "lanes a")]
    assert "a worker here would fail their jobs rather than run them unsandboxed" \
        in found[0].message
    assert found[0].hint == sandbox.INSTALL_HINT
    unused = _compiled('workflow w\nlane a = ["x"] sandbox\nlane b = ["y"]\n'
                       'task u by b { prompt text "p" }')
    assert preflight_module._sandbox(unused) == []


def _compiled(text: str) -> CompiledWorkflow:
    return compiler.compile(compiler.check(parse_dsl(text, "w.stm")))


def test_sandbox_is_a_lane_keyword_and_still_a_name() -> None:
    document = parse_dsl('workflow w\nlane sandbox = ["x"] timeout 5 sandbox\n'
                         'task sandbox by sandbox', "w.stm").document
    assert document["lanes"] == {"sandbox": {"command": ["x"], "timeout": 5, "sandbox": True}}
    workflow = normalize(document)
    assert to_dsl(workflow).splitlines()[2] == 'lane sandbox = ["x"] timeout 5 sandbox'
    assert not normalize({**document, "lanes": {"sandbox": {"command": ["x"]}}}
                         ).lanes[0].sandbox  # the default
