"""``corpus export`` and ``corpus verify`` on a real PostgreSQL: runs of the examples,
exported, verified after the database is dropped; every kind of tampering with the
bundle named at its file and line; exports byte-identical when nothing changed;
secrets in a prompt, a log and a verdict redacted with the chain still verifying."""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from striatum.cli.main import run as cli
from striatum.corpus import bundle
from striatum.corpus.export import export
from striatum.corpus.verify import verify
from striatum.errors import EXIT_INVALID, BundleInvalid, UsageError
from striatum.runtime import leases, runs
from striatum.runtime.store import Store

from .helpers import ENDED, EXAMPLES, Agent, example, scripted, start_run, write_workflow

GITHUB = "ghp_" + "q7Rk2LmZ9vXc4TbN8sWd1FhJ6pYg3AeU0iOo"  # random, well-formed, not real
AWS = "AKIA" + "QX7RTZ2MNB4KDW5Y"
LOG_PASSWORD = "Zq8vN2rT5xLm"


@dataclass
class History:
    store: Store
    dsn: str
    repo: Path
    runs: list[str]


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def relist(folder: Path) -> None:
    """Make bundle.json list the files as they now are (a tamperer who does so too)."""
    manifest = json.loads((folder / bundle.MANIFEST).read_bytes())
    for entry in manifest["files"]:
        data = (folder / entry["path"]).read_bytes()
        entry.update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
        if "lines" in entry:
            entry["lines"] = data.count(b"\n")
    (folder / bundle.MANIFEST).write_bytes(bundle.line(manifest))


def edit_lines(path: Path, change: Any) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(change(lines)))


@pytest.fixture
def history(store: Store, dsn: str, repo: Path, tmp_path: Path) -> History:
    """Three runs of the examples, one with a revision, and one prepared between another's
    events (so an export of one run carries another's rows as links)."""
    work = tmp_path / "work"
    work.mkdir()
    first = start_run(store, example("code-change"), repo)
    second = runs.prepare(store, example("review"), str(repo), overrides={})
    Agent(store, first, work, verdict=scripted({"check": ["needs_revision"]})).drive()
    runs.start(store, second)
    Agent(store, second, work).drive()
    third = start_run(store, example("minimal"), repo)
    Agent(store, third, work).drive()
    return History(store, dsn, repo, [first, second, third])


def drop(admin: str, dsn: str, store: Store) -> None:
    store.close()
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_bundle_verifies_after_the_database_is_dropped(
        history: History, admin_dsn: str, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    done = export(history.store, out, repo=str(history.repo))
    assert done.manifest["scope"]["kind"] == "repo"
    drop(admin_dsn, history.dsn, history.store)
    report = verify(out)
    assert report.recomputed > 30 and report.elided == 0
    assert report.artifacts > 5 and report.statements >= 2
    assert report.redacted == 3  # each run.prepare names the repository's path
    assert {"audit"} < set(report.chains)
    lines = tree(out)["runs.jsonl"].splitlines()
    assert [json.loads(x)["id"] for x in lines] == history.runs


def test_one_run_carries_the_other_runs_rows_of_its_segment_as_links(
        history: History, tmp_path: Path) -> None:
    out = tmp_path / "one"
    export(history.store, out, run=history.runs[0])
    report = verify(out)
    assert report.elided >= 1  # the second run's prepare sits between the first's events
    rows = [json.loads(x) for x in (out / bundle.EVENTS).read_bytes().splitlines()]
    assert {r["run"] for r in rows if not r.get("elided")} == {history.runs[0]}
    assert all("payload" not in r for r in rows if r.get("elided"))


def test_two_exports_of_the_same_history_are_byte_identical(
        history: History, tmp_path: Path) -> None:
    said: list[str] = []
    export(history.store, tmp_path / "a", progress=said.append)
    assert [line.split(":")[0] for line in said] == list(bundle.FILES)
    export(history.store, tmp_path / "b")
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    export(history.store, tmp_path / "a")  # replacing an earlier bundle
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_an_export_after_a_new_run_differs_only_where_it_should(
        history: History, tmp_path: Path) -> None:
    before = tmp_path / "before"
    export(history.store, before, repo=str(history.repo))
    start_run(history.store, example("minimal"), history.repo)
    after = tmp_path / "after"
    export(history.store, after, repo=str(history.repo))
    old, new = tree(before), tree(after)
    changed = {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    assert changed == {bundle.MANIFEST, bundle.RUNS, bundle.JOBS, bundle.EVENTS, bundle.AUDIT}
    for name in (bundle.EVENTS, bundle.AUDIT, bundle.RUNS):  # the old history, then the new
        assert new[name].startswith(old[name]) and len(new[name]) > len(old[name])
    verify(after)


@pytest.fixture
def exported(history: History, tmp_path: Path) -> Path:
    out = tmp_path / "bundle"
    export(history.store, out)
    verify(out)
    return out


def first_line_forged(folder: Path, name: str, **fields: Any) -> BundleInvalid:
    """The first line of a file given other values, bundle.json listing the result (a
    tamperer who knows the format): the refusal, which must name that line."""
    edit_lines(folder / name, lambda lines: [bundle.line({**json.loads(lines[0]), **fields})]
               + lines[1:])
    relist(folder)
    error = refused(folder)
    assert error.details["file"] == name and error.details["line"] == 1, error.message
    return error


def refused(folder: Path, anchors: tuple[Path, ...] = ()) -> BundleInvalid:
    with pytest.raises(BundleInvalid) as caught:
        verify(folder, anchors)
    return caught.value


def test_an_edited_event_is_named_by_its_line(exported: Path) -> None:
    lines = (exported / bundle.EVENTS).read_bytes().splitlines(keepends=True)
    index = next(i for i, raw in enumerate(lines)
                 if '"verdict":"accept"' in json.loads(raw).get("payload", ""))
    row = json.loads(lines[index])
    row["payload"] = row["payload"].replace('"verdict":"accept"', '"verdict":"reject"')
    lines[index] = bundle.line(row)
    (exported / bundle.EVENTS).write_bytes(b"".join(lines))
    error = refused(exported)
    assert error.details["file"] == bundle.EVENTS and error.details["line"] == index + 1
    assert "row_hash does not match its payload (the row was edited)" in error.message
    relist(exported)  # the same once bundle.json agrees: the chain still names it
    assert f"events.jsonl:{index + 1}: " in refused(exported).message


def test_a_removed_line_is_named(exported: Path) -> None:
    edit_lines(exported / bundle.EVENTS, lambda lines: lines[:10] + lines[11:])
    relist(exported)
    error = refused(exported)
    assert error.details["line"] == 11
    assert "where repo:1 seq 11 was expected" in error.message


def test_reordered_lines_are_named(exported: Path) -> None:
    edit_lines(exported / bundle.EVENTS,
               lambda lines: lines[:5] + [lines[6], lines[5]] + lines[7:])
    error = refused(exported)
    assert error.message.startswith("events.jsonl:6: repo:1 seq 7 where repo:1 seq 6 was")


def test_a_changed_artifact_digest_is_named_against_its_chained_event(exported: Path) -> None:
    error = first_line_forged(exported, bundle.ARTIFACTS, sha256="0" * 64)
    assert "its artifact.publish event (events.jsonl:" in error.message


def test_an_edited_artifact_file_or_an_added_file_is_named(exported: Path) -> None:
    manifest = json.loads((exported / bundle.MANIFEST).read_bytes())
    artifact = next(f["path"] for f in manifest["files"] if f["path"].startswith("artifacts/"))
    (exported / artifact).write_bytes(b"changed\n")
    assert refused(exported).details["file"] == artifact
    shutil.copy(exported / bundle.RUNS, exported / "extra.jsonl")
    assert "not listed in bundle.json" in refused(exported).message


def test_the_cli_exports_and_verifies_with_stable_exit_codes(
        history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    base = ["--dsn", history.dsn, "--repo", str(history.repo), "corpus"]
    assert cli([*base, "export", "--repo", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "exported 3 runs" in printed
    digest = hashlib.sha256((out / bundle.MANIFEST).read_bytes()).hexdigest()
    assert f"bundle sha256 {digest}" in printed
    assert cli(["corpus", "verify", str(out), "--json"]) == 0
    verified = json.loads(capsys.readouterr().out)
    assert verified["ok"] is True and verified["sha256"] == digest
    edit_lines(out / bundle.AUDIT, lambda lines: lines[:-1])
    assert cli(["corpus", "verify", str(out)]) == EXIT_INVALID
    assert "audit.jsonl" in capsys.readouterr().err
    assert cli(["corpus", "verify", str(tmp_path)]) == 3
    assert cli([*base, "export", "-o", str(out)]) == 1  # no scope named


def test_secrets_in_a_prompt_a_log_and_a_verdict_are_redacted_and_the_bundle_verifies(
        store: Store, repo: Path, tmp_path: Path) -> None:
    workflow = write_workflow(tmp_path / "wf", {
        "name": "leaky",
        "lanes": {"w": {"kind": "operator"}, "r": {"kind": "operator"}},
        "jobs": [
            {"id": "make", "lane": "w", "produces": ["out.md"],
             "prompt": {"text": f"deploy with aws_access_key_id {AWS} please"}},
            {"id": "judge", "lane": "r", "kind": "review", "needs": ["make"],
             "consumes": ["out.md"], "prompt": {"text": "judge it"}},
        ]})
    run_id = start_run(store, workflow, repo)
    claim = leases.claim(store, run_id, owner="agent")
    assert claim is not None
    log = tmp_path / "make.log"
    log.write_text(f"cloning with {GITHUB}\nDATABASE_URL=postgresql://app:{LOG_PASSWORD}"
                   f"@db/prod\nwrote {repo}/src/x.py\n", encoding="utf-8")
    leases.publish(store, run_id, "make", claim.token, str(log), "out.md")
    leases.complete(store, run_id, "make", claim.token)
    review = leases.claim(store, run_id, owner="agent")
    assert review is not None
    leases.verdict(store, run_id, "judge", review.token, "accept",
                   f"fine, though the log shows {GITHUB}")
    out = tmp_path / "bundle"
    done = export(store, out, run=run_id)
    everything = b"".join(tree(out).values())
    for secret in (GITHUB, AWS, LOG_PASSWORD, str(repo)):
        assert secret.encode() not in everything, secret
    assert b"[REDACTED:github-pat]" in everything and b"[REDACTED:aws-access-token]" in everything
    assert b"[REDACTED:url-password]" in everything and b"src/x.py" in everything
    counts = done.manifest["redaction"]["counts"]
    assert {"github-pat", "aws-access-token", "url-password", "path"} <= set(counts)
    report = verify(out)
    assert report.redacted >= 2  # the verdict's event and the run's prepare (its path)
    rows = [json.loads(x) for x in (out / bundle.EVENTS).read_bytes().splitlines()]
    verdict_row = next(r for r in rows if "redacted_payload" in r
                       and "REDACTED:github-pat" in r["redacted_payload"])
    assert verdict_row["redactions"][0]["rules"] == ["github-pat"]
    statement = json.loads((out / bundle.STATEMENTS).read_bytes().splitlines()[0])
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["name"] == "out.md"
    assert statement["predicate"]["reviewer"]["lane"] == "r"


def test_a_job_row_that_disagrees_with_its_last_event_is_named(exported: Path) -> None:
    error = first_line_forged(exported, bundle.JOBS, status="failed")
    assert "status 'failed' is not 'succeeded', what its last event says" in error.message


def test_a_run_manifest_anchors_the_bundle_to_the_record_the_repository_saw(
        history: History, tmp_path: Path) -> None:
    out = tmp_path / "one"
    export(history.store, out, run=history.runs[0])
    manifest = history.repo / "striatum" / "runs" / history.runs[0] / "manifest.json"
    assert verify(out, [manifest]).anchors == 2  # its repository chain's head and the audit's
    forged = tmp_path / "manifest.json"
    document = json.loads(manifest.read_bytes())
    document["chain"]["hash"] = "f" * 64
    forged.write_text(json.dumps(document), encoding="utf-8")
    error = refused(out, (forged,))
    assert error.details["file"] == bundle.EVENTS
    assert f"row_hash is not the {'f' * 64} that {forged} anchored" in error.message
    document["chain"]["seq"] = 10_000
    forged.write_text(json.dumps(document), encoding="utf-8")
    assert "holds no repo:1 seq 10000" in refused(out, (forged,)).message


def test_a_verdict_that_no_chained_event_records_is_named(exported: Path) -> None:
    error = first_line_forged(exported, bundle.VERDICTS, reason="looks fine to me")
    assert "is in no chained event with that reason" in error.message


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_worked_to_its_end_exports_and_verifies(
        store: Store, repo: Path, tmp_path: Path, name: str) -> None:
    run_id = start_run(store, example(name), repo)
    view = Agent(store, run_id, tmp_path).drive()
    assert view.run.status in ENDED
    out = tmp_path / "bundle"
    export(store, out, run=run_id, paths=False)
    report = verify(out, (repo / "striatum" / "runs" / run_id / "manifest.json",))
    assert report.redacted == 0 and report.elided == 0 and report.anchors == 2
    assert report.recomputed == sum(s["events"] for s in json.loads(
        (out / bundle.MANIFEST).read_bytes())["chains"])


def test_a_folder_that_is_not_a_bundle_is_never_replaced(
        history: History, tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(UsageError, match="is not a bundle"):
        export(history.store, folder)
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "repo", "work"]


def test_any_field_of_any_file_made_the_wrong_type_is_a_bundle_error_never_a_crash(
        exported: Path, tmp_path: Path) -> None:
    """Each key of the first line of each file (and of bundle.json), given a value of
    another type, with bundle.json listing the result: verify names a file, or passes
    (a field it does not read), and never fails any other way."""
    pristine = tmp_path / "pristine"
    shutil.copytree(exported, pristine)
    names = [bundle.MANIFEST, *(n for n in bundle.FILES if (pristine / n).stat().st_size)]
    tried = 0
    for name in names:
        first = json.loads((pristine / name).read_bytes().splitlines()[0])
        for key in first:
            for value in (None, [], "x", {"a": 1}, -1):
                shutil.rmtree(exported)
                shutil.copytree(pristine, exported)
                changed = {**first, key: value}
                edit_lines(exported / name, lambda lines, c=changed: [bundle.line(c)]
                           + lines[1:])
                if name != bundle.MANIFEST:
                    relist(exported)
                try:
                    verify(exported)
                except BundleInvalid as error:
                    assert error.details["file"], error.message
                tried += 1
    assert tried > 200


def test_an_export_reads_one_snapshot_whatever_is_appended_meanwhile(
        history: History, dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from striatum.corpus import export as exporting

    before = tmp_path / "before"
    export(history.store, before)
    other = Store.connect(dsn)
    events_file = exporting._Export.events_file

    def then_append(self: Any) -> Any:  # a run started between two reads of the export
        spans = events_file(self)
        start_run(other, example("minimal"), history.repo)
        return spans

    monkeypatch.setattr(exporting._Export, "events_file", then_append)
    during = tmp_path / "during"
    try:
        export(history.store, during)
    finally:
        other.close()
    assert tree(during) == tree(before)
    monkeypatch.undo()
    after = tmp_path / "after"
    export(history.store, after)
    assert tree(after) != tree(before)


def test_an_edited_manifest_digest_is_named_at_the_file_it_lists(exported: Path) -> None:
    manifest = json.loads((exported / bundle.MANIFEST).read_bytes())
    entry = next(f for f in manifest["files"] if f["path"] == bundle.EVENTS)
    entry["sha256"] = "0" * 64
    (exported / bundle.MANIFEST).write_bytes(bundle.line(manifest))
    error = refused(exported)
    assert error.details["file"] == bundle.EVENTS and error.details["line"] is None
    assert error.message.endswith(f"is not the {'0' * 64} bundle.json lists")


def test_an_edited_chain_head_in_the_manifest_is_named(exported: Path) -> None:
    manifest = json.loads((exported / bundle.MANIFEST).read_bytes())
    manifest["chains"][0]["last_hash"] = "f" * 64
    (exported / bundle.MANIFEST).write_bytes(bundle.line(manifest))
    error = refused(exported)
    assert error.details["file"] == bundle.EVENTS
    assert "the last row's hash is not the one bundle.json lists" in error.message


def test_a_broken_chain_link_is_named_even_when_the_row_hashes_again(exported: Path) -> None:
    """A forger who points a row at another predecessor and rehashes it: the row alone is
    consistent, and its link to the row before is what names it."""
    lines = (exported / bundle.EVENTS).read_bytes().splitlines(keepends=True)
    index = next(i for i, raw in enumerate(lines) if i > 3 and "payload" in json.loads(raw))
    row = json.loads(lines[index])
    row["previous_hash"] = "1" * 64
    row["row_hash"] = hashlib.sha256((row["previous_hash"] + row["payload"]).encode()
                                     ).hexdigest()
    lines[index] = bundle.line(row)
    (exported / bundle.EVENTS).write_bytes(b"".join(lines))
    relist(exported)
    error = refused(exported)
    assert (error.details["file"], error.details["line"]) == (bundle.EVENTS, index + 1)
    assert f"seq {row['seq']}: previous_hash does not match the row before" in error.message
