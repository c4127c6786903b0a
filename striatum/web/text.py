"""Artifacts and prompts as HTML: every character of the artifact escaped first, then a
small subset of Markdown (headings, lists, code, emphasis, paragraphs) drawn from the
escaped text, so nothing an agent wrote reaches the page as markup; JSON indented; a
diff's lines marked added or removed.
"""

from __future__ import annotations

import json
import re
from html import escape

from markupsafe import Markup

_INLINE = [(re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
           (re.compile(r"\*\*([^*]+)\*\*"), r"<strong>\1</strong>"),
           (re.compile(r"(?<![*\w])\*([^*\s][^*]*)\*(?!\w)"), r"<em>\1</em>")]


def _inline(line: str) -> str:
    text = escape(line)
    for pattern, replacement in _INLINE:
        text = pattern.sub(replacement, text)
    return text


def markdown(source: str) -> Markup:
    out: list[str] = []
    paragraph: list[str] = []
    listing = False
    fence: list[str] | None = None

    def flush() -> None:
        nonlocal listing
        if paragraph:
            out.append("<p>" + " ".join(paragraph) + "</p>")
            paragraph.clear()
        if listing:
            out.append("</ul>")
            listing = False

    for line in source.splitlines():
        if fence is not None:
            if line.startswith("```"):
                out.append("<pre><code>" + escape("\n".join(fence)) + "</code></pre>")
                fence = None
            else:
                fence.append(line)
            continue
        heading = re.match(r"(#{1,6})\s+(.*)", line)
        item = re.match(r"\s*[-*+]\s+(.*)", line)
        if line.startswith("```"):
            flush()
            fence = []
        elif heading:
            flush()
            level = min(len(heading.group(1)) + 1, 6)  # the page holds the h1
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif item:
            if paragraph:
                flush()
            if not listing:
                out.append("<ul>")
                listing = True
            out.append(f"<li>{_inline(item.group(1))}</li>")
        elif not line.strip():
            flush()
        else:
            paragraph.append(_inline(line))
    if fence is not None:
        out.append("<pre><code>" + escape("\n".join(fence)) + "</code></pre>")
    flush()
    return Markup("\n".join(out))


def pretty_json(source: str) -> str:
    try:
        return json.dumps(json.loads(source), indent=2, ensure_ascii=False)
    except ValueError:
        return source  # shown as written when it does not parse


def diff(source: str) -> Markup:
    lines = []
    for line in source.splitlines():
        kind = ("add" if line.startswith("+") and not line.startswith("+++") else
                "del" if line.startswith("-") and not line.startswith("---") else
                "hunk" if line.startswith("@@") else "ctx")
        lines.append(f'<span class="d-{kind}">{escape(line)}</span>')
    return Markup("<pre class=\"diff\">" + "\n".join(lines) + "</pre>")
