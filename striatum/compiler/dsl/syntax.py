"""DSL syntax errors, said in words: what was found, what was expected, and a hint.

Each rule in ``_RULES`` recognises one known mistake (a missing `by`, a
trailing comma, single quotes, ...) or passes; the first that speaks wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..diagnostics import Diagnostic, diag
from ..suggest import closest
from ..text import clip, position
from .nodes import parser, placed

STATEMENTS = ("var", "final", "budget", "lane", "task", "review", "checkpoint")
BODY_ITEMS = ("title", "prompt", "produces", "consumes", "writes", "isolation", "attempts",
              "revise", "choice")
_BODY_GROUP = "a job body item (title, prompt, produces, consumes, writes, ...)"
_STATEMENT_GROUP = "a statement (var, final, budget, lane, task, review, checkpoint)"

# After these words a name is due; what kind of name, in the author's terms.
_NAME_AFTER = {
    "workflow": "the workflow name", "var": "a variable name", "lane": "a lane name",
    "by": "a lane name", "task": "a job id", "review": "a job id", "checkpoint": "a job id",
    "after": "a job id", "final": "a job id", "->": "a job id",
    "revise": "the id of the job to revise", "choice": "a choice name",
    # Only an env map takes a name after `{` or after a string and a comma.
    "{": "an environment variable name", ",": "an environment variable name",
}
_INTRODUCERS = frozenset(("workflow", "var", "lane", "by", "after", "final", "revise", "choice",
                          "task", "review", "checkpoint"))

# Words authors reach for in a job body, from the JSON form or other tools.
_BODY_HINTS = {
    "needs": "dependencies go in the job header: `task ID by LANE after A, B`",
    "depends": "dependencies go in the job header: `task ID by LANE after A, B`",
    "depends_on": "dependencies go in the job header: `task ID by LANE after A, B`",
    "max_attempts": "write `attempts N`",
    "kind": "a job's kind is its first word: task, review or checkpoint",
    "id": "the id and the lane are in the job header: `task ID by LANE`",
    "lane": "the id and the lane are in the job header: `task ID by LANE`",
    "choices": "write one line per choice: `choice NAME -> A, B`",
    "max": "`max` follows a revise: `revise JOB max N`",
    "on_exhausted": "`on_exhausted` follows a revise: `revise JOB max N on_exhausted fail`",
    "on_repeat": "`on_repeat` follows a revise: `revise JOB max N on_repeat escalate`",
    "text": "inline prompt text is written `prompt text \"...\"`",
}

_WORD = re.compile(r'"(?:[^"\\\r\n]|\\.)*"?|#[^\r\n]*|->|-?[0-9]+|[A-Za-z_][A-Za-z0-9_-]*|\S')
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_ESCAPES = frozenset('"\\/bfnrt')


@dataclass(frozen=True, slots=True)
class _Word:
    text: str
    offset: int


@dataclass(frozen=True, slots=True)
class _Mistake:
    """What the parser tripped on, in the terms the rules below reason with."""

    text: str  # the whole source
    found: str  # terminal name, "$END", or "CHAR" when no terminal matched
    value: str
    offset: int
    expected: frozenset[str]
    before: tuple[_Word, ...]


@dataclass(frozen=True, slots=True)
class _Said:
    message: str
    hint: str | None = None
    offset: int | None = None  # where to point, when not at the found token


def syntax_diagnostic(text: str, error: UnexpectedInput) -> Diagnostic:
    """One STR011 for a lark syntax error: what was found, what was expected, in words."""
    mistake = _mistake(text, error)
    said = _explain(mistake)
    offset = said.offset if said.offset is not None else mistake.offset
    return placed(diag("STR011", said.message, hint=said.hint), position(text, offset))


def _mistake(text: str, error: UnexpectedInput) -> _Mistake:
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        token = error.token
        offset = token.start_pos or 0
        return _Mistake(text, token.type, str(token), offset, frozenset(error.expected),
                        _words_before(text, offset))
    if isinstance(error, UnexpectedCharacters):
        where: int = getattr(error, "pos_in_stream", 0)  # lark declares it None
        return _Mistake(text, "CHAR", text[where:where + 1], where,
                        frozenset(error.allowed or ()), _words_before(text, where))
    expected = error.expected if isinstance(error, UnexpectedToken | UnexpectedEOF) else ()
    before = _words_before(text, len(text))
    end = before[-1].offset + len(before[-1].text) if before else 0
    return _Mistake(text, "$END", "", end, frozenset(expected), before)


def _words_before(text: str, offset: int) -> tuple[_Word, ...]:
    return tuple(_Word(m.group(), m.start()) for m in _WORD.finditer(text, 0, offset)
                 if not m.group().startswith("#"))


def _explain(m: _Mistake) -> _Said:
    for rule in _RULES:
        said = rule(m)
        if said is not None:
            return said
    if m.found == "CHAR":
        char = m.value if m.value.isprintable() else f"U+{ord(m.value):04X}"
        return _Said(f"unexpected character `{char}`{_after(m)}; expected {_expected(m)}")
    return _Said(f"expected {_expected(m)}{_after(m)}, found {_found(m)}")


# ---- the table of known mistakes: each rule says something, or passes (None)


def _string_trouble(m: _Mistake) -> _Said | None:
    if m.found != "CHAR" or m.value != '"':
        return None
    i = m.offset + 1
    while i < len(m.text):
        char = m.text[i]
        if char == "\\":
            escape = m.text[i + 1:i + 2]
            if escape == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", m.text[i + 2:i + 6]):
                i += 6
                continue
            if escape in _ESCAPES and escape:
                i += 2
                continue
            return _Said(f"invalid escape `\\{escape}` in a string",
                         'strings use JSON escapes: \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX',
                         offset=i)
        if char == '"':
            return None  # a well-formed string: the trouble is elsewhere
        if char in "\r\n":
            break
        if ord(char) < 0x20:
            return _Said(f"a control character (U+{ord(char):04X}) inside a string",
                         "write it as an escape, e.g. \\t for a tab", offset=i)
        i += 1
    return _Said("unterminated string: it must end with `\"` on the line where it starts",
                 "write \\n for a line break inside a string")


def _single_quote(m: _Mistake) -> _Said | None:
    if m.found == "CHAR" and m.value == "'":
        return _Said("strings take double quotes, found `'`", 'write "..." instead of \'...\'')
    return None


def _colon(m: _Mistake) -> _Said | None:
    if m.found == "CHAR" and m.value == ":":
        return _Said(f"unexpected `:`{_after(m)}: the DSL has no colons",
                     'a value follows its keyword directly: `prompt "draft.md"`, '
                     '`lane NAME = [...]`')
    return None


def _no_header(m: _Mistake) -> _Said | None:
    if m.before or "WORKFLOW" not in m.expected:
        return None
    if m.text.lstrip().startswith(("{", "[")):
        return _Said("this looks like a JSON workflow, not the DSL",
                     "give the file a .json name, or pass `--syntax json`")
    return _Said(f"a DSL workflow starts with `workflow NAME`, found {_found(m)}",
                 "add a first line such as `workflow code-change`")


def _missing_by(m: _Mistake) -> _Said | None:
    if m.expected != {"BY"}:
        return None
    return _Said(f"expected `by` and a lane name{_after(m)}, found {_found(m)}",
                 "a job header reads `task ID by LANE [after ID, ...]`")


def _swallowed_keyword(m: _Mistake) -> _Said | None:
    # `after a,` + newline + `task b ...`: the list takes `task` as a job id, so the
    # parser only trips one word later.
    if len(m.before) < 2 or m.before[-2].text != ",":
        return None
    word = m.before[-1].text
    if word not in STATEMENTS and word not in BODY_ITEMS:
        return None
    return _Said(f"a trailing comma before `{word}`: the list took `{word}` as its last item",
                 "remove the `,` at the end of the list", offset=m.before[-2].offset)


def _trailing_comma(m: _Mistake) -> _Said | None:
    if not m.before or m.before[-1].text != ",":
        return None
    return _Said(f"expected {_expected(m)} after `,`, found {_found(m)}",
                 "a list has no trailing comma: remove the last `,`",
                 offset=m.before[-1].offset)


def _unknown_word(m: _Mistake) -> _Said | None:
    # A word (a name, or a keyword out of place) where only keywords fit.
    if m.found in ("CHAR", "STRING", "INT") or "ID" in m.expected:
        return None
    if not _IDENTIFIER.fullmatch(m.value):
        return None
    keywords = [word for word in map(_literal, m.expected) if _IDENTIFIER.fullmatch(word)]
    in_body = set(BODY_ITEMS) <= set(keywords)
    hint = _BODY_HINTS.get(m.value) if in_body else None
    if hint is None:
        guess = closest(m.value, keywords)
        hint = f"did you mean `{guess}`?" if guess else None
    if hint is None and "STRING" in m.expected:
        bare = re.match(r"[^\s{}\[\],]+", m.text[m.offset:])
        hint = f'strings take double quotes: "{clip(bare.group() if bare else m.value)}"'
    if in_body:
        return _Said(f"`{clip(m.value)}` is not a job body item; expected {_expected(m)}", hint)
    return _Said(f"expected {_expected(m)}{_after(m)}, found {_found(m)}", hint)


def _misplaced_keyword(m: _Mistake) -> _Said | None:
    if m.found == "WORKFLOW":
        return _Said(f"`workflow` again{_after(m)}: one file holds one workflow",
                     "only the first line says `workflow NAME`")
    if m.value in STATEMENTS and "RBRACE" in m.expected:
        return _Said(f"expected {_expected(m)}{_after(m)}, found {_found(m)}",
                     "is the `}` that closes the job body above missing?")
    return None


def _equals(m: _Mistake) -> _Said | None:
    if m.found != "EQUAL":
        return None
    return _Said(f"expected {_expected(m)}{_after(m)}, found `=`",
                 "a job body item takes its value right after the keyword, without `=`")


def _command_not_a_list(m: _Mistake) -> _Said | None:
    if m.found != "STRING" or "LSQB" not in m.expected:
        return None
    return _Said(f"expected {_expected(m)}{_after(m)}, found {_found(m)}",
                 'a command is a list of strings: `["codex", "exec", "{prompt_file}"]`')


def _unclosed(m: _Mistake) -> _Said | None:
    if m.found != "$END":
        return None
    closers = {"RBRACE": "a `{` is not closed: end it with `}`",
               "RSQB": "a `[` is not closed: end it with `]`"}
    hint = next((closers[name] for name in closers if name in m.expected), None)
    return _Said(f"the file ends early: expected {_expected(m)}{_after(m)}", hint)


_RULES = (_string_trouble, _single_quote, _colon, _no_header, _missing_by, _swallowed_keyword,
          _trailing_comma, _misplaced_keyword, _unknown_word, _equals, _command_not_a_list,
          _unclosed)


# ---- words for tokens


def _literal(terminal: str) -> str:
    """The text of a keyword or punctuation terminal; "" for ID, STRING, INT, $END."""
    try:
        pattern = parser().get_terminal(terminal).pattern
    except KeyError:
        return ""
    return str(pattern.value) if pattern.type == "str" else ""


def _expected(m: _Mistake) -> str:
    literals = {_literal(name) for name in m.expected}
    in_body = set(BODY_ITEMS) <= literals
    at_top = set(STATEMENTS) <= literals
    grouped = (set(BODY_ITEMS) if in_body else set()) | (set(STATEMENTS) if at_top else set())
    order = [t.name for t in parser().terminals]
    words = [_BODY_GROUP] if in_body else []
    for name in sorted(m.expected - {"$END"}, key=lambda n: order.index(n) if n in order else 0):
        literal = _literal(name)
        if literal not in grouped:
            words.append(_terminal_words(name, literal, m.before))
    if at_top:
        words.append(_STATEMENT_GROUP)
    if not words:
        return "the end of the file"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _terminal_words(name: str, literal: str, before: tuple[_Word, ...]) -> str:
    if name == "ID":
        return _name_wanted(before)
    if name == "STRING":
        return 'a "string"'
    if name == "INT":
        return "a whole number"
    return f"`{literal or name}`"


def _name_wanted(before: tuple[_Word, ...]) -> str:
    words = [word.text for word in before]
    # Skip back over the list so far (`after a, b,`) to the word that opened it.
    while len(words) >= 2 and words[-1] == "," and _IDENTIFIER.fullmatch(words[-2]):
        words = words[:-2]
    return _NAME_AFTER.get(words[-1], "a name") if words else "a name"


def _found(m: _Mistake) -> str:
    if m.found == "$END":
        return "the end of the file"
    if m.found == "STRING":
        return f"the string {clip(m.value)}"
    if m.found == "INT":
        return f"the number {clip(m.value)}"
    return f"`{clip(m.value)}`"


def _after(m: _Mistake) -> str:
    if not m.before:
        return ""
    last = m.before[-1].text
    if len(m.before) >= 2 and m.before[-2].text in _INTRODUCERS:
        last = f"{m.before[-2].text} {last}"
    return f" after `{clip(last)}`"
