"""``striatum corpus export``: the record of some runs as a bundle anyone can verify.

Everything is read in one ``REPEATABLE READ, READ ONLY`` transaction (the bundle is
one snapshot of the record, whatever workers append meanwhile) and streamed to the
files through a server-side cursor, so memory does not grow with the history. The
bundle is written into a fresh folder beside ``out`` and moved into place when it
is whole: an export that fails leaves the previous bundle, or nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..canonical import canonical_json, sha256_hex
from ..errors import NotFound, UsageError
from ..runtime.audit import repo_chain
from ..runtime.starts import START
from ..runtime.store import Store
from . import bundle
from .redact import Redactor
from .rules import rules_digest
from .statements import statement

BATCH = 2000


@dataclass
class Scope:
    kind: str  # run | repo | all
    runs: list[str]
    repos: list[int]
    run: str | None = None


@dataclass
class Exported:
    folder: Path
    manifest: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"bundle": str(self.folder), "scope": self.manifest["scope"],
                "sha256": sha256_hex(bundle.line(self.manifest)),
                "files": {f["path"]: f.get("lines", f["bytes"]) for f in self.manifest["files"]
                          if f["path"].endswith(".jsonl")},
                "artifacts": sum(1 for f in self.manifest["files"]
                                 if f["path"].startswith(bundle.ARTIFACTS_DIR + "/")),
                "redacted": self.manifest["redaction"]["counts"]}


def _scope(store: Store, run: str | None, repo: str | None) -> Scope:
    if run is not None:
        found = store.execute("corpus_run", {"run": run})
        if not found:
            raise NotFound(f"no run {run}", hint="`striatum run list` names the runs")
        return Scope("run", [str(found[0][0])], [int(found[0][1])], run=str(found[0][0]))
    repo_id: int | None = None
    if repo is not None:
        ids = store.execute("repo_id", {"path": os.path.realpath(repo)})
        if not ids:
            raise NotFound(f"no run was ever prepared in {repo}",
                           hint="pass --repo PATH of a repository with runs, or --all")
        repo_id = int(ids[0][0])
    rows = store.execute("corpus_all_runs", {"repo": repo_id})
    return Scope("repo" if repo_id is not None else "all", [str(r[0]) for r in rows],
                 sorted({int(r[1]) for r in rows} | ({repo_id} if repo_id else set())))


def _fresh_folder(out: Path) -> Path:
    """A new folder beside ``out`` (refusing to replace anything but a bundle)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir())
                                               and not (out / bundle.MANIFEST).exists())):
        raise UsageError(f"{out} exists and is not a bundle: refusing to replace it",
                         hint="name a new folder, or an earlier bundle to replace")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))


def export(store: Store, out: Path, *, run: str | None = None, repo: str | None = None,
           paths: bool = True, progress: Callable[[str], None] | None = None) -> Exported:
    """Export one run (``run``), the runs of one repository (``repo``), or every run;
    ``progress`` is told of each file as it is written."""
    folder = _fresh_folder(out)
    try:
        with store.snapshot("corpus_snapshot", "corpus_utc"):
            manifest = _write(store, folder, _scope(store, run, repo), paths, progress)
        if out.exists():
            shutil.rmtree(out)
        os.replace(folder, out)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return Exported(out, manifest)


class _Export:
    def __init__(self, store: Store, folder: Path, scope: Scope, paths: bool,
                 progress: Callable[[str], None] | None) -> None:
        self.store, self.folder, self.scope, self.progress = store, folder, scope, progress
        self.repos = {int(i): str(p) for i, p in store.execute(
            "corpus_repos", {"repos": scope.repos})}
        self.redactors = {i: Redactor(os.path.realpath(p), paths) for i, p in self.repos.items()}
        self.plain = Redactor(None, paths)  # for what belongs to no one repository
        self.files: list[dict[str, Any]] = []
        self.chains: list[dict[str, Any]] = []
        self.run_repo: dict[str, int] = {}
        self.run_workflow: dict[str, str] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        # (run, job, fence) -> the data of that attempt's chained start
        self.starts: dict[tuple[str, str, Any], dict[str, Any]] = {}

    def redactor(self, repo_id: int | None) -> Redactor:
        return self.redactors.get(repo_id, self.plain) if repo_id is not None else self.plain

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for redactor in [self.plain, *self.redactors.values()]:
            for rule, n in redactor.counts.items():
                total[rule] = total.get(rule, 0) + n
        return dict(sorted(total.items()))

    def open(self, name: str) -> bundle.Writer:
        return bundle.Writer(self.folder, name)

    def close(self, writer: bundle.Writer) -> None:
        entry = writer.close()
        self.files.append(entry)
        if self.progress is not None and "lines" in entry:
            self.progress(f"{entry['path']}: {entry['lines']:,} lines")

    def rows(self, name: str, params: dict[str, Any]) -> Any:
        return self.store.stream(name, params, BATCH)

    # -- the files ----------------------------------------------------------------------

    def repos_file(self) -> None:
        out = self.open(bundle.REPOS)
        for repo_id, path in sorted(self.repos.items()):
            out.write({"id": repo_id, "chain": repo_chain(repo_id), "name": _name(path)})
        self.close(out)

    def workflows_file(self) -> None:
        out = self.open(bundle.WORKFLOWS)
        for digest, name, compiled in self.rows("corpus_workflows", {"runs": self.scope.runs}):
            redacted, found = self.plain.document(json.loads(compiled))
            # For the statements: the jobs and lanes, when the document has the compiled shape.
            inner = redacted.get("workflow") if isinstance(redacted, dict) else None
            self.workflows[digest] = inner if isinstance(inner, dict) else {}
            doc: dict[str, Any] = {"digest": digest, "name": name}
            if found:
                doc["redacted_compiled"] = canonical_json(redacted, verify=False).decode()
                doc["redactions"] = found
            else:
                doc["compiled"] = compiled
            out.write(doc)
        self.close(out)

    def _rows_file(self, name: str, query: str, repo_of: Any) -> None:
        out = self.open(name)
        for (text,) in self.rows(query, {"runs": self.scope.runs}):
            row = json.loads(text)
            redacted, found = self.redactor(repo_of(row)).document(row)
            if found:
                redacted["redactions"] = found
            out.write(redacted)
        self.close(out)

    def runs_file(self) -> None:
        def repo_of(row: dict[str, Any]) -> int:
            self.run_repo[row["id"]] = int(row["repo_id"])
            self.run_workflow[row["id"]] = str(row["workflow_digest"])
            return int(row["repo_id"])

        self._rows_file(bundle.RUNS, "corpus_runs", repo_of)

    def jobs_file(self) -> None:
        self._rows_file(bundle.JOBS, "corpus_jobs",
                        lambda row: self.run_repo.get(row["run_id"]))

    def events_file(self) -> tuple[Any, Any]:
        out = self.open(bundle.EVENTS)
        since = until = None
        spans = self.store.execute("corpus_event_spans", {"runs": self.scope.runs})
        for repo_id, first, last, earliest, latest in spans:
            since = earliest if since is None else min(since, earliest)
            until = latest if until is None else max(until, latest)
            segment = _Segment(out, repo_chain(int(repo_id)), int(first), int(last),
                               self.redactor(int(repo_id)))
            for seq, run_id, job_id, kind, payload, previous, row_hash, included in self.rows(
                    "corpus_events", {"repo": repo_id, "first": first, "last": last,
                                      "runs": self.scope.runs}):
                # Another run's event is carried as its link alone, not its content.
                written = segment.add(seq, previous, row_hash, payload if included else None,
                                      {"run": run_id, "job": job_id, "type": kind})
                if kind == START and written is not None:
                    self._started(written)
            self.chains.append(segment.summary)
        self.close(out)
        return since, until

    def _started(self, payload: dict[str, Any]) -> None:
        """Keep who ran an attempt (as the bundle carries it, redacted) for the statements."""
        state, data = payload.get("state"), payload.get("data")
        if isinstance(state, dict) and isinstance(data, dict):
            self.starts[(str(payload.get("run")), str(payload.get("job")),
                         state.get("fence"))] = data

    def audit_file(self, since: Any, until: Any) -> None:
        out = self.open(bundle.AUDIT)
        if self.scope.kind == "all" or since is not None:
            bounds = {"since": None, "until": None} if self.scope.kind == "all" else {
                "since": since, "until": until}
            first, last = self.store.execute("corpus_audit_span", bounds)[0]
            if first is not None:
                segment = _Segment(out, bundle.AUDIT_CHAIN, int(first), int(last), self.plain)
                for seq, payload, previous, row_hash in self.rows(
                        "corpus_audit", {"first": first, "last": last}):
                    segment.add(seq, previous, row_hash, payload, {})
                self.chains.append(segment.summary)
        self.close(out)

    def verdicts_file(self) -> list[dict[str, Any]]:
        out = self.open(bundle.VERDICTS)
        kept = []
        for run_id, job_id, iteration, verdict, reason, fence, judged in self.rows(
                "corpus_verdicts", {"runs": self.scope.runs}):
            row = {"run_id": run_id, "job_id": job_id, "iteration": iteration,
                   "verdict": verdict, "reason": reason, "fence": fence}
            if judged is not None:  # verdicts recorded before digests keep their old line
                row["judged"] = json.loads(judged)
            redacted, found = self.redactor(self.run_repo.get(run_id)).document(row)
            if found:
                redacted["redactions"] = found
            out.write(redacted)
            kept.append(redacted)
        self.close(out)
        return kept

    def artifacts_file(self) -> list[dict[str, Any]]:
        out = self.open(bundle.ARTIFACTS)
        kept = []
        for run_id, job_id, iteration, path, stored_at, sha256, size, fence, repo_path in list(
                self.rows("corpus_artifacts", {"runs": self.scope.runs})):
            doc: dict[str, Any] = {"run_id": run_id, "job_id": job_id, "iteration": iteration,
                                   "path": path, "sha256": sha256, "bytes": size,
                                   "fence": fence}
            doc.update(self._artifact_file(run_id, job_id, iteration, path,
                                           Path(repo_path) / stored_at, sha256))
            out.write(doc)
            kept.append(doc)
        self.close(out)
        return kept

    def _artifact_file(self, run_id: str, job_id: str, iteration: int, path: str,
                       source: Path, sha256: str) -> dict[str, Any]:
        try:
            data = source.read_bytes()
        except OSError:
            return {"file": None, "missing": "not on disk"}
        if sha256_hex(data) != sha256:
            return {"file": None, "missing": f"edited since it was published (now sha256 "
                                             f"{sha256_hex(data)})"}
        name = f"{bundle.ARTIFACTS_DIR}/{run_id}/{job_id}/i{iteration}/{path}"
        target = (self.folder / name).resolve()
        if not target.is_relative_to(self.folder.resolve()):
            return {"file": None, "missing": "its name leaves the bundle"}
        redacted, rules = self.redactor(self.run_repo.get(run_id)).data(data)
        writer = self.open(name)
        writer.raw(redacted)
        self.close(writer)
        doc: dict[str, Any] = {"file": name, "file_sha256": sha256_hex(redacted)}
        if rules:
            doc["redactions"] = rules
        return doc

    def statements_file(self, verdicts: list[dict[str, Any]],
                        artifacts: list[dict[str, Any]]) -> None:
        out = self.open(bundle.STATEMENTS)
        for verdict in verdicts:
            if verdict["verdict"] != "accept":
                continue
            workflow = self.workflows.get(self.run_workflow.get(verdict["run_id"], ""), {})
            job = next((j for j in workflow.get("jobs", [])
                        if j.get("id") == verdict["job_id"]), None)
            lane = workflow.get("lanes", {}).get((job or {}).get("lane"))
            found = statement(verdict, artifacts, job, lane, self.starts.get(
                (verdict["run_id"], verdict["job_id"], verdict["fence"])))
            if found is not None:
                out.write(found)
        self.close(out)


def _name(path: str) -> str:
    """A repository as a bundle names it: its folder's name, never its path."""
    return os.path.basename(path.rstrip("/")) or path


class _Segment:
    """One chain's rows from ``first`` to ``last``, written as they stream, and its
    summary for bundle.json (where it starts and ends, how many rows of each kind)."""

    def __init__(self, out: bundle.Writer, chain: str, first: int, last: int,
                 redactor: Redactor) -> None:
        self.out, self.chain, self.first, self.redactor = out, chain, first, redactor
        self.summary: dict[str, Any] = {"chain": chain, "first_seq": first, "last_seq": last,
                                        "events": 0, "elided": 0, "redacted": 0}

    def add(self, seq: int, previous: str, row_hash: str, payload: str | None,
            columns: dict[str, Any]) -> dict[str, Any] | None:
        """Write one row; the payload as the bundle carries it (redacted), if any."""
        if seq == self.first:
            self.summary["previous_hash"] = previous
        doc: dict[str, Any] = {"chain": self.chain, "seq": seq, "previous_hash": previous,
                               "row_hash": row_hash}
        redacted: dict[str, Any] | None = None
        if payload is None:
            doc["elided"] = True
            self.summary["elided"] += 1
        else:
            doc.update(columns)
            redacted, found = self.redactor.document(json.loads(payload))
            if found:
                doc["redacted_payload"] = canonical_json(redacted, verify=False).decode()
                doc["redactions"] = found
                self.summary["redacted"] += 1
            else:
                doc["payload"] = payload
        self.summary["events"] += 1
        self.summary["last_hash"] = row_hash
        self.out.write(doc)
        return redacted


def _write(store: Store, folder: Path, scope: Scope, paths: bool,
           progress: Callable[[str], None] | None) -> dict[str, Any]:
    work = _Export(store, folder, scope, paths, progress)
    work.repos_file()
    work.workflows_file()
    work.runs_file()
    work.jobs_file()
    since, until = work.events_file()
    work.audit_file(since, until)
    verdicts = work.verdicts_file()
    artifacts = work.artifacts_file()
    work.statements_file(verdicts, artifacts)
    identity = store.execute("database_identity")
    manifest: dict[str, Any] = {
        "format": bundle.FORMAT,
        "scope": {"kind": scope.kind, **({"run": scope.run} if scope.run else {}),
                  "repos": [_name(work.repos[i]) for i in sorted(work.repos)]},
        "database": str(identity[0][0]) if identity else None,
        "chains": work.chains,
        "redaction": {"rules": rules_digest(), "paths": paths, "counts": work.counts()},
        "files": sorted(work.files, key=lambda f: f["path"]),
    }
    (folder / bundle.MANIFEST).write_bytes(bundle.line(manifest))
    return manifest
