"""``striatum corpus verify``: check a bundle with no database, or name the first thing
that does not match (file, line, what).

What it recomputes, file by file (docs/provenance.md says what this proves):

- every file ``bundle.json`` lists is there, no other file is, and each one's sha256,
  size and line count are the listed ones (after its lines are checked, so an edited
  line is named by its line rather than by its file's digest);
- each chain segment runs seq by seq without a gap from the seq and the hash it
  starts after, each row's ``previous_hash`` is the row before's ``row_hash``, and
  each row carrying its ``payload`` hashes to its ``row_hash``; a redacted row keeps
  its place in the chain (its successor names its hash) but its text cannot be
  rehashed; an elided row (another run's) is a link only;
- each payload names the run, job and type its row says; the runs' and jobs' rows
  hold the state of their last event; a workflow carried whole hashes to its digest;
- each verdict is recorded by a chained event of its reviewer (same reason, same
  fence); each artifact's sha256 is the one its last chained ``artifact.publish`` event
  recorded, and a file carried unredacted still has it; each statement's subjects
  are artifacts of its run with those digests, and a reviewer it says comes from
  its attempt (``"from": "attempt"``) is the lane, executable and model that
  attempt's chained ``attempt.start`` records.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BundleInvalid, NotFound, UsageError
from ..runtime.audit import GENESIS, row_hash
from ..runtime.records import REPLAYED_JOB_COLUMNS, REPLAYED_RUN_COLUMNS
from ..runtime.starts import START
from . import bundle

Key = tuple[str, str, int, str]


@dataclass
class Verified:
    folder: Path
    recomputed: int = 0  # rows whose hash was recomputed from their payload
    redacted: int = 0  # rows whose place in the chain was checked, not their text
    elided: int = 0  # other runs' rows: links only
    files: int = 0
    artifacts: int = 0
    statements: int = 0
    anchors: int = 0  # chain heads of run manifests found in the bundle with their hashes
    sha256: str = ""  # of bundle.json, which lists every other file's: the bundle's digest
    chains: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"ok": True, "bundle": str(self.folder), "sha256": self.sha256,
                "chains": self.chains,
                "rows_recomputed": self.recomputed, "rows_redacted": self.redacted,
                "rows_elided": self.elided, "files": self.files,
                "artifacts": self.artifacts, "statements": self.statements,
                "anchors": self.anchors}


def fail(file: str, line: int | None, what: str) -> BundleInvalid:
    where = f"{file}:{line}" if line is not None else file
    return BundleInvalid(f"{where}: {what}", hint="the bundle was changed after it was "
                         "exported, or was not written whole: export it again from the "
                         "database that holds the record", file=file, line=line, what=what)


def _anchors(manifests: Sequence[Path]) -> dict[tuple[str, int], tuple[str, str]]:
    """(chain, seq) -> (hash, manifest) for every chain head the run manifests name."""
    wanted: dict[tuple[str, int], tuple[str, str]] = {}
    for path in manifests:
        try:
            document = json.loads(path.read_bytes())
            heads = [(f"repo:{int(document['chain']['repo_id'])}", document["chain"])]
            if isinstance(document.get("audit"), dict):
                heads.append((bundle.AUDIT_CHAIN, document["audit"]))
            for chain, head in heads:
                wanted[(chain, int(head["seq"]))] = (str(head["hash"]), str(path))
        except FileNotFoundError:
            raise NotFound(f"no manifest {path}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{path} is not a run manifest ({exc})",
                             hint="pass the manifest.json of a run's artifact folder"
                             ) from None
    return wanted


class _Check:
    def __init__(self, folder: Path, anchors: Sequence[Path] = ()) -> None:
        self.folder = folder
        self.where: tuple[str, int | None] = (bundle.MANIFEST, None)  # what is being read
        self.wanted = _anchors(anchors)
        self.report = Verified(folder)
        self.manifest = self._manifest()
        self.listed: dict[str, dict[str, Any]] = {}
        files, chains = self.manifest.get("files"), self.manifest.get("chains")
        if not isinstance(files, list) or not all(isinstance(f, dict) for f in files) \
                or not isinstance(chains, list) or not all(
                    isinstance(c, dict) and isinstance(c.get("chain"), str)
                    and isinstance(c.get("first_seq"), int)
                    and isinstance(c.get("last_seq"), int) for c in chains):
            raise fail(bundle.MANIFEST, None, "its files or chains are not lists of the "
                                              "entries an export writes")
        for entry in files:
            path = str(entry.get("path", ""))
            if not path or path.startswith("/") or ".." in Path(path).parts:
                raise fail(bundle.MANIFEST, None, f"lists a file outside the bundle: {path!r}")
            self.listed[path] = entry
        self.publishes: dict[Key, tuple[int, str]] = {}
        # The replayed columns of each run's and job's last event, as tuples: the verifier
        # holds one per job, not one per event.
        self.run_state: dict[str, tuple[Any, ...]] = {}
        self.job_state: dict[tuple[str, str], tuple[Any, ...]] = {}
        self.digests: set[str] = set()
        self.artifacts: set[tuple[str, str, str]] = set()
        self.checked: set[str] = set()
        # (run, job, verdict, reason, fence) of every chained event that records a verdict
        self.verdicts: set[tuple[str, str, str, str, Any, str | None]] = set()
        # (run, job, fence) -> (lane, executable, model) each chained attempt start records
        self.starts: dict[tuple[str, str, Any], tuple[Any, Any, Any]] = {}

    def _manifest(self) -> dict[str, Any]:
        path = self.folder / bundle.MANIFEST
        if not path.is_file():
            raise NotFound(f"{self.folder} holds no {bundle.MANIFEST}: not a bundle",
                           hint="pass the folder `striatum corpus export -o DIR` wrote")
        data = path.read_bytes()
        self.report.sha256 = hashlib.sha256(data).hexdigest()
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise fail(bundle.MANIFEST, None, f"not JSON ({exc})") from exc
        if not isinstance(document, dict) or document.get("format") != bundle.FORMAT:
            raise fail(bundle.MANIFEST, None, f"not a {bundle.FORMAT} bundle")
        return document

    def lines(self, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
        if name not in self.listed:
            raise fail(name, None, "not listed in bundle.json")
        path = self.folder / name
        if not path.is_file():
            raise fail(name, None, "listed in bundle.json but missing")
        with open(path, "rb") as reader:
            for number, raw in enumerate(reader, 1):
                try:
                    document = json.loads(raw)
                except ValueError:
                    raise fail(name, number, "not a JSON line") from None
                if not isinstance(document, dict):
                    raise fail(name, number, "not a JSON object")
                self.where = (name, number)
                yield number, document

    def digest(self, name: str) -> str:
        """Check a file against its listing; its sha256."""
        entry = self.listed.get(name)
        path = self.folder / name
        if entry is None:
            raise fail(name, None, "not listed in bundle.json")
        if not path.is_file():
            raise fail(name, None, "listed in bundle.json but missing")
        digest, size, count = hashlib.sha256(), 0, 0
        with open(path, "rb") as reader:
            while chunk := reader.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
                count += chunk.count(b"\n")
        found = digest.hexdigest()
        if found != entry.get("sha256"):
            raise fail(name, None, f"sha256 {found} is not the {entry.get('sha256')} "
                                   "bundle.json lists")
        if size != entry.get("bytes") or ("lines" in entry and count != entry["lines"]):
            raise fail(name, None, "size or line count is not the one bundle.json lists")
        if name not in self.checked:
            self.checked.add(name)
            self.report.files += 1
        return found

    # -- the chains ---------------------------------------------------------------------

    def chains(self, name: str, audit: bool) -> None:
        segments = [s for s in self.manifest.get("chains", [])
                    if (s.get("chain") == bundle.AUDIT_CHAIN) == audit]
        it = self.lines(name)
        for segment in segments:
            self.segment(name, it, segment)
        for number, document in it:
            raise fail(name, number, f"a row after the last segment bundle.json lists "
                                     f"(chain {document.get('chain')!r})")
        self.digest(name)

    def segment(self, name: str, it: Iterator[tuple[int, dict[str, Any]]],
                segment: dict[str, Any]) -> None:
        chain, first, last = segment["chain"], int(segment["first_seq"]), int(segment["last_seq"])
        previous = str(segment.get("previous_hash", GENESIS))
        for seq in range(first, last + 1):
            found = next(it, None)
            if found is None:
                raise fail(name, None, f"{chain}: ends before seq {seq} (rows removed; "
                                       f"bundle.json lists {first}..{last})")
            number, row = found
            if row.get("chain") != chain or row.get("seq") != seq:
                raise fail(name, number, f"{row.get('chain')} seq {row.get('seq')} where "
                                         f"{chain} seq {seq} was expected (a row removed, "
                                         "inserted or moved)")
            if row.get("previous_hash") != previous:
                raise fail(name, number, f"{chain} seq {seq}: previous_hash does not match "
                                         "the row before (rows removed, moved or forged)")
            self.row(name, number, chain, row)
            previous = str(row.get("row_hash"))
            anchor = self.wanted.pop((chain, seq), None)
            if anchor is not None:
                if anchor[0] != previous:
                    raise fail(name, number, f"{chain} seq {seq}: row_hash is not the "
                                             f"{anchor[0]} that {anchor[1]} anchored")
                self.report.anchors += 1
        if previous != segment.get("last_hash", previous):
            raise fail(name, None, f"{chain}: the last row's hash is not the one bundle.json "
                                   "lists")
        self.report.chains.append(chain)

    def row(self, name: str, number: int, chain: str, row: dict[str, Any]) -> None:
        seq = row["seq"]
        if row.get("elided"):
            self.report.elided += 1
            return
        if "payload" in row:
            if row_hash(str(row["previous_hash"]), str(row["payload"])) != row.get("row_hash"):
                raise fail(name, number, f"{chain} seq {seq}: row_hash does not match its "
                                         "payload (the row was edited)")
            text, self.report.recomputed = row["payload"], self.report.recomputed + 1
        elif "redacted_payload" in row:
            text, self.report.redacted = row["redacted_payload"], self.report.redacted + 1
        else:
            raise fail(name, number, f"{chain} seq {seq}: neither payload nor redacted payload")
        try:
            payload = json.loads(text)
        except ValueError:
            raise fail(name, number, f"{chain} seq {seq}: payload is not JSON") from None
        if chain != bundle.AUDIT_CHAIN:
            self.event(name, number, chain, row, payload)

    def event(self, name: str, number: int, chain: str, row: dict[str, Any],
              payload: dict[str, Any]) -> None:
        for column in ("run", "job", "type"):
            if payload.get(column) != row.get(column):
                raise fail(name, number, f"{chain} seq {row['seq']}: {column} "
                                         f"{row.get(column)!r} is not the payload's "
                                         f"{payload.get(column)!r}")
        run, job, state = payload.get("run"), payload.get("job"), payload.get("state")
        if run is not None and isinstance(state, dict):
            if job is None:
                self.run_state[run] = tuple(state.get(c) for c in REPLAYED_RUN_COLUMNS)
            else:
                self.job_state[(run, job)] = tuple(state.get(c) for c in REPLAYED_JOB_COLUMNS)
        data = payload.get("data") or {}
        if isinstance(data, dict) and isinstance(state, dict):
            # A verdict is chained on the reviewer's own event: its ending (accept, reject,
            # an exhausted loop), or the reset a revision gives it (needs_revision).
            verdict = data.get("verdict") or ("needs_revision" if data.get("by") == job
                                              and payload.get("type") == "job.reset" else None)
            if verdict is not None:
                self.verdicts.add((str(run), str(job), str(verdict), str(data.get("reason")),
                                   state.get("fence"), _judged(data.get("judged"))))
        if payload.get("type") == START and isinstance(data, dict) and isinstance(state, dict):
            self.starts[(str(run), str(job), state.get("fence"))] = (
                data.get("lane"), data.get("executable"), data.get("model"))
        if payload.get("type") == "artifact.publish" and isinstance(data, dict):
            key = (str(run), str(job), int(data.get("iteration", -1)), str(data.get("path")))
            self.publishes[key] = (number, str(data.get("sha256")))

    # -- the rows -----------------------------------------------------------------------

    def workflows(self) -> None:
        for number, row in self.lines(bundle.WORKFLOWS):
            if "compiled" in row and hashlib.sha256(
                    str(row["compiled"]).encode("utf-8")).hexdigest() != row.get("digest"):
                raise fail(bundle.WORKFLOWS, number, f"workflow {row.get('name')!r}: its text "
                                                     "does not hash to its digest")
            self.digests.add(str(row.get("digest")))
        self.digest(bundle.WORKFLOWS)

    def runs(self) -> None:
        for number, row in self.lines(bundle.RUNS):
            if row.get("workflow_digest") not in self.digests:
                raise fail(bundle.RUNS, number, f"run {row.get('id')}: its workflow "
                                                f"{row.get('workflow_digest')} is not in "
                                                f"{bundle.WORKFLOWS}")
            self.projection(bundle.RUNS, number, f"run {row.get('id')}", row,
                            self.run_state.get(str(row.get("id"))), REPLAYED_RUN_COLUMNS)
        self.digest(bundle.RUNS)

    def jobs(self) -> None:
        for number, row in self.lines(bundle.JOBS):
            key = (str(row.get("run_id")), str(row.get("job_id")))
            self.projection(bundle.JOBS, number, f"job {key[1]} of run {key[0]}", row,
                            self.job_state.get(key), REPLAYED_JOB_COLUMNS)
        self.digest(bundle.JOBS)

    def projection(self, name: str, number: int, what: str, row: dict[str, Any],
                   state: tuple[Any, ...] | None, columns: tuple[str, ...]) -> None:
        if state is None:
            raise fail(name, number, f"{what}: no event of it in {bundle.EVENTS}")
        for column, value in zip(columns, state, strict=True):
            if row.get(column) != value:
                raise fail(name, number, f"{what}: {column} {row.get(column)!r} is not "
                                         f"{value!r}, what its last event says")

    def verdicts_file(self) -> None:
        for number, row in self.lines(bundle.VERDICTS):
            key = (str(row.get("run_id")), str(row.get("job_id")), str(row.get("verdict")),
                   str(row.get("reason")), row.get("fence"), _judged(row.get("judged")))
            if key not in self.verdicts:
                raise fail(bundle.VERDICTS, number, f"verdict {key[2]} of {key[1]} (fence "
                                                    f"{key[4]}) is in no chained event with "
                                                    "that reason and those digests")
        self.digest(bundle.VERDICTS)

    def artifacts_file(self) -> None:
        for number, row in self.lines(bundle.ARTIFACTS):
            key = (str(row.get("run_id")), str(row.get("job_id")), int(row.get("iteration", -1)),
                   str(row.get("path")))
            chained = self.publishes.get(key)
            if chained is None:
                raise fail(bundle.ARTIFACTS, number, f"artifact {key[3]} of {key[1]} "
                                                     f"(iteration {key[2]}): no chained "
                                                     "artifact.publish event records it")
            if chained[1] != row.get("sha256"):
                raise fail(bundle.ARTIFACTS, number, f"artifact {key[3]} of {key[1]}: sha256 "
                                                     f"{row.get('sha256')} is not the "
                                                     f"{chained[1]} its artifact.publish event "
                                                     f"({bundle.EVENTS}:{chained[0]}) chained")
            self.artifacts.add((key[0], key[3], str(row["sha256"])))
            if row.get("file"):
                found = self.digest(str(row["file"]))
                if found != row.get("file_sha256"):
                    raise fail(bundle.ARTIFACTS, number, f"artifact {key[3]}: the file holds "
                                                         f"sha256 {found}, not "
                                                         f"{row.get('file_sha256')}")
                if not row.get("redactions") and found != row.get("sha256"):
                    raise fail(bundle.ARTIFACTS, number, f"artifact {key[3]}: the file is said "
                                                         "unredacted but is not what was "
                                                         "published")
                self.report.artifacts += 1
        self.digest(bundle.ARTIFACTS)

    def statements(self) -> None:
        for number, row in self.lines(bundle.STATEMENTS):
            run = str((row.get("predicate") or {}).get("run"))
            for subject in row.get("subject") or []:
                sha = str((subject.get("digest") or {}).get("sha256"))
                if (run, str(subject.get("name")), sha) not in self.artifacts:
                    raise fail(bundle.STATEMENTS, number, f"subject {subject.get('name')} "
                                                          f"sha256 {sha} is no artifact of run "
                                                          f"{run}")
            self._reviewer(number, row.get("predicate") or {})
            self.report.statements += 1
        self.digest(bundle.STATEMENTS)

    def _reviewer(self, number: int, predicate: dict[str, Any]) -> None:
        """A reviewer said to come from its attempt is what that attempt's start chained."""
        reviewer = predicate.get("reviewer")
        if not isinstance(reviewer, dict) or reviewer.get("from") != "attempt":
            return
        key = (str(predicate.get("run")), str(predicate.get("job")), predicate.get("fence"))
        chained = self.starts.get(key)
        said = (reviewer.get("lane"), reviewer.get("executable"), reviewer.get("model"))
        if chained != said:
            raise fail(bundle.STATEMENTS, number,
                       f"reviewer {said} of {key[0]}/{key[1]} at fence {key[2]} is not what "
                       f"its chained {START} event records ({chained})")

    def unlisted(self) -> None:
        for root, _, names in os.walk(self.folder):
            for file_name in names:
                relative = Path(root, file_name).relative_to(self.folder).as_posix()
                if relative != bundle.MANIFEST and relative not in self.listed:
                    raise fail(relative, None, "not listed in bundle.json (a file was added)")
        for listed in self.listed:
            if not (self.folder / listed).is_file():
                raise fail(listed, None, "listed in bundle.json but missing")


def verify(folder: Path, anchors: Sequence[Path] = ()) -> Verified:
    """Verify the bundle in ``folder``; with ``anchors`` (run manifests), also that the
    chain heads they recorded are rows of the bundle with those hashes."""
    check = _Check(folder, anchors)
    try:
        return _verify(check)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # A field missing or of the wrong type: the bundle was not written by an export.
        raise fail(*check.where, f"malformed ({type(exc).__name__}: {exc})") from None


def _judged(found: Any) -> str | None:
    """What a verdict judged, as text to compare (None: recorded before digests were)."""
    return None if found is None else json.dumps(found, sort_keys=True)


def _verify(check: _Check) -> Verified:
    check.unlisted()
    check.digest(bundle.REPOS)
    check.workflows()
    check.chains(bundle.EVENTS, audit=False)
    check.chains(bundle.AUDIT, audit=True)
    for (chain, seq), (_, manifest) in sorted(check.wanted.items()):
        raise fail(bundle.EVENTS if chain != bundle.AUDIT_CHAIN else bundle.AUDIT, None,
                   f"holds no {chain} seq {seq}, the head {manifest} anchored")
    check.runs()
    check.jobs()
    check.verdicts_file()
    check.artifacts_file()
    check.statements()
    for path in check.listed:  # every file, an artifact no row names included
        if path not in check.checked:
            check.digest(path)
    return check.report
