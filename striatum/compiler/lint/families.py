"""Which model family a lane's model belongs to, for the co-blindness rule STR319.

Two models of one family are trained alike and share blind spots, whatever
their size or version: a reviewer on ``claude-opus-4-1`` judging work done on
``claude-sonnet-4-5`` is hardly a second opinion. The family is read from the
model a lane's command names (``--model``/``-m``); a lane that names none runs
its program's default, whose family the program tells. docs/lint-rules.md
shows the same tables (a test keeps them equal).
"""

from __future__ import annotations

import re

from .vendors import Agent

# (pattern, family), tried in order on the model name in lower case: the first
# pattern that matches from the start wins. A name routed through a gateway
# ("openrouter/anthropic/claude-...") is tried again after each "/".
MODEL_FAMILIES: tuple[tuple[str, str], ...] = (
    (r"(anthropic/|claude|opus|sonnet|haiku)", "claude"),
    (r"(openai/|gpt|chatgpt|codex|o[1-9]([-.]|$))", "openai"),
    (r"(google/|gemini|gemma)", "gemini"),
    (r"(meta-llama/|meta/|llama)", "llama"),
    (r"(mistralai/|mistral|codestral|devstral|magistral)", "mistral"),
    (r"(deepseek)", "deepseek"),
    (r"(qwen/|qwen|qwq)", "qwen"),
    (r"(x-ai/|xai/|grok)", "grok"),
)

# The family a program runs when its lane names no model (the vendor's default).
PROGRAM_FAMILIES: dict[str, str] = {"claude": "claude", "codex": "openai", "gemini": "gemini"}

_COMPILED = tuple((re.compile(pattern), family) for pattern, family in MODEL_FAMILIES)


def family_of_model(model: str) -> str | None:
    """The family a model name belongs to, or None when the table does not know it."""
    parts = model.strip().lower().split("/")
    for start in range(len(parts)):
        name = "/".join(parts[start:])
        for pattern, family in _COMPILED:
            if pattern.match(name):
                return family
    return None


def family_of(agent: Agent) -> str | None:
    """The family an agent runs: its model's, else its program's default."""
    if agent.model is not None:
        return family_of_model(agent.model)
    return PROGRAM_FAMILIES.get(agent.program)
