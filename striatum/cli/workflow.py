"""``striatum workflow ...``: author, check and dry-run a workflow. No database.

Each command calls the compiler and prints; heavy libraries (networkx,
jsonschema, lark, jinja2) are imported by the compiler only when a command
runs, so ``striatum --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from ..compiler.starters import STYLES
from ..errors import EXIT_INVALID, EXIT_OK, UsageError
from ..server import results
from .output import count, emit_bytes, emit_json, json_option, print_diagnostics, summary

if TYPE_CHECKING:
    from ..compiler.compile import Compilation

SYNTAXES = ("json", "dsl")
syntax_option = click.option("--syntax", type=click.Choice(SYNTAXES), default=None,
                             help="Input syntax (default: from the file name, then the content).")
file_argument = click.argument("file", type=click.Path(dir_okay=True))


@click.group()
def workflow() -> None:
    """Author, check and dry-run workflows (no database needed)."""


def _check(file: str, syntax: str | None) -> Compilation:
    from .. import compiler

    return compiler.check(file, syntax)


def _diagnostics_json(comp: Compilation) -> list[dict[str, Any]]:
    return [d.to_json() for d in comp.diagnostics]


def _require_ok(comp: Compilation, as_json: bool) -> None:
    """Stop with exit 2 and the diagnostics on stderr when the workflow is invalid."""
    if comp.ok:
        return
    if as_json:
        emit_json({"file": comp.source.file, "valid": False,
                   "diagnostics": _diagnostics_json(comp)})
    else:
        print_diagnostics(comp.diagnostics, comp.source.text)
        click.echo(f"{comp.source.file}: invalid ({summary(comp.diagnostics)})", err=True)
    raise click.exceptions.Exit(EXIT_INVALID)


@workflow.command()
@file_argument
@syntax_option
@json_option
def validate(file: str, syntax: str | None, as_json: bool) -> int:
    """Check FILE against the contract and prove it terminates."""
    comp = _check(file, syntax)
    if as_json:
        emit_json(results.validation(file, comp))
    else:
        print_diagnostics(comp.diagnostics, comp.source.text, err=False)
        if comp.ok:
            assert comp.workflow is not None
            click.echo(f"{file}: valid ({count(len(comp.workflow.jobs), 'job')}, "
                       f"{count(len(comp.workflow.lanes), 'lane')})")
        else:
            click.echo(f"{file}: invalid ({summary(comp.diagnostics)})")
    return EXIT_OK if comp.ok else EXIT_INVALID


@workflow.command()
@file_argument
@syntax_option
@click.option("--format", "output", type=click.Choice(["text", "json", "sarif"]), default="text",
              show_default=True, help="Output format.")
@click.option("--strict", is_flag=True, help="Exit 2 on warnings too.")
@json_option
def lint(file: str, syntax: str | None, output: str, strict: bool, as_json: bool) -> int:
    """Validate FILE and report likely mistakes (rules in docs/lint-rules.md)."""
    from .. import __version__, compiler
    from ..compiler.diagnostics import Severity

    comp = _check(file, syntax)
    found = [*comp.diagnostics, *compiler.lint(comp)]
    failing = any(d.severity is Severity.ERROR or (strict and d.severity is Severity.WARNING)
                  for d in found)
    if output == "sarif":
        from ..compiler.sarif import to_sarif

        emit_json(to_sarif(found, tool_version=__version__))
    elif output == "json" or as_json:
        emit_json(results.lint_report(file, comp, found))
    else:
        print_diagnostics(found, comp.source.text, err=False)
        click.echo(f"{file}: {summary(found)}")
    return EXIT_INVALID if failing else EXIT_OK


@workflow.command(name="compile")
@file_argument
@syntax_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the compiled JSON here instead of stdout.")
@json_option
def compile_(file: str, syntax: str | None, output: str | None, as_json: bool) -> int:
    """Print the canonical compiled JSON of FILE and its sha256 digest."""
    from .. import compiler

    comp = _check(file, syntax)
    _require_ok(comp, as_json)
    compiled = compiler.compile(comp)
    data, digest = compiled.data, compiled.digest
    if output:
        with open(output, "wb") as handle:
            handle.write(data)
    if as_json:
        emit_json({"file": file, "digest": digest, "bytes": len(data), "output": output,
                   "compiled": compiled.document})
    elif output:
        click.echo(f"wrote {output} ({len(data):,} bytes) sha256:{digest}")
    else:
        emit_bytes(data)
        click.echo(f"sha256:{digest}", err=True)
    return EXIT_OK


@workflow.command()
@file_argument
@syntax_option
@click.option("--format", "output", type=click.Choice(["mermaid", "dot", "json"]),
              default="mermaid", show_default=True, help="Drawing format.")
@click.option("-o", "--output-file", type=click.Path(dir_okay=False), default=None,
              help="Write the drawing here instead of stdout.")
@json_option
def graph(file: str, syntax: str | None, output: str, output_file: str | None,
          as_json: bool) -> int:
    """Draw FILE's graph; revision edges are dashed and labelled with their budget."""
    import json

    from .. import compiler

    comp = _check(file, syntax)
    _require_ok(comp, as_json)
    if as_json:
        emit_json(json.loads(compiler.draw(comp, "json")))
        return EXIT_OK
    text = compiler.draw(comp, output)
    if output_file:
        with open(output_file, "w", encoding="utf-8") as handle:
            handle.write(text)
        click.echo(f"wrote {output_file}", err=True)
    else:
        click.echo(text, nl=False)
    return EXIT_OK


@workflow.command()
@file_argument
@syntax_option
@click.option("--verdicts", default=None, metavar="JOB=OUTCOME,...",
              help="Walk one path: e.g. 'check=needs_revision,check=accept,go=continue'.")
@json_option
def plan(file: str, syntax: str | None, verdicts: str | None, as_json: bool) -> int:
    """Dry-run FILE: waves, revision loops, worst-case executions, paths."""
    from .. import compiler

    comp = _check(file, syntax)
    _require_ok(comp, as_json)
    document = compiler.plan(comp, verdicts)
    if as_json:
        emit_json(document)
    else:
        click.echo(_plan_text(document))
    return EXIT_OK


def _bounds_text(doc: dict[str, Any]) -> list[str]:
    from ..durations import spoken

    seconds = doc["worst_case_wall_seconds"]
    if seconds is None:
        wall = ("no bound: " + ", ".join(doc["wall_unbounded_by"])
                + " wait(s) for a person or an operator with no time limit")
    else:
        exact = "exact" if doc["worst_case_wall_exact"] else "upper bound"
        wall = f"{count(seconds, 'second')} ({spoken(seconds)}, {exact})"
    exact = "exact" if doc["worst_case_agent_calls_exact"] else "upper bound"
    calls = ", ".join(f"{lane} {n}" for lane, n in doc["worst_case_agent_calls"].items())
    return [f"worst-case wall time: {wall}", f"worst-case agent calls per lane: {calls} ({exact})"]


def _plan_text(doc: dict[str, Any]) -> str:
    lines = [f"plan for {doc['workflow']}: {count(doc['jobs'], 'job')} in "
             f"{count(len(doc['waves']), 'wave')}"]
    for number, wave in enumerate(doc["waves"], 1):
        lines.append(f"  wave {number}: {', '.join(wave)}")
    if doc["regions"]:
        lines.append("revision loops:")
        for r in doc["regions"]:
            lines.append(f"  {r['reviewer']} → {r['target']}: at most "
                         f"{count(r['max'], 'revision')}, "
                         f"then {r['on_exhausted']}; reruns {', '.join(r['reruns'])}")
    exact = "exact" if doc["worst_case_exact"] else "upper bound"
    lines.append(f"worst case: {count(doc['worst_case_job_executions'], 'job execution')} "
                 f"({exact})")
    if doc["worst_case_choices"]:
        chosen = ", ".join(f"{k}={v}" for k, v in doc["worst_case_choices"].items())
        lines.append(f"  reached with checkpoint choices {chosen}")
    lines.extend(_bounds_text(doc))
    paths = doc["paths"]
    lines.append("paths: " + (count(paths, "distinct verdict/choice outcome")
                              if paths is not None else "too many to count"))
    walked = doc.get("walk")
    if walked:
        lines.append(f"walk: {walked['status']} after "
                     f"{count(walked['executions'], 'job execution')}")
        for s in walked["steps"]:
            outcome = f" → {s['outcome']}" if s["outcome"] else ""
            note = f"  {s['note']}" if s["note"] else ""
            lines.append(f"  {s['job']} (run {s['execution']}){outcome}{note}")
        if walked["unused_verdicts"]:
            lines.append(f"  unused verdicts: {', '.join(walked['unused_verdicts'])}")
    return "\n".join(lines)


@workflow.command()
@file_argument
@syntax_option
@click.option("--to", type=click.Choice(SYNTAXES), default=None,
              help="Output syntax (default: the input's).")
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; exit 2 if FILE is not already formatted.")
@click.option("-w", "--write", is_flag=True, help="Rewrite FILE in place.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the result here instead of stdout.")
@json_option
def fmt(file: str, syntax: str | None, to: str | None, check_only: bool, write: bool,
        output: str | None, as_json: bool) -> int:
    """Format FILE, or convert it between JSON and the DSL without loss."""
    from .. import compiler

    comp = compiler.validate(compiler.load(file, syntax))
    if comp.workflow is None:
        _require_ok(comp, as_json)
    assert comp.workflow is not None
    target = to or comp.source.format
    if write and target != comp.source.format:
        raise UsageError(f"--write would put {target} into a {comp.source.format} file",
                         hint="use -o NEW_FILE to convert")
    text = compiler.fmt(comp, target)
    changed = text != comp.source.text
    for path in ([file] if write and changed else []) + ([output] if output else []):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    if as_json:
        emit_json({"file": file, "to": target, "changed": changed, "output": output,
                   "text": None if (write or output or check_only) else text})
    elif check_only:
        if changed:
            # What would change, as a unified diff on stdout (the verdict on stderr).
            import difflib

            diff = difflib.unified_diff(
                comp.source.text.splitlines(keepends=True), text.splitlines(keepends=True),
                f"{file} (as it is)", f"{file} (formatted)")
            click.echo("".join(line if line.endswith("\n")
                               else line + "\n\\ No newline at end of file\n"
                               for line in diff), nl=False)
        click.echo(f"{file}: {'would be reformatted' if changed else 'already formatted'}",
                   err=True)
    elif write or output:
        click.echo(f"wrote {output or file}", err=True)
    else:
        click.echo(text, nl=False)
    return EXIT_INVALID if check_only and changed else EXIT_OK


@workflow.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--style", type=click.Choice(STYLES), default="code-change", show_default=True,
              help="The workflow shape.")
@click.option("--syntax", type=click.Choice(SYNTAXES), default="json", show_default=True,
              help="Write workflow.json or workflow.stm.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@json_option
def init(directory: str, style: str, syntax: str, force: bool, as_json: bool) -> int:
    """Write a starter workflow of the given shape into DIRECTORY.

    In a git repository (--repo) it also puts .striatum/ in its .gitignore: that folder
    is striatum's scratch (prompts, logs, worktrees), never to be committed; the
    workflow and, after runs, striatum/runs/ (each run's artifacts and manifest) are."""
    from ..compiler.starters import write_starter

    written = write_starter(style, directory, syntax, force)
    ignored = _ignore_scratch()
    if as_json:
        emit_json({"style": style, "directory": directory, "files": [str(p) for p in written],
                   "gitignore": ignored})
    else:
        for path in written:
            click.echo(f"created {path}")
        if ignored:
            click.echo(f"added .striatum/ to {ignored} (striatum's scratch: never commit it)")
        click.echo(f"commit: {directory}/ (the workflow) and, once runs have ended, "
                   "striatum/runs/ (each run's artifacts and the manifest that anchors its "
                   "record)")
        click.echo(f"next: striatum workflow plan {written[0]}")
    return EXIT_OK


def _ignore_scratch() -> str | None:
    """Put .striatum/ in the repository's .gitignore (appended, never rewritten); the
    file's path when it changed, None when it needed nothing or --repo is no git
    repository."""
    from pathlib import Path

    from ..agents.files import with_line
    from ..runtime.worktrees import checkout
    from .session import settings

    repo = settings()[0]
    if checkout(repo) is None:
        return None
    planned = with_line(Path(repo) / ".gitignore", ".striatum/")
    if not planned.changes:
        return None
    planned.apply()
    return str(planned.path)
