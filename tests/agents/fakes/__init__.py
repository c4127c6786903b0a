"""Fakes of the three model APIs, each driven by a ``Script`` and recording what it got."""

from __future__ import annotations

from .anthropic import Anthropic
from .gemini import Gemini
from .openai import OpenAI
from .server import Api, Fake, Reply, ToolResult

APIS: dict[str, type[Api]] = {"claude": Anthropic, "codex": OpenAI, "gemini": Gemini}

__all__ = ["APIS", "Api", "Fake", "Reply", "ToolResult"]
