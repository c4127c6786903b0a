"""The OpenAI Responses API as codex exec uses it: ``POST /v1/responses``, streamed.

A reply is the event sequence response.created, per output item
response.output_item.added and response.output_item.done, then
response.completed. What codex offers the model decides the tool calls: with
the default model it is one custom tool, ``exec`` (JavaScript that calls
``tools.apply_patch(patch)`` and ``tools.exec_command({cmd})``), listed in an
``additional_tools`` input item rather than in ``tools``; when ``apply_patch``
and ``exec_command`` are offered directly, the fake calls them directly. Tool
results come back as ``custom_tool_call_output`` / ``function_call_output``
input items of the next request.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import uuid
from typing import Any

from ..script import (
    SERVER,
    Call,
    Edit,
    Mcp,
    Read,
    Shell,
    Skill,
    Turn,
    Write,
    mcp_tool,
    strings,
)
from .server import Api, Reply, ToolResult, sse

_OURS = re.compile(r"fake_(\d+)_")
_CALLS = ("function_call", "custom_tool_call", "local_shell_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output", "local_shell_call_output")


def offered(body: dict[str, Any]) -> set[str]:
    """The names of the tools a request offers, namespaces flattened."""
    names: set[str] = set()
    stack = list(body.get("tools") or [])
    stack += [tool for item in body.get("input", []) if item.get("type") == "additional_tools"
              for tool in item.get("tools", [])]
    while stack:
        tool = stack.pop()
        if tool.get("type") == "namespace":
            stack += tool.get("tools", [])
        elif tool.get("name"):
            names.add(tool["name"])
    return names


def patch(call: Write | Edit) -> str:
    """The apply_patch text that makes ``call``'s change."""
    if isinstance(call, Write):
        lines = [f"+{line}" for line in call.content.splitlines()]
        return "\n".join(["*** Begin Patch", f"*** Add File: {call.path}", *lines,
                          "*** End Patch"]) + "\n"
    old = [f"-{line}" for line in call.old.splitlines()]
    new = [f"+{line}" for line in call.new.splitlines()]
    return "\n".join(["*** Begin Patch", f"*** Update File: {call.path}", "@@", *old, *new,
                      "*** End Patch"]) + "\n"


def _javascript(call: Call, tools: set[str]) -> str:
    """The ``exec`` program that makes one call through codex's nested tools."""
    if isinstance(call, Mcp):
        name = mcp_tool(sorted(tools), call.name)
        return (f"const result = await tools.{name}({json.dumps(call.arguments)});\n"
                "text(JSON.stringify(result));\n")
    if isinstance(call, Read):
        call = Shell(f"cat {shlex.quote(call.path)}")
    if isinstance(call, Write | Edit):
        invoke = f"tools.apply_patch({json.dumps(patch(call))})"
    elif isinstance(call, Shell):
        invoke = f"tools.exec_command({json.dumps({'cmd': call.command})})"
    else:
        raise TypeError(call)
    return (f"const result = await {invoke};\n"
            "text(typeof result === 'string' ? result : JSON.stringify(result));\n")


def _item(call: Call, call_id: str, tools: set[str]) -> dict[str, Any]:
    if "exec" in tools and not {"apply_patch", "exec_command"} <= tools:
        return {"type": "custom_tool_call", "id": f"ctc_{call_id}", "call_id": call_id,
                "name": "exec", "input": _javascript(call, tools), "status": "completed"}
    if isinstance(call, Mcp):
        return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id,
                "name": mcp_tool(sorted(tools), call.name),
                "arguments": json.dumps(call.arguments), "status": "completed"}
    if isinstance(call, Read):  # codex has no reading tool: it runs cat
        call = Shell(f"cat {shlex.quote(call.path)}")
    if isinstance(call, Write | Edit):
        return {"type": "custom_tool_call", "id": f"ctc_{call_id}", "call_id": call_id,
                "name": "apply_patch", "input": patch(call), "status": "completed"}
    if isinstance(call, Shell):
        return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id,
                "name": "exec_command", "arguments": json.dumps({"cmd": call.command}),
                "status": "completed"}
    raise TypeError(call)


# A turn that waits for the striatum MCP server: codex exec does not wait for it to start
# before the first turn (seen under load: the tools were not there yet), and a model calls
# only the tools it was told of. Its id is not a scripted turn's (``_OURS``), so the script
# goes on where it was; ``MAX_WAITS`` of them, and the fake calls the tool regardless.
WAIT = "call_wait_"
MAX_WAITS = 20


def _skill_file(call: Skill, body: dict[str, Any]) -> Call:
    """Codex lists each skill as ``- NAME: DESCRIPTION (file: rN/...)`` under a table of
    roots (``- `rN` = `PATH` ``): the model reads the file."""
    text = "\n".join(strings(body))
    listed = re.search(rf"^- {re.escape(call.name)}: .*\(file: (r\d+)/(\S+)\)$", text,
                       re.MULTILINE)
    if listed is None:
        return Read(f"[codex lists no skill {call.name}]")
    root = re.search(rf"^- `{listed.group(1)}` = `([^`]+)`$", text, re.MULTILINE)
    return Read(f"{root.group(1) if root else listed.group(1)}/{listed.group(2)}")


def _announced(body: dict[str, Any], tools: set[str]) -> bool:
    """Whether the request tells the model of the striatum MCP server's tools."""
    if any(name.startswith(f"mcp__{SERVER}__") for name in tools):
        return True
    return any(f"- mcp__{SERVER}: " in text for item in body.get("input", [])
               if item.get("type") == "message" for text in strings(item))


def _waits_for_server(turn: Turn, body: dict[str, Any], tools: set[str]) -> bool:
    if not any(isinstance(call, Mcp) for call in turn.calls) or _announced(body, tools):
        return False
    waited = sum(1 for item in body.get("input", []) if item.get("type") in _CALLS
                 and str(item.get("call_id", "")).startswith(WAIT))
    return waited < MAX_WAITS


def _wait_item() -> dict[str, Any]:
    call_id = f"{WAIT}{uuid.uuid4().hex[:12]}"
    return {"type": "custom_tool_call", "id": f"ctc_{call_id}", "call_id": call_id,
            "name": "exec", "status": "completed",
            "input": "await new Promise((done) => setTimeout(done, 500));\n"
                     "text('waited for the striatum MCP server');\n"}


class OpenAI(Api):
    vendor = "codex"

    def __init__(self) -> None:
        # What the server keeps of each response, as the real one does for
        # previous_response_id: the whole input it answered, then its output.
        self._history: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def role(self, method: str, path: str, body: Any) -> str:
        route = path.split("?")[0]
        if method in ("POST", "WEBSOCKET") and route == "/v1/responses" \
                and isinstance(body, dict):
            return "side" if body.get("generate") is False else "conversation"
        return "unknown"

    def websocket_request(self, message: Any) -> Any | None:
        """A ``response.create`` message as the whole request it continues: codex sends
        only the new input items, after the ``previous_response_id`` they follow."""
        if not isinstance(message, dict) or message.get("type") != "response.create":
            return None
        body = {k: v for k, v in message.items() if k != "type"}
        previous = body.get("previous_response_id")
        if previous:
            with self._lock:
                before = self._history.get(previous)
            if before is None:
                raise KeyError(f"no response {previous!r} to continue")
            body["input"] = before + list(body.get("input", []))
        return body

    def model_turns(self, body: Any) -> int:
        turns = set()
        for item in body.get("input", []):
            if item.get("type") in _CALLS:
                key = item.get("call_id", "")
            elif item.get("type") == "message" and item.get("role") == "assistant":
                key = item.get("id", "")
            else:
                continue
            found = _OURS.search(key or "")
            if found:
                turns.add(int(found.group(1)))
        return len(turns)

    def answer(self, turn: Turn, number: int, body: Any) -> Reply:
        tools = offered(body)
        items: list[dict[str, Any]] = []
        if turn.text:
            items.append({"type": "message", "id": f"msg_fake_{number}_0", "role": "assistant",
                          "status": "completed",
                          "content": [{"type": "output_text", "text": turn.text,
                                       "annotations": []}]})
        turn = Turn(tuple(_skill_file(c, body) if isinstance(c, Skill) else c
                          for c in turn.calls), turn.text)
        if _waits_for_server(turn, body, tools):
            items.append(_wait_item())
        else:
            items += [_item(call, f"call_fake_{number}_{k}", tools)
                      for k, call in enumerate(turn.calls)]
        response_id = f"resp_fake_{number}_{uuid.uuid4().hex[:12]}"
        with self._lock:
            self._history[response_id] = list(body.get("input", [])) + items
        response = {"id": response_id, "object": "response", "status": "in_progress",
                    "model": body.get("model", "gpt-fake"), "output": []}
        events: list[tuple[str | None, Any]] = [
            ("response.created", {"type": "response.created", "response": response})]
        for index, item in enumerate(items):
            events += [("response.output_item.added", {"type": "response.output_item.added",
                                                       "output_index": index, "item": item}),
                       ("response.output_item.done", {"type": "response.output_item.done",
                                                      "output_index": index, "item": item})]
        usage = {"input_tokens": 1, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 1, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": 2}
        events.append(("response.completed", {"type": "response.completed", "response": {
            **response, "status": "completed", "output": items, "usage": usage}}))
        return Reply(200, sse(events), "text/event-stream")

    def side(self, method: str, path: str, body: Any) -> Reply:
        """A warm-up (``generate: false``): a response with no output."""
        return self.answer(Turn(), 0, {**body, "input": body.get("input", [])})

    @staticmethod
    def results(body: Any) -> list[ToolResult]:
        names: dict[str, str] = {}
        found: list[ToolResult] = []
        for item in body.get("input", []):
            kind = item.get("type")
            if kind in _CALLS:
                names[item.get("call_id", "")] = item.get("name", kind)
            elif kind in _OUTPUTS:
                output = item.get("output")
                if isinstance(output, dict):  # {"content": ..., "success": ...}
                    error = output.get("success") is False
                    output = output.get("content", "")
                else:
                    error = False
                if isinstance(output, list):
                    output = "\n".join(part.get("text", "") for part in output
                                       if isinstance(part, dict))
                # The code-mode tool says how its program ended in its first line.
                error = error or str(output).startswith("Script failed")
                found.append(ToolResult(item.get("call_id", ""),
                                        names.get(item.get("call_id", ""), "?"),
                                        str(output), error))
        return found
