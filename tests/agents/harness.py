"""The test side: prepare a run whose lanes are real CLIs, work it in the sandbox, and read
back what happened, from the record (the database and the repository) and from the
fakes.

``Bench.work`` starts ``unshare -n python -m tests.agents.sandbox SPEC`` (see
``sandbox.py``), which runs ``striatum run start RUN --wait`` beside the fakes
and returns once the run stopped; ``Outcome`` then holds the run's status, its
jobs, events and artifacts as striatum recorded them, and ``Record`` what each
fake received.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from striatum.runtime import runs
from striatum.runtime.records import JobRow
from striatum.runtime.runs import RunView
from striatum.runtime.store import Store

from .fakes import APIS, ToolResult
from .fakes.openai import WAIT
from .script import Script, find_prompt

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_CLIS = Path(os.environ.get("STRIATUM_AGENT_CLIS", REPO_ROOT / ".agent-clis"))
AGENT_BIN = AGENT_CLIS / "node_modules" / ".bin"
STRIATUM = Path(sys.executable).parent / "striatum"
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"


def missing_cli(vendor: str) -> str | None:
    """Why ``vendor``'s CLI cannot run here, or None."""
    if not AGENT_BIN.is_dir():
        return f"agent CLIs not installed: run `make agent-clis` (no {AGENT_BIN})"
    for program in (vendor, "node"):
        if not (AGENT_BIN / program).exists():
            return (f"agent CLI {program} not installed: run `make agent-clis` "
                    f"(no {AGENT_BIN / program})")
    return None


@functools.cache
def sandbox_refused() -> str | None:
    """Why the sandbox (new network and mount namespaces) cannot be made here, or None."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "no sandbox: the `unshare` command (util-linux) is missing"
    try:
        tried = subprocess.run([unshare, "-n", "-m", "true"], capture_output=True, text=True,
                               timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no sandbox: `unshare -n -m true` failed: {exc}"
    if tried.returncode != 0:
        said = tried.stderr.strip().splitlines()
        return ("no sandbox: `unshare -n -m` (an empty network namespace) is not permitted "
                "here" + (f" ({said[-1]})" if said else ""))
    return None


def over_unix_socket(dsn: str) -> bool:
    """Whether ``dsn`` reaches its server through a UNIX socket (which, unlike TCP to
    127.0.0.1, works from inside another network namespace)."""
    params = conninfo_to_dict(dsn)
    if params.get("hostaddr"):
        return False
    hosts = [h for h in str(params.get("host") or "").split(",") if h]
    return all(h.startswith("/") or h.startswith("@") for h in hosts)


@dataclass
class Record:
    """Every request the fakes received, by vendor in order, as JSON lines recorded them,
    and every host name looked up in the sandbox."""

    entries: list[dict[str, Any]]
    names: list[str]

    @classmethod
    def read(cls, folder: Path) -> Record:
        entries = []
        for vendor in APIS:
            path = folder / f"{vendor}.jsonl"
            if path.exists():
                entries += [json.loads(line) for line in path.read_text().splitlines()]
        looked_up = folder / "names.jsonl"
        names = sorted({json.loads(line)["name"] for line in looked_up.read_text().splitlines()}
                       ) if looked_up.exists() else []
        return cls(entries, names)

    def conversation(self, job: str, on_pass: int | None = None) -> list[dict[str, Any]]:
        """The requests of ``job``'s conversations (of one pass), in order."""
        return [e for e in self.entries if e.get("role") == "conversation"
                and e.get("job") == job and (on_pass is None or e.get("on_pass") == on_pass)]

    def vendors(self, job: str) -> set[str]:
        return {e["vendor"] for e in self.conversation(job)}

    def results(self, job: str, on_pass: int = 1) -> list[ToolResult]:
        """The tool results the CLI sent back, as the last request of the pass's last
        attempt carries them (each request carries the whole conversation)."""
        requests = self.conversation(job, on_pass)
        if not requests:
            return []
        last = requests[-1]
        return [r for r in APIS[last["vendor"]].results(last["body"])
                if not r.call_id.startswith(WAIT)]

    def waits(self, job: str) -> int:
        """How many turns the fake spent waiting for the striatum MCP server's tools (see
        ``fakes.openai.WAIT``), in the job's last request."""
        requests = self.conversation(job)
        if not requests:
            return 0
        last = requests[-1]
        return sum(1 for r in APIS[last["vendor"]].results(last["body"])
                   if r.call_id.startswith(WAIT))

    def prompt(self, job: str, on_pass: int = 1) -> str:
        """The job's prompt, as the CLI sent it (the text that holds the contract)."""
        for entry in self.conversation(job, on_pass):
            found = find_prompt(entry["body"])
            if found is not None:
                return found[0]
        return ""

    def errors(self) -> list[str]:
        """Every request the fakes could not serve as scripted."""
        return [f"{e['vendor']} {e['method']} {e['path']}: {e['error']}"
                for e in self.entries if e.get("error")]


@dataclass
class Outcome:
    """A worked run, as the record holds it, and what the fakes received."""

    run_id: str
    view: RunView
    events: list[dict[str, Any]]
    record: Record
    exit_code: int | None
    seconds: float
    output: str  # the sandboxed command's stdout and stderr

    @property
    def status(self) -> str:
        return self.view.run.status

    @property
    def repo(self) -> Path:
        return Path(self.view.run.repo_path)

    def job(self, job_id: str) -> JobRow:
        return next(j for j in self.view.jobs if j.job_id == job_id)

    def explain(self) -> str:
        """What to read when an assertion fails."""
        jobs = ", ".join(f"{j.job_id}={j.status}" + (f" ({j.reason})" if j.reason else "")
                         for j in self.view.jobs)
        said = []
        for job in sorted({str(e["job"]) for e in self.record.entries if e.get("job")}):
            passes = sorted({int(e["on_pass"]) for e in self.record.conversation(job)})
            said += [f"  {job} pass {p}: {r.tool} -> {r.output[:300]!r}"
                     + (" (error)" if r.error else "")
                     for p in passes for r in self.record.results(job, p)]
        return (f"run {self.run_id} {self.status} in {self.seconds:.1f}s (exit "
                f"{self.exit_code}); jobs: {jobs}; fake errors: {self.record.errors()}\n"
                "tool results:\n" + "\n".join(said) + "\n" + self.output[-3000:])

    def of(self, *types: str, job: str | None = None) -> list[dict[str, Any]]:
        """The run's events of these types (of one job)."""
        return [e for e in self.events if e["type"] in types and (job is None or e["job"] == job)]


# Where the CLIs' homes go: a folder of the checkout (ignored by git, removed at the
# session's end), not /tmp.
HOMES = REPO_ROOT / ".agent-homes"


def _homes() -> Path:
    HOMES.mkdir(exist_ok=True)
    return HOMES


@dataclass
class Ran:
    """A command run in the sandbox: how it ended, what it printed, what the fakes
    received, and the home it ran with."""

    exit_code: int | None
    seconds: float
    stdout: str
    stderr: str
    record: Record
    home: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Bench:
    """Runs of one test: its database, repository, homes and records."""

    def __init__(self, dsn: str, root: Path, repo: Path) -> None:
        self.dsn = dsn
        self.root = root
        self.repo = repo
        self.store = Store.connect(dsn)
        self._worked = 0

    def close(self) -> None:
        self.store.close()

    def prepare(self, workflow: Path, lanes: dict[str, dict[str, Any]],
                variables: dict[str, str] | None = None) -> str:
        """Prepare a run of ``workflow`` with ``lanes`` in place of its own."""
        return runs.prepare(self.store, str(workflow), str(self.repo),
                            overrides=variables or {}, lanes=lanes)

    def work(self, run_id: str, script: Script, timeout: float = 300,
             meanwhile: Callable[[Callable[[], bool]], None] | None = None) -> Outcome:
        """Start the run and work it to its end inside the sandbox, with the fakes following
        ``script``. ``meanwhile`` is called while the sandbox works, with a function that
        says whether it still does: a test acts there as a human would (a checkpoint's
        decision, an operator's job), from outside the sandbox."""
        ran = self.sandboxed([str(STRIATUM), "--repo", str(self.repo), "run", "start", run_id,
                              "--wait"], script, timeout,
                             {"STRIATUM_ACTOR": "conformance-worker"}, meanwhile=meanwhile)
        return Outcome(run_id, runs.status(self.store, run_id),
                       list(runs.all_events(self.store, run_id)), ran.record, ran.exit_code,
                       ran.seconds, ran.output)

    def sandboxed(self, command: list[str], script: Script, timeout: float = 300,
                  env: dict[str, str] | None = None, stdin: str | None = None,
                  cwd: Path | None = None,
                  meanwhile: Callable[[Callable[[], bool]], None] | None = None,
                  home_files: dict[str, str] | None = None) -> Ran:
        """Run ``command`` (in the repository, with ``stdin`` on its standard input) to its
        end inside the sandbox, the fakes following ``script``; ``meanwhile`` as for
        ``work``; ``home_files`` (a path in the home: its text) are there before it starts,
        as a user's own would be."""
        self._worked += 1
        place = self.root / f"sandbox-{self._worked}"
        place.mkdir(parents=True)
        # The CLIs' home lies outside /tmp: codex will not put the helper its sandbox
        # execs (codex-linux-sandbox, run by bwrap) in a folder under /tmp.
        home = Path(tempfile.mkdtemp(prefix="home-", dir=_homes()))
        for name, text in (home_files or {}).items():
            (home / name).parent.mkdir(parents=True, exist_ok=True)
            (home / name).write_text(text)
        given = {"PATH": f"{AGENT_BIN}:{STRIATUM.parent}:{SYSTEM_PATH}", "LANG": "C.UTF-8",
                 "STRIATUM_DSN": self.dsn, **(env or {})}
        if os.environ.get("STRIATUM_HOME"):
            given["STRIATUM_HOME"] = os.environ["STRIATUM_HOME"]
        spec = {"script": script.to_json(), "records": str(place / "records"),
                "home": str(home), "cwd": str(cwd or self.repo), "env": given,
                "command": command, "timeout": timeout, "stdout": str(place / "stdout"),
                "stderr": str(place / "stderr"), "result": str(place / "result.json")}
        if stdin is not None:
            (place / "stdin").write_text(stdin)
            spec["stdin"] = str(place / "stdin")
        (place / "spec.json").write_text(json.dumps(spec))
        unshare = shutil.which("unshare") or "unshare"
        with subprocess.Popen(
                [unshare, "-n", "-m", sys.executable, "-m", "tests.agents.sandbox",
                 str(place / "spec.json")], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True,
                env={"PATH": given["PATH"], "LANG": "C.UTF-8"}) as entered:
            try:
                if meanwhile is not None:
                    meanwhile(lambda: entered.poll() is None)
                _, said = entered.communicate(timeout=timeout + 60)
            except BaseException:
                entered.kill()
                raise
        assert entered.returncode == 0, f"the sandbox failed: {said[-3000:]}"
        result = json.loads((place / "result.json").read_text())
        return Ran(result.get("exit_code"), float(result["seconds"]),
                   (place / "stdout").read_text(errors="replace"),
                   (place / "stderr").read_text(errors="replace"),
                   Record.read(place / "records"), home)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The installed ``striatum`` run from the test, outside the sandbox (as a human
        at the terminal would), on this bench's database and repository."""
        env = {"PATH": f"{STRIATUM.parent}:{SYSTEM_PATH}", "LANG": "C.UTF-8",
               "STRIATUM_DSN": self.dsn, "STRIATUM_ACTOR": "conformance-human"}
        if os.environ.get("STRIATUM_HOME"):
            env["STRIATUM_HOME"] = os.environ["STRIATUM_HOME"]
        done = subprocess.run([str(STRIATUM), "--repo", str(self.repo), *args],
                              capture_output=True, text=True, timeout=120, env=env)
        assert not check or done.returncode == 0, \
            f"striatum {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}"
        return done

    def verdicts(self, outcome: Outcome) -> list[tuple[str, int, str, str]]:
        """Every verdict of the run, as the verdicts table holds them: (job, iteration,
        verdict, reason), in order."""
        rows = self.store._conn.execute(
            "SELECT job_id, iteration, verdict, reason FROM striatum.verdicts "
            "WHERE run_id = %s ORDER BY created_at, iteration", (outcome.run_id,)).fetchall()
        return [(str(j), int(i), str(v), str(r)) for j, i, v, r in rows]

    def artifacts(self, outcome: Outcome, job: str, iteration: int = 0) -> dict[str, str]:
        """The artifacts ``job`` published in ``iteration``: path -> text, each checked
        against the sha256 and size the record holds."""
        return self.published(outcome.run_id, job, iteration)

    def status(self, run_id: str) -> RunView:
        return runs.status(self.store, run_id)

    def events(self, run_id: str) -> list[dict[str, Any]]:
        return list(runs.all_events(self.store, run_id))

    def audited(self, actor: str) -> list[tuple[str, str]]:
        """The audit rows of ``actor``, in order: (verb, outcome)."""
        rows = self.store._conn.execute(
            "SELECT verb, outcome FROM striatum.audit_log WHERE actor = %s ORDER BY seq",
            (actor,)).fetchall()
        return [(str(v), str(o)) for v, o in rows]

    def published(self, run_id: str, job: str, iteration: int = 0) -> dict[str, str]:
        """The artifacts ``job`` published in ``iteration``: path -> text, each checked
        against the sha256 and size the record holds."""
        repo = Path(self.status(run_id).run.repo_path)
        found = {}
        for path, stored_at, sha256, size in self.store.execute(
                "job_artifacts", {"run": run_id, "job": job, "iteration": iteration}):
            data = (repo / stored_at).read_bytes()
            assert hashlib.sha256(data).hexdigest() == sha256, f"{stored_at} was changed"
            assert len(data) == size, stored_at
            found[path] = data.decode("utf-8", "replace")
        return found


def adopt(dsn: str, repo: Path, profile: str) -> str:
    """``striatum adopt --profile PROFILE`` in ``repo``, the installed command as a user runs
    it (outside the sandbox: it registers the repository); what it printed."""
    done = subprocess.run([str(STRIATUM), "--repo", str(repo), "adopt", "--profile", profile],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": SYSTEM_PATH, "LANG": "C.UTF-8", "STRIATUM_DSN": dsn,
                               "HOME": str(repo.parent)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def mcp_failed(vendor: str, result: ToolResult) -> bool:
    """Whether the CLI told its model the call failed (codex's ``exec`` program ran, and
    printed the MCP result, whose ``isError`` says it)."""
    if vendor == "codex":
        return not result.error and '"isError":true' in result.output
    return result.error


def mcp_document(output: str) -> dict[str, Any]:
    """The JSON document a tool result carries (codex: its program printed the whole
    MCP result, whose structuredContent is the document)."""
    start = output.index("{")
    found, _ = json.JSONDecoder().raw_decode(output, start)
    assert isinstance(found, dict)
    content = found.get("structuredContent")
    return content if isinstance(content, dict) else found


def refusals(results: Iterable[ToolResult]) -> list[ToolResult]:
    """The tool results that say the call was refused or failed."""
    words = ("requires approval", "permission", "not allowed", "denied", "haven't granted",
             "rejected", "blocked")
    return [r for r in results if r.error or any(w in r.output.lower() for w in words)]


def write_workflow(folder: Path, document: dict[str, Any]) -> Path:
    """``document`` as ``folder``/workflow.json."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "workflow.json"
    path.write_text(json.dumps(document, indent=2))
    return path


def verdict_said(data: dict[str, Any]) -> dict[str, Any]:
    """A verdict event's data without ``judged``, after checking that part's shape: the
    sha256 of each artifact the reviewer saw, and the tree it ran against (or null)."""
    said = dict(data)
    judged = said.pop("judged", None)
    if judged is not None:
        assert set(judged) <= {"artifacts", "tree", "tree_at_verdict"}, judged
        assert all(len(sha) == 64 and int(sha, 16) >= 0
                   for sha in judged.get("artifacts", {}).values()), judged
    return said
