"""The Gemini API as Gemini CLI uses it: ``POST /v1beta/models/MODEL:streamGenerateContent
?alt=sse`` for the conversation, ``:generateContent`` for side requests.

A streamed reply is SSE ``data:`` lines, each a GenerateContentResponse whose
candidate's content holds ``text`` or ``functionCall`` parts. Before the first
turn the CLI asks a router which model should answer (``generateContent`` with
a ``responseJsonSchema``, a complexity score); the fake answers any such side
request with the smallest document its schema accepts. Tool results come back
as ``functionResponse`` parts of the next request's last user content.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..script import Edit, Mcp, Read, Shell, Skill, Turn, Write, mcp_tool
from .server import Api, Reply, ToolResult, sse

_ROUTE = re.compile(r"^/v1(?:beta|alpha)?/models/(?P<model>[^:/]+):(?P<verb>\w+)$")


def _tool(call: Any, offered: list[str]) -> tuple[str, dict[str, Any]]:
    if isinstance(call, Mcp):
        return mcp_tool(offered, call.name), call.arguments
    if isinstance(call, Skill):
        return "activate_skill", {"name": call.name}
    if isinstance(call, Read):
        return "read_file", {"file_path": call.path}
    if isinstance(call, Write):
        return "write_file", {"file_path": call.path, "content": call.content}
    if isinstance(call, Edit):
        return "replace", {"file_path": call.path, "old_string": call.old,
                           "new_string": call.new, "instruction": "Make the change."}
    if isinstance(call, Shell):
        return "run_shell_command", {"command": call.command,
                                     "description": "Run a striatum command"}
    raise TypeError(call)


def instance(schema: dict[str, Any]) -> Any:
    """The smallest document ``schema`` (the API's JSON Schema subset) accepts."""
    if schema.get("enum"):
        return schema["enum"][0]
    kind = str(schema.get("type", "object")).lower()
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: instance(properties.get(name, {}))
                for name in schema.get("required", list(properties))}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return False
    return "fake"


def _response(parts: list[dict[str, Any]], model: str) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts},
                            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1,
                              "totalTokenCount": 2},
            "modelVersion": model}


class Gemini(Api):
    vendor = "gemini"

    def role(self, method: str, path: str, body: Any) -> str:
        found = _ROUTE.match(path.split("?")[0])
        if method != "POST" or not found or not isinstance(body, dict):
            return "unknown"
        if found["verb"] == "streamGenerateContent" and body.get("tools"):
            return "conversation"
        return "side"

    def model_turns(self, body: Any) -> int:
        return sum(1 for c in body.get("contents", []) if c.get("role") == "model")

    def answer(self, turn: Turn, number: int, body: Any) -> Reply:
        parts: list[dict[str, Any]] = []
        if turn.text:
            parts.append({"text": turn.text})
        offered = [d.get("name", "") for t in body.get("tools") or []
                   for d in t.get("functionDeclarations") or []]
        for k, call in enumerate(turn.calls):
            name, arguments = _tool(call, offered)
            parts.append({"functionCall": {"id": f"call_fake_{number}_{k}", "name": name,
                                           "args": arguments}})
        return Reply(200, sse([(None, _response(parts, "gemini-fake"))]), "text/event-stream")

    def side(self, method: str, path: str, body: Any) -> Reply:
        found = _ROUTE.match(path.split("?")[0])
        verb = found["verb"] if found else ""
        if verb == "countTokens":
            return Reply.json({"totalTokens": 1})
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        text = json.dumps(instance(schema)) if schema else "ok"
        document = _response([{"text": text}], found["model"] if found else "gemini-fake")
        if verb == "streamGenerateContent":
            return Reply(200, sse([(None, document)]), "text/event-stream")
        return Reply.json(document)

    @staticmethod
    def results(body: Any) -> list[ToolResult]:
        found: list[ToolResult] = []
        for content in body.get("contents", []):
            for part in content.get("parts", []):
                response = part.get("functionResponse")
                if not response:
                    continue
                said = response.get("response") or {}
                error = "error" in said
                output = said.get("error") if error else said.get("output", said)
                found.append(ToolResult(str(response.get("id", "")), response.get("name", "?"),
                                        output if isinstance(output, str)
                                        else json.dumps(output), error))
        return found
