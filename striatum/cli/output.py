"""How the CLI shows results: one JSON document with --json, readable text otherwise.

Shared by every command so each verb has the same ``--json`` option, the
same diagnostic layout, and errors on stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import click

from ..server.results import count, summary
from .invocation import current

F = TypeVar("F", bound=Callable[..., Any])
__all__ = ["count", "emit_bytes", "emit_json", "format_diagnostic", "json_in_argv",
           "json_option", "print_diagnostics", "source_line", "summary", "write_error"]


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value:
        current(ctx).json = True
    return value


def json_option(func: F) -> F:
    """--json: print one JSON document on stdout (errors still go to stderr)."""
    return click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                        help="Print one JSON document on stdout.")(func)


def json_in_argv(argv: list[str]) -> bool:
    """Whether a command line asks for --json among its options (after "--" every
    argument is an operand), parsed or not."""
    options = argv[:argv.index("--")] if "--" in argv else argv
    return "--json" in options


def emit_json(document: Any) -> None:
    import json

    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def emit_bytes(data: bytes) -> None:
    """``data`` on stdout exactly as it is: no newline added and no re-encoding, so a
    file stdout is redirected to holds those bytes (a terminal gets a newline after)."""
    binary = hasattr(sys.stdout, "buffer")  # not so for an in-process caller's StringIO
    click.echo(data if binary else data.decode("utf-8"), nl=False)
    if sys.stdout.isatty():
        click.echo()


def source_line(text: str, line: int) -> str | None:
    """Line ``line`` of ``text``, with lines ended as diagnostics count them."""
    from ..compiler.text import line as nth_line

    return nth_line(text, line)


def format_diagnostic(d: Any, text: str = "") -> str:
    """``file:line:col: severity[CODE] message``, the source line with a caret, and the hint."""
    out = [f"{d.file}:{d.line}:{d.column}: {d.severity.value}[{d.code}] {d.message}"]
    shown = source_line(text, d.line or 0) if text else None
    if shown is not None and len(shown) <= 300:
        gutter = f"{d.line:>5} | "
        out.append(gutter + shown.expandtabs(1))
        out.append(" " * (len(gutter) - 2) + "| " + " " * max(0, (d.column or 1) - 1) + "^")
    if d.hint:
        out.append(f"  hint: {d.hint}")
    return "\n".join(out)


def diagnostic_line(found: dict[str, Any]) -> str:
    """A diagnostic from its JSON form (an error's details): ``file:line:col:
    severity[CODE] message`` and its hint."""
    where = f"{found.get('file')}:{found.get('line')}:{found.get('column')}"
    line = f"{where}: {found.get('severity')}[{found.get('code')}] {found.get('message')}"
    return line + (f"\n  hint: {found['hint']}" if found.get("hint") else "")


def print_diagnostics(diagnostics: Iterable[Any], text: str = "", *, err: bool = True) -> None:
    for d in diagnostics:
        click.echo(format_diagnostic(d, text), err=err)


def write_error(message: str, hint: str | None, document: dict[str, Any], *, as_json: bool
                ) -> None:
    """An error on stderr: ``document`` as one line of JSON with --json, else as text."""
    if as_json:
        import json

        click.echo(json.dumps(document, ensure_ascii=False), err=True)
        return
    click.echo(f"striatum: error: {message}", err=True)
    if hint:
        click.echo(f"  hint: {hint}", err=True)


def is_terminal() -> bool:
    return sys.stderr.isatty()
