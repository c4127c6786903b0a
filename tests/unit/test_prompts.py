"""Prompt rendering: plain text skips Jinja2 and must come out exactly as Jinja2 renders it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from striatum.errors import Conflict
from striatum.runtime.prompts import is_template, render

from .prompt_fixtures import JOB, RUN, pinned

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = {"draft.md": "the draft"}
FEEDBACK = "tighten the second paragraph"


def _jinja(template_text: str) -> str:
    """What render() did for every prompt before plain text skipped Jinja2."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                             keep_trailing_newline=True)
    return env.from_string(template_text).render(
        run=RUN.id, job=JOB.job_id, workflow=RUN.workflow_name, vars=RUN.vars,
        artifacts=ARTIFACTS, iteration=JOB.iteration, attempt=JOB.attempt, feedback=FEEDBACK)


def _render(text: str | None = None, title: str | None = None) -> str:
    return render(RUN, JOB, pinned(text, title), artifacts=ARTIFACTS, feedback=FEEDBACK)


@pytest.mark.parametrize("text", [
    "", "\n", "Write the draft.\n", "no trailing newline", "ends with two\n\n",
    "windows\r\nline ends\r\n", "old mac\rline ends\r", "mixed\r\n\r\n\n\r",
    "braces alone: { } }} %} #} {x} { {", "a lone brace at the end {",
    "unicode: \u00e9\u4e2d\U0001f600 \u2028 \x85 \x00", "\ttabs\t and  spaces  ",
])
def test_a_plain_prompt_is_rendered_byte_for_byte_as_jinja2_renders_it(text: str) -> None:
    assert not is_template(text)
    assert _render(text) == _jinja(text)


def test_a_plain_prompt_gets_no_feedback_vars_or_artifacts() -> None:
    # Only a template can pull them in ({{ feedback }}, {{ vars.x }}, {{ artifacts[...] }}).
    assert _render("Revise the draft.\n") == "Revise the draft.\n"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("{}%#\r\n")))
def test_any_text_renders_as_jinja2_renders_it(text: str) -> None:
    try:
        expected = _jinja(text)
    except jinja2.TemplateError:
        with pytest.raises(Conflict):
            _render(text)
        return
    assert _render(text) == expected


@pytest.mark.parametrize("title", [None, "", "Draft the change", "two\r\nlines",
                                   "templated {{ job }} in {{ workflow }}"])
def test_the_default_prompt_is_unchanged(title: str | None) -> None:
    expected = _jinja("Job {{ job }} of workflow {{ workflow }} (run {{ run }}).\n"
                      f"{title or ''}\n")
    assert _render(title=title) == expected


def test_a_template_still_renders_with_the_runs_context() -> None:
    text = "{{ job }} i{{ iteration }}: {{ vars.topic }} / {{ artifacts['draft.md'] }}" \
           "{% if feedback %} / {{ feedback }}{% endif %}\r\n"
    assert _render(text) == (
        "draft i1: caching / the draft / tighten the second paragraph\n")


def test_a_template_naming_something_missing_is_refused() -> None:
    with pytest.raises(Conflict, match="cannot render the prompt of 'draft'"):
        _render("{{ vars.missing }}")


def test_a_plain_prompt_does_not_import_jinja2() -> None:
    # The reason plain text skips Jinja2: `job claim` should not pay for its import.
    code = ("import sys\n"
            "from striatum.runtime.prompts import render\n"
            "from tests.unit.prompt_fixtures import JOB, RUN, pinned\n"
            "render(RUN, JOB, pinned('Do it.'), artifacts={}, feedback=None)\n"
            "render(RUN, JOB, pinned(title='Do it.'), artifacts={}, feedback=None)\n"
            "assert 'jinja2' not in sys.modules, 'jinja2 was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
