"""Scenario 14, bad input: every CLI argument that takes a file or an id, fed junk.

The JSON loader and the DSL parser are fuzzed at the compiler's level by
tests/unit/test_proofs.py; here the junk goes through the command line, as a user or an
agent would type it: workflow files (random bytes, mutated and truncated documents, huge
and deeply nested ones, invalid UTF-8) to every ``workflow`` verb and to ``run prepare``;
run ids, job ids, lease tokens, ``--var``, ``--lane`` JSON, ``--artifact``, ``--as``,
``--reason``, checkpoint choices and ``--repo`` to every verb that takes them. Arguments
are drawn the way the operating system hands them to Python: any bytes but NUL, decoded
with ``surrogateescape`` (so invalid UTF-8 arrives as lone surrogates).

Every invocation must exit with a code of the table in docs/cli.md (70, "internal error",
is a bug), print no traceback, and say something on stderr when it fails.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from striatum.cli import main as cli_main
from striatum.runtime import leases, runs
from striatum.runtime.store import Store
from tests.integration.helpers import example
from tests.unit.strategies import hostile_bytes, mutated_documents, valid_workflows

from .conftest import Record

DOCUMENTED = {0, 1, 2, 3, 4, 5, 6, 7}  # docs/cli.md; 70 is "internal error (a bug)"


@dataclass
class Result:
    argv: list[str]
    code: int
    out: str
    err: str

    def problem(self) -> str | None:
        if self.code not in DOCUMENTED:
            return f"exit {self.code}"
        if "Traceback" in self.out + self.err:
            return "a traceback"
        if self.code != 0 and not self.err.strip() and not self.out.strip():
            return f"exit {self.code} without a word"
        # After "--" a "--json" is an argument (a file of that name), not the option.
        options = self.argv[:self.argv.index("--")] if "--" in self.argv else self.argv
        if "--json" in options and self.out.strip() and not {"-h", "--help"} & set(options):
            try:
                json.loads(self.out)
            except ValueError:
                return "--json printed something that is not one JSON document"
        return None


def invoke(argv: list[str]) -> Result:
    """The CLI's own entry point (``striatum.cli.main.run``), in this process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_main.run(argv)
    return Result(argv, code, out.getvalue(), err.getvalue())


# -- what a command line can carry -------------------------------------------------------------


def as_argv(raw: bytes) -> str:
    """How Python receives one argv element: bytes without NUL, surrogateescape-decoded."""
    return os.fsdecode(raw.replace(b"\x00", b""))


ARG_BYTES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"-", b"--", b"--help", b"-h", b"--json", b"' OR 1=1 --", b"%s",
                     b"%(run)s", b"../../../etc/passwd", b"/", b".", b"\xff\xfe", b"\xed\xa0\x80",
                     b"a" * 5000, b"\n", b" ", b"null", b"{}", b"[]", b"1-" + b"0" * 32,
                     b"\xc3\x28", b"$(touch pwned)", b"`id`", b"\\", b"\"", b"=", b"x=",
                     b"=y", b"x=\xff", b"coder=[]", b"coder={}", b"coder=\"x\"",
                     b"coder={\"command\": [\"\\u0000\"]}", b"coder=" + b"[" * 5000]),
)
JUNK = ARG_BYTES.map(as_argv)
# Names for files the test may write: no slash, so junk never lands outside tmp_path.
SAFE_NAME = st.text(alphabet=st.characters(blacklist_characters="/\x00",
                                           blacklist_categories=["Cs"]),
                    min_size=1, max_size=30).filter(lambda n: n not in (".", ".."))


@st.composite
def workflow_contents(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["hostile", "mutated", "valid", "truncated", "nested",
                                 "huge"]))
    if kind == "hostile":
        return bytes(draw(hostile_bytes()))
    if kind == "mutated":
        return str(draw(mutated_documents())).encode("utf-8", "surrogatepass")
    text = json.dumps(draw(valid_workflows()))
    if kind == "valid":
        return text.encode()
    if kind == "truncated":
        return text[:draw(st.integers(0, max(0, len(text) - 1)))].encode()
    if kind == "nested":
        depth = draw(st.integers(100, 100_000))
        return ('{"name": "n", "lanes": ' + "[" * depth + "]" * depth + "}").encode()
    return b'{"name": "' + b"x" * draw(st.integers(1 << 20, 3 << 20)) + b'"}'


@dataclass
class Real:
    """Real objects the junk is mixed with, so checks past the first one are reached."""

    run: str
    job: str
    token: str
    workflow: str
    artifact: str


@dataclass
class FileArg:
    content: bytes
    suffix: str


@st.composite
def command(draw: st.DrawFn, real: Real) -> list[Any]:
    def either(value: str) -> Any:
        return draw(st.one_of(st.just(value), JUNK))

    def file_arg() -> Any:
        return draw(st.one_of(
            st.builds(FileArg, workflow_contents(), st.sampled_from([".json", ".stm", ""])),
            JUNK, st.just(real.workflow), st.sampled_from(["/dev/null", "/dev/zero", "/",
                                                           "/proc/self/mem", "missing.json"])))

    held = ["--run", either(real.run), "--job", either(real.job), "--lease", either(real.token)]
    json_flag = ["--json"] if draw(st.booleans()) else []
    verb = draw(st.sampled_from([
        "validate", "lint", "compile", "plan", "graph", "fmt", "plan-verdicts", "prepare",
        "status", "start", "events", "cancel", "resume", "claim", "heartbeat", "complete",
        "release", "fail", "publish", "verdict", "decide", "repo"]))
    if verb in ("validate", "lint", "compile", "plan", "graph", "fmt"):
        argv = ["workflow", verb, file_arg()]
    elif verb == "plan-verdicts":
        argv = ["workflow", "plan", file_arg(), "--verdicts", draw(JUNK)]
    elif verb == "prepare":
        argv = ["run", "prepare", "--workflow", file_arg()]
        for flag in ("--var", "--lane", "--artifact-root"):
            for _ in range(draw(st.integers(0, 2))):
                argv += [flag, draw(JUNK) if flag != "--artifact-root" else draw(SAFE_NAME)]
    elif verb == "events":
        argv = ["run", "events", either(real.run), "--after", either("0")]
    elif verb == "resume":
        argv = ["run", "resume", either(real.run), "--decision",
                either(draw(st.sampled_from(["accept", "fail", "revise"]))), "--reason",
                draw(JUNK)]
    elif verb in ("status", "start", "cancel"):
        argv = ["run", verb, either(real.run)]
    elif verb == "claim":
        argv = ["job", "claim", "--run", either(real.run), "--lane", draw(JUNK), "--owner",
                draw(JUNK), "--lease-seconds", either("60")]
    elif verb in ("heartbeat", "complete", "release"):
        argv = ["job", verb, *held]
    elif verb == "fail":
        argv = ["job", "fail", *held, "--reason", draw(JUNK)]
    elif verb == "publish":
        argv = ["job", "publish", *held, "--artifact", either(real.artifact), "--as",
                draw(JUNK)]
    elif verb == "verdict":
        argv = ["job", "verdict", either("accept"), *held, "--reason", draw(JUNK)]
    elif verb == "decide":
        argv = ["checkpoint", "decide", either(real.run), either(real.job), draw(JUNK)]
    else:
        argv = ["--repo", draw(JUNK), "run", "list"]
    return argv + json_flag


def materialize(argv: list[Any], folder: Path, n: int) -> list[str]:
    out = []
    for i, part in enumerate(argv):
        if isinstance(part, FileArg):
            path = folder / f"junk{n}-{i}{part.suffix}"
            path.write_bytes(part.content)
            out.append(str(path))
        else:
            out.append(part)
    return out


@pytest.fixture
def real(store: Store, repo: Path, tmp_path: Path) -> Real:
    run_id = runs.prepare(store, example("code-change"), str(repo), overrides={})
    runs.start(store, run_id)
    claim = leases.claim(store, run_id, owner="fuzz")
    assert claim is not None
    artifact = tmp_path / "draft.md"
    artifact.write_text("a draft\n", encoding="utf-8")
    return Real(run_id, claim.job, claim.token, example("code-change"), str(artifact))


def fuzz_cli(dsn: str, real: Real, repo: Path, tmp_path: Path, examples: int,
             monkeypatch: pytest.MonkeyPatch, figure: Record) -> None:
    for name in ("STRIATUM_RUN", "STRIATUM_JOB", "STRIATUM_LEASE", "STRIATUM_REPO",
                 "STRIATUM_DSN", "STRIATUM_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(repo)
    folder = tmp_path / "junk"
    folder.mkdir()
    problems: list[tuple[str, list[str], str]] = []
    codes: Counter[int] = Counter()
    seen = {"n": 0}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.large_base_example])
    @given(argv=command(real))
    def check(argv: list[Any]) -> None:
        seen["n"] += 1
        concrete = ["--dsn", dsn, *materialize(argv, folder, seen["n"])]
        result = invoke(concrete)
        codes[result.code] += 1
        found = result.problem()
        if found:
            problems.append((found, concrete[2:], result.err[-300:]))

    started = time.monotonic()
    check()
    figure("14 bad input (CLI, in process)", seen["n"],
           f"undocumented exits or tracebacks {len(problems)} / {seen['n']} "
           f"(exit codes seen: {dict(sorted(codes.items()))})", time.monotonic() - started)
    assert not problems, "\n".join(
        f"{why}: striatum {' '.join(repr(a)[:80] for a in argv)}\n   {err.strip()[:300]}"
        for why, argv, err in problems[:15])


def test_junk_in_every_file_and_id_argument(dsn: str, real: Real, repo: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            figure: Record) -> None:
    fuzz_cli(dsn, real, repo, tmp_path, 300, monkeypatch, figure)


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_soak_junk_in_every_file_and_id_argument(dsn: str, real: Real, repo: Path,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 figure: Record) -> None:
    fuzz_cli(dsn, real, repo, tmp_path, 3000, monkeypatch, figure)


# -- through a real process: argv bytes as the kernel passes them --------------------------------

RAW_ARGV = [
    [b"run", b"status", b"\xff"],
    [b"run", b"events", b"\xc3\x28", b"--after", b"1"],
    [b"job", b"heartbeat", b"--run", b"r\xff", b"--job", b"j", b"--lease", b"t"],
    [b"job", b"complete", b"--run", b"r", b"--job", b"\xed\xa0\x80", b"--lease", b"t"],
    [b"checkpoint", b"decide", b"\xfe", b"\xff", b"\x80"],
    [b"run", b"prepare", b"--workflow", b"\xff.json"],
    [b"workflow", b"validate", b"\xff\xfe.json"],
    [b"--repo", b"\xff", b"run", b"list"],
]


def striatum_argv() -> list[str]:
    return [sys.executable, "-m", "striatum"]


def test_invalid_utf8_arguments_through_a_real_process(dsn: str, real: Real, repo: Path,
                                                       figure: Record) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIATUM_")}
    problems = []
    started = time.monotonic()
    for argv in RAW_ARGV:
        done = subprocess.run([*map(os.fsencode, striatum_argv()), b"--dsn", os.fsencode(dsn),
                               *argv], cwd=repo, env=env, capture_output=True, timeout=60)
        err = done.stderr.decode("utf-8", "replace")
        shown = b" ".join(argv).decode("utf-8", "backslashreplace")
        if done.returncode not in DOCUMENTED:
            problems.append(f"striatum {shown}: exit {done.returncode}: {err.strip()[:200]}")
        elif b"Traceback" in done.stderr:
            problems.append(f"striatum {shown}: a traceback")
        elif done.returncode and not err.strip():
            problems.append(f"striatum {shown}: failed without a word")
    figure("14 bad input (invalid UTF-8 argv, real process)", len(RAW_ARGV),
           f"undocumented exits or tracebacks {len(problems)} / {len(RAW_ARGV)}",
           time.monotonic() - started)
    assert not problems, "\n".join(problems)


# -- the DSN ------------------------------------------------------------------------------------

# ("host=" is not here: an empty host is libpq's default socket, a valid DSN that
# connects wherever the local server is.)
BAD_DSNS = ["junk", "port=abc", "dbname='unterminated", "postgresql://%zz",
            "postgresql://[::1", "sslmode=bogus", "host=127.0.0.1 port=1 connect_timeout=2",
            "host=/nonexistent-socket-dir"]


def test_a_malformed_or_unreachable_dsn_is_a_usage_error_or_store_unavailable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, figure: Record) -> None:
    monkeypatch.chdir(tmp_path)
    problems = []
    for bad in BAD_DSNS:
        result = invoke(["--dsn", bad, "run", "list"])
        if result.code not in (1, 6) or "Traceback" in result.err:
            problems.append(f"--dsn {bad!r}: exit {result.code}: {result.err.strip()[:200]}")
    figure("14 bad input (--dsn)", len(BAD_DSNS),
           f"DSNs not reported as usage (1) or store unavailable (6): {len(problems)} / "
           f"{len(BAD_DSNS)}", 0.0)
    assert not problems, "\n".join(problems)


# -- a valid workflow the database cannot store as it is -----------------------------------------


# JSON text: the variable's default holds an escaped NUL character.
NUL_VAR = (r'{"name": "nul", "vars": {"goal": "before\u0000after"}, '
           r'"lanes": {"agent": {"kind": "operator"}}, '
           r'"jobs": [{"id": "a", "lane": "agent", "prompt": {"text": "{{ goal }}"}}]}')


def test_a_valid_workflow_with_a_nul_in_a_variable_is_prepared_or_refused_cleanly(
        dsn: str, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        figure: Record) -> None:
    """JSON allows "\u0000" in a string, and the compiler accepts it; PostgreSQL's jsonb
    (runs.vars) does not. Preparing the run must succeed or fail with a documented code."""
    monkeypatch.chdir(repo)
    path = tmp_path / "nul.json"
    path.write_text(NUL_VAR, encoding="utf-8")
    assert json.loads(NUL_VAR)["vars"]["goal"] == "before\x00after"
    validated = invoke(["workflow", "validate", str(path)])
    assert validated.code == 0, validated.out
    prepared = invoke(["--dsn", dsn, "run", "prepare", "--workflow", str(path)])
    figure("14 bad input (NUL in a variable)", 1,
           f"run prepare of a valid workflow: exit {prepared.code}", 0.0)
    assert prepared.problem() is None, (
        f"run prepare of a valid workflow: exit {prepared.code}: {prepared.err.strip()}")
