"""Rules on files: parallel writes that overlap (STR305), unused artifacts (STR306),
and prompts: unusable files (STR307), undefined names (STR308), Jinja2 syntax (STR312)."""

from __future__ import annotations

import bisect
import contextlib
import itertools
import os
from collections.abc import Iterable
from pathlib import Path as FsPath
from typing import TYPE_CHECKING

from ...globs import GlobsTooComplex, glob_witness
from ..diagnostics import Diagnostic, diag
from ..ir import TEMPLATE_VARIABLES, Job
from ..suggest import closest
from ..text import clip, echo
from .globs import _overlapping_patterns
from .prompts import Template, _undefined

if TYPE_CHECKING:
    from .context import LintContext

MAX_OVERLAP_REPORTS = 50  # STR305 pairs listed one by one before the rest are counted
JINJA_MESSAGE_LIMIT = 200  # Jinja's own words coach ("You probably made a nesting mistake")


# ---------------------------------------------------------------- STR305: writes overlap

def _overlap_diag(job: Job, k: int, mine: str, other: Job, theirs: str) -> Diagnostic:
    example = None
    with contextlib.suppress(GlobsTooComplex):
        # 'src/cli/x.py' reads better than the shortest 'src/cli/.py'.
        example = (glob_witness(mine, theirs, filled=True) or glob_witness(mine, theirs))
    matching = echo(mine) if mine == theirs else f"{echo(theirs)} and {echo(mine)}"
    what = f"paths matching {matching}" + (f", e.g. {echo(example)}" if example else "")
    return diag(
        "STR305", f"jobs {other.id!r} and {job.id!r} can run at the same time and may both "
                  f"write {what}", ("jobs", job.index, "writes", k),
        hint=f"make {job.id!r} need {other.id!r} (or the reverse) so they run one after "
             "the other, or narrow their `writes` so no path matches both")


def parallel_writes_overlap(ctx: LintContext) -> list[Diagnostic]:
    wg = ctx.graph
    writing: dict[str, list[Job]] = {}  # glob -> the jobs that write it
    for job in ctx.workflow.jobs:
        for pattern in job.writes:
            writing.setdefault(pattern, []).append(job)
    overlaps = _overlapping_patterns(list(writing))
    # Only a job with a glob that overlaps another job's can be in a pair: the
    # graph is asked about those alone (every job may declare `writes`).
    members = [job for job in ctx.workflow.jobs if any(
        len(writing[theirs]) > 1 or writing[theirs][0] is not job
        for mine in job.writes for theirs in overlaps[mine])]
    if not members:
        return []
    member_ids = {job.id for job in members}
    ranked = [job_id for job_id in wg.order if job_id in member_ids]
    position = {job_id: k for k, job_id in enumerate(ranked)}
    # Listed in dependency order, the jobs earlier in the file are the earlier ones
    # in ``order``: the pairs of a job are then its unrelated jobs before it.
    in_file_order = all(a.index < b.index for a, b in
                        itertools.pairwise(ctx.jobs[job_id] for job_id in ranked))
    unrelated = wg.unrelated(ranked, both_ways=not in_file_order)
    # glob -> the members that write it, by position: a bitset each would be as
    # long as the file up to its last writer (100,000 globs of a folder each).
    writers = {pattern: sorted(position[job.id] for job in jobs if job.id in position)
               for pattern, jobs in writing.items()}
    out: list[Diagnostic] = []
    untold, last = 0, None
    seen = 0  # the members earlier in the file, when that is not ``order``
    for job in members:
        parallel = unrelated[job.id]
        if not in_file_order:
            # Each pair is reported once, on the job later in the file.
            parallel &= seen
            seen |= 1 << position[job.id]
        if not parallel:
            continue
        # Bits from the lowest unrelated member on: a diamond's are side by side.
        base = (parallel & -parallel).bit_length() - 1
        parallel >>= base
        top = base + parallel.bit_length()
        reported = 0
        for k, mine in enumerate(job.writes):
            for theirs in overlaps[mine]:
                hits = _window(writers[theirs], base, top) & parallel & ~reported
                if not hits:
                    continue
                reported |= hits
                room = MAX_OVERLAP_REPORTS - len(out)
                count = hits.bit_count()
                if count > room:
                    # A fan-out of n jobs writing `**` has n²/2 pairs: count them, don't list.
                    untold += count - max(room, 0)
                    last = ("jobs", job.index, "writes", k)
                others = _in_file_order(ctx, ranked, hits, base, room) if room > 0 else []
                out.extend(_overlap_diag(job, k, mine, other, theirs) for other in others)
    if untold and last is not None:
        out.append(diag("STR305", f"... and {untold:,} more pairs of parallel jobs whose "
                                  "writes overlap", last, hint="fix the ones above first"))
    return out


def _window(positions: list[int], low: int, high: int) -> int:
    """The bitset of the ``positions`` in [low, high), shifted down by ``low``."""
    start, end = bisect.bisect_left(positions, low), bisect.bisect_left(positions, high)
    return _bits(position - low for position in positions[start:end])


def _bits(positions: Iterable[int]) -> int:
    # One bytearray, not one ever-longer int per position: n writers stay linear.
    found = bytearray()
    for position in positions:
        byte = position >> 3
        if byte >= len(found):
            found.extend(bytes(byte + 1 - len(found)))
        found[byte] |= 1 << (position & 7)
    return int.from_bytes(found, "little")


def _in_file_order(ctx: LintContext, ranked: list[str], bits: int, base: int, count: int
                   ) -> list[Job]:
    """The first ``count`` jobs in the file among those whose positions less ``base``
    are in ``bits``."""
    # Read through its binary digits: peeling the lowest bit off a long int n times is n².
    found = [ctx.jobs[ranked[base + k]] for k, digit in enumerate(reversed(bin(bits)[2:]))
             if digit == "1"]
    return sorted(found, key=lambda job: job.index)[:count]


# ---------------------------------------------------------------- STR306: unused artifacts


def artifact_unused(ctx: LintContext) -> list[Diagnostic]:
    consumed = {artifact for job in ctx.workflow.jobs for artifact in job.consumes}
    final = set(ctx.final_ids)
    return [diag("STR306", f"job {job.id!r} produces {echo(artifact)}, but no job consumes it "
                           f"and {job.id!r} is not a final job",
                 ("jobs", job.index, "produces", k),
                 hint="add it to the `consumes` of the job that reads it, or drop it from "
                      f"`produces` (or list {job.id!r} in `final` if it is a result)")
            for job in ctx.workflow.jobs if job.id not in final
            for k, artifact in enumerate(job.produces) if artifact not in consumed]


# ---------------------------------------------------------------- prompts: STR307, STR312, STR308

def _missing_hint(ctx: LintContext, value: str) -> str:
    wanted = FsPath(value)
    try:
        siblings = os.listdir(ctx.directory / wanted.parent)
    except OSError:
        siblings = []
    close = closest(wanted.name, siblings)
    guess = f"did you mean {echo(str(wanted.parent / close))}? " if close else ""
    return f"{guess}prompt files are relative to the workflow file ({ctx.directory})"


def _unusable_hint(ctx: LintContext, value: str, problem: str) -> str:
    if problem == "does not exist":
        return _missing_hint(ctx, value)
    if problem.startswith("is a directory"):
        return "name the template file inside it"
    if problem.startswith("is larger"):
        return "the whole prompt goes into the agent's context: trim it or split the job"
    if problem.startswith(("is binary", "is not valid UTF-8")):
        return "save the prompt as a UTF-8 text file"
    return "check the path and its permissions"


def prompt_file_missing(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for template in ctx.templates:
        if template.problem is None:
            continue
        value = template.prompt.value
        hint = _unusable_hint(ctx, value, template.problem)
        out.extend(diag("STR307", f"prompt file {echo(value)} of job {job.id!r} "
                                  f"{template.problem}", ("jobs", job.index, "prompt"),
                        hint=hint)
                   for job in template.jobs)
    return out


def template_syntax(ctx: LintContext) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for template in ctx.templates:
        if template.syntax is None:
            continue
        message, line = template.syntax
        shown = template.line(line)
        out.append(diag(
            "STR312", f"{template.label} is not a valid Jinja2 template: "
                      f"{clip(message, JINJA_MESSAGE_LIMIT)} " + _template_line(line, shown),
            template.path,
            hint="fix the template syntax; to write a literal '{{' or '{%', wrap it in "
                 "{% raw %}...{% endraw %}"))
    return out


def _template_line(number: int, shown: str) -> str:
    return f"(template line {number}" + (f": {echo(shown)})" if shown else ")")


def _undefined_diag(template: Template, kind: str, name: str, line: int,
                    declared: set[str]) -> Diagnostic:
    where = _template_line(line, template.line(line))
    if kind == "name":
        close = closest(name, TEMPLATE_VARIABLES)
        return diag("STR308", f"{template.label} uses {echo(name)}, which is not a template "
                              f"variable {where}", template.path,
                    hint=(f"did you mean {close!r}? " if close else "")
                    + "prompts can use " + ", ".join(TEMPLATE_VARIABLES)
                    + "; workflow variables are read as vars.NAME")
    close, name = closest(name, declared), clip(name)
    return diag("STR308", f"{template.label} uses vars.{name}, which the workflow does not "
                          f"declare {where}", template.path,
                hint=(f"did you mean vars.{close}? " if close else "")
                + f'declare it under "vars" (e.g. "vars": {{"{name}": "..."}}), or write '
                  f"{{{{ vars.{name} | default('...') }}}}")


def undefined_template_variable(ctx: LintContext) -> list[Diagnostic]:
    declared = {name for name, _ in ctx.workflow.vars}
    out: list[Diagnostic] = []
    for template in ctx.templates:
        if template.ast is None or template.free is None:
            continue
        try:
            found = _undefined(template.ast, template.free, declared)
        except RecursionError:
            continue  # too deep to walk; STR312 has nothing to say either, so say nothing
        out.extend(_undefined_diag(template, kind, name, line, declared)
                   for kind, name, line in found)
    return out
