"""Prompts: reading and parsing the templates jobs use, and the names they read.

Shared by STR307 (the file cannot be used), STR312 (Jinja2 syntax) and
STR308 (names the run's context will not have).
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path as FsPath
from typing import TYPE_CHECKING, TypeVar

from .. import text as lines
from ..diagnostics import Path
from ..ir import TEMPLATE_VARIABLES, Job, Prompt
from .words import _jobs_phrase

if TYPE_CHECKING:
    from jinja2 import Environment, nodes

    from .context import LintContext

MAX_PROMPT_BYTES = 1_000_000  # the contract's limit on an inline prompt; a file gets the same
_N = TypeVar("_N", bound="nodes.Node")


@dataclass
class Template:
    """One prompt (a file, or inline text) and the jobs that use it."""

    prompt: Prompt
    jobs: list[Job]
    text: str | None = None
    problem: str | None = None  # why the file cannot be used (STR307)
    ast: nodes.Template | None = None
    free: set[str] | None = None  # the names it reads from the run's context
    syntax: tuple[str, int] | None = None  # Jinja's message and template line (STR312)

    @property
    def label(self) -> str:
        where = (f"prompt file {lines.echo(self.prompt.value)}" if self.prompt.source == "file"
                 else "inline prompt")
        return f"the {where} of {_jobs_phrase([job.id for job in self.jobs])}"

    @property
    def path(self) -> Path:
        """Where the prompt is named in the workflow: at its first user."""
        first = ("jobs", self.jobs[0].index, "prompt")
        return first if self.prompt.source == "file" else (*first, "text")

    def line(self, number: int) -> str:
        """Line ``number`` of the template, stripped ("" past the end), counted as Jinja does."""
        return (lines.line(self.text or "", number) or "").strip()


@cache
def _environment() -> Environment:
    import jinja2

    # Prompts are Markdown read by an agent, not HTML: escaping '<' and '&'
    # would change what the agent is told, so rendering must not do it either.
    return jinja2.Environment(autoescape=False)


def _load_templates(ctx: LintContext) -> list[Template]:
    by_prompt: dict[tuple[str, str], Template] = {}
    for job in ctx.workflow.jobs:
        prompt = job.prompt
        if prompt is not None:
            # Keyed by its fields: a dataclass's generated hash is a Python call a job.
            key = (prompt.source, prompt.value)
            template = by_prompt.get(key)
            if template is None:
                template = by_prompt[key] = Template(prompt, [])
            template.jobs.append(job)
    for template in by_prompt.values():
        if template.prompt.source == "file":
            template.text, template.problem = read_prompt(ctx.directory / template.prompt.value)
        else:
            template.text = template.prompt.value
        if template.text is not None:
            _parse(template)
    return list(by_prompt.values())


def read_prompt(path: FsPath) -> tuple[str | None, str | None]:
    """(the text, None), or (None, why it cannot be used as a prompt)."""
    try:
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            return None, "is a directory, not a file"
        if not stat.S_ISREG(info.st_mode):
            return None, "is not a regular file"
        with path.open("rb") as handle:
            raw = handle.read(MAX_PROMPT_BYTES + 1)
    except (FileNotFoundError, NotADirectoryError):
        return None, "does not exist"
    except (OSError, ValueError) as exc:
        return None, f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if len(raw) > MAX_PROMPT_BYTES:
        return None, f"is larger than {MAX_PROMPT_BYTES:,} bytes"
    if b"\x00" in raw:
        return None, "is binary (it has a NUL byte), not a text template"
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        return None, f"is not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"


_JINJA_MARKUP = ("{{", "{%", "{#")


def _parse(template: Template) -> None:
    if not any(mark in (template.text or "") for mark in _JINJA_MARKUP):
        return  # plain text: nothing to parse, no name it could read
    from jinja2 import TemplateSyntaxError, meta

    try:
        ast = _environment().parse(template.text or "")
        # Finding the free names runs Jinja's code generator, which is where
        # an unknown filter or a block defined twice is caught, as rendering would.
        template.free = meta.find_undeclared_variables(ast)
        template.ast = ast
    except TemplateSyntaxError as exc:
        template.syntax = (exc.message or str(exc), exc.lineno)
    except RecursionError:
        template.syntax = ("expressions are nested too deeply to parse", 1)


# ---------------------------------------------------------------- free names

_GUARDS = {"default", "d", "defined", "undefined", "none"}  # filters/tests that expect absence


def _walk(node: nodes.Node, kinds: type[_N] | tuple[type[_N], ...]) -> Iterator[_N]:
    """``node`` itself when it is one of ``kinds``, then its descendants that are."""
    if isinstance(node, kinds):
        yield node
    yield from node.find_all(kinds)


def _names_used(node: nodes.Node, free: set[str]) -> Iterator[tuple[tuple[str, str], int]]:
    """((kind, name), line) for each name read from the run's context under ``node``:
    kind "name" for a top-level variable, "var" for ``vars.NAME`` / ``vars['NAME']``."""
    from jinja2 import nodes

    callees = {id(call.node) for call in _walk(node, nodes.Call)}  # vars.get(...): a method
    for name_node in _walk(node, nodes.Name):
        if name_node.name in free and name_node.ctx == "load":
            yield ("name", name_node.name), name_node.lineno
    if "vars" not in free:
        return  # the template binds `vars` itself
    for access in _walk(node, (nodes.Getattr, nodes.Getitem)):
        key = _vars_key(access)
        if key is not None and id(access) not in callees:
            yield ("var", key), access.lineno


def _guarded(ast: nodes.Template, free: set[str]) -> set[tuple[str, str]]:
    """Names the template tests with ``is defined`` or gives a ``default``: it expects that
    they may be missing, wherever else it reads them."""
    from jinja2 import nodes

    out: set[tuple[str, str]] = set()
    for guard in ast.find_all((nodes.Filter, nodes.Test)):
        if guard.name in _GUARDS and guard.node is not None:
            out.update(key for key, _ in _names_used(guard.node, free))
    return out


def _undefined(ast: nodes.Template, free: set[str], declared: set[str]
               ) -> list[tuple[str, str, int]]:
    """(kind, name, first line) for each name the run's context will not have."""
    guarded = _guarded(ast, free)
    found: dict[tuple[str, str], int] = {}
    for (kind, name), line in _names_used(ast, free):
        known = name in TEMPLATE_VARIABLES if kind == "name" else name in declared
        if not known and (kind, name) not in guarded:
            found.setdefault((kind, name), line)
    return [(kind, name, line) for (kind, name), line in found.items()]


def _vars_key(access: nodes.Node) -> str | None:
    from jinja2 import nodes

    if not isinstance(access, nodes.Getattr | nodes.Getitem):
        return None
    if not (isinstance(access.node, nodes.Name) and access.node.name == "vars"):
        return None
    if isinstance(access, nodes.Getattr):
        return str(access.attr)
    arg = access.arg
    return arg.value if isinstance(arg, nodes.Const) and isinstance(arg.value, str) else None
