"""The Anthropic Messages API as Claude Code uses it: ``POST /v1/messages?beta=true``,
streamed.

A reply is the event sequence message_start, then per content block
content_block_start / content_block_delta (``text_delta`` or
``input_json_delta``) / content_block_stop, message_delta (``stop_reason``
``tool_use`` or ``end_turn``), message_stop. The results of tool calls come back
in the next request as ``tool_result`` blocks of a user message.
"""

from __future__ import annotations

import json
from typing import Any

from ..script import Edit, Mcp, Read, Shell, Skill, Turn, Write, mcp_tool
from .server import Api, Reply, ToolResult, sse

MODEL = "claude-fake"


def _tool(call: Any, offered: list[str]) -> tuple[str, dict[str, Any]]:
    if isinstance(call, Mcp):
        return mcp_tool(offered, call.name), call.arguments
    if isinstance(call, Skill):
        return "Skill", {"skill": call.name}
    if isinstance(call, Read):
        return "Read", {"file_path": call.path}
    if isinstance(call, Write):
        return "Write", {"file_path": call.path, "content": call.content}
    if isinstance(call, Edit):
        return "Edit", {"file_path": call.path, "old_string": call.old, "new_string": call.new}
    if isinstance(call, Shell):
        return "Bash", {"command": call.command, "description": "Run a striatum command"}
    raise TypeError(call)


class Anthropic(Api):
    vendor = "claude"

    def role(self, method: str, path: str, body: Any) -> str:
        route = path.split("?")[0]
        if method == "POST" and route == "/v1/messages/count_tokens":
            return "side"
        if method == "POST" and route == "/v1/messages" and isinstance(body, dict):
            return "conversation" if body.get("tools") else "side"
        return "unknown"

    def model_turns(self, body: Any) -> int:
        return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")

    def answer(self, turn: Turn, number: int, body: Any) -> Reply:
        events: list[tuple[str | None, Any]] = [("message_start", {
            "type": "message_start",
            "message": {"id": f"msg_fake_{number}", "type": "message", "role": "assistant",
                        "model": body.get("model", MODEL), "content": [], "stop_reason": None,
                        "stop_sequence": None,
                        "usage": {"input_tokens": 1, "output_tokens": 1}}})]
        blocks: list[tuple[dict[str, Any], dict[str, Any]]] = []
        if turn.text:
            blocks.append(({"type": "text", "text": ""},
                           {"type": "text_delta", "text": turn.text}))
        offered = [t.get("name", "") for t in body.get("tools") or []]
        for k, call in enumerate(turn.calls):
            name, arguments = _tool(call, offered)
            blocks.append(({"type": "tool_use", "id": f"toolu_fake_{number}_{k}", "name": name,
                            "input": {}},
                           {"type": "input_json_delta", "partial_json": json.dumps(arguments)}))
        for index, (start, delta) in enumerate(blocks):
            events += [
                ("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": start}),
                ("content_block_delta", {"type": "content_block_delta", "index": index,
                                         "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": index})]
        events += [
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn" if turn.final else "tool_use",
                                         "stop_sequence": None},
                               "usage": {"output_tokens": 1}}),
            ("message_stop", {"type": "message_stop"})]
        return Reply(200, sse(events), "text/event-stream")

    def side(self, method: str, path: str, body: Any) -> Reply:
        if path.startswith("/v1/messages/count_tokens"):
            return Reply.json({"input_tokens": 1})
        text = "ok"
        if isinstance(body, dict) and body.get("stream"):
            return self.answer(Turn((), text), 0, body)
        return Reply.json({"id": "msg_fake_side", "type": "message", "role": "assistant",
                           "model": body.get("model", MODEL) if isinstance(body, dict) else MODEL,
                           "content": [{"type": "text", "text": text}],
                           "stop_reason": "end_turn", "stop_sequence": None,
                           "usage": {"input_tokens": 1, "output_tokens": 1}})

    @staticmethod
    def results(body: Any) -> list[ToolResult]:
        names: dict[str, str] = {}
        found: list[ToolResult] = []
        for message in body.get("messages", []):
            content = message.get("content")
            if not isinstance(content, list):
                continue
            for block in content:
                if block.get("type") == "tool_use":
                    names[block["id"]] = block["name"]
                elif block.get("type") == "tool_result":
                    output = block.get("content")
                    if isinstance(output, list):
                        output = "\n".join(part.get("text", "") for part in output)
                    found.append(ToolResult(block["tool_use_id"],
                                            names.get(block["tool_use_id"], "?"),
                                            str(output or ""), bool(block.get("is_error"))))
        return found
