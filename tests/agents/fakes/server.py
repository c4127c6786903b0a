"""The HTTP side every fake shares: a threading server on 127.0.0.1 that reads a request,
asks its vendor's ``Api`` for the answer the script gives, and records both.

Each request is one JSON line of the record file: the method, path, headers and
body as received, what the fake made of it (``role``: the job's conversation or
a side request; the job, pass and turn) and what it answered. A request the
script cannot serve is answered with final text saying why and recorded with an
``error``, so a test fails on it instead of the CLI waiting forever.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import struct
import threading
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

from ..script import Contract, Script, ScriptError, Turn, find_contract, say


@dataclass
class Reply:
    status: int
    body: bytes
    content_type: str = "application/json"

    @classmethod
    def json(cls, document: Any, status: int = 200) -> Reply:
        return cls(status, json.dumps(document).encode())


@dataclass(frozen=True)
class ToolResult:
    """What a CLI sent back for one tool call: the call's id, the tool's name, its output
    as text, and whether the CLI marked it an error."""

    call_id: str
    tool: str
    output: str
    error: bool


@dataclass
class Exchange:
    """What the fake made of a request, and what it said."""

    role: str  # "conversation", "side" or "unknown"
    contract: Contract | None = None
    turn: int | None = None
    answer: Turn | None = None
    error: str | None = None

    def note(self, entry: dict[str, Any]) -> None:
        entry.update(role=self.role, error=self.error, turn=self.turn,
                     answer=self.answer.to_json() if self.answer else None)
        if self.contract is not None:
            entry.update(job=self.contract.job, on_pass=self.contract.on_pass,
                         attempt=self.contract.attempt)


class Api:
    """A vendor's model API, as far as its CLI uses it."""

    vendor: ClassVar[str]

    def role(self, method: str, path: str, body: Any) -> str:
        """"conversation" for a turn of the job's own conversation, "side" for another
        request the CLI makes (a router, a token count), "unknown" otherwise."""
        raise NotImplementedError

    def model_turns(self, body: Any) -> int:
        """How many times the model has spoken in the conversation the request carries."""
        raise NotImplementedError

    def answer(self, turn: Turn, number: int, body: Any) -> Reply:
        """The streamed reply that says ``turn`` (its calls already filled in)."""
        raise NotImplementedError

    def side(self, method: str, path: str, body: Any) -> Reply:
        raise NotImplementedError

    def unknown(self, method: str, path: str) -> Reply:
        return Reply.json({"error": {"message": f"the fake serves no {method} {path}"}}, 404)

    def stream_events(self, reply: Reply) -> list[bytes]:
        """A streamed reply as the messages a WebSocket sends (the SSE events' data)."""
        return [line[len(b"data: "):] for line in reply.body.splitlines()
                if line.startswith(b"data: ")]

    def websocket_request(self, message: Any) -> Any | None:
        """The request body a WebSocket message carries, or None to ignore the message."""
        return None

    @staticmethod
    def results(body: Any) -> list[ToolResult]:
        """The tool results the request carries, oldest first."""
        raise NotImplementedError


def _body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("transfer-encoding", "").lower() == "chunked":
        data = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return data
            data += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("content-length") or 0)
    data = handler.rfile.read(length) if length else b""
    encoding = handler.headers.get("content-encoding", "").lower()
    if encoding == "gzip":
        return gzip.decompress(data)
    if encoding == "deflate":
        return zlib.decompress(data)
    if encoding:
        raise ValueError(f"the fake cannot read a {encoding} body")
    return data


class Fake(ThreadingHTTPServer):
    """One vendor's fake, serving ``script`` and recording to ``record``."""

    daemon_threads = True

    def __init__(self, api: Api, script: Script, record: Path) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api = api
        self.script = script
        self.record = record
        self._lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A CLI that drops a kept-alive connection is not an error of the fake's."""

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> Fake:
        threading.Thread(target=self.serve_forever, name=f"fake-{self.api.vendor}",
                         daemon=True).start()
        return self

    def exchange(self, method: str, path: str, body: Any) -> tuple[Exchange, Reply]:
        api = self.api
        role = api.role(method, path, body)
        if role == "side":
            return Exchange(role), api.side(method, path, body)
        if role != "conversation":
            return Exchange(role, error=f"unexpected {method} {path}"), api.unknown(method, path)
        contract = find_contract(body)
        if contract is not None and contract.kind == "operator":
            contract = contract.learn([r.output for r in api.results(body)])
        number = api.model_turns(body)
        found = Exchange(role, contract, number)
        if contract is None:
            found.error = "no striatum contract in the request"
            turn = say(f"[fake {api.vendor}: {found.error}]")
        else:
            turns = self.script.answer(contract, api.vendor)
            if turns is None or number >= len(turns):
                found.error = (f"the script has no turn {number + 1} for {contract.job} "
                               f"pass {contract.on_pass}")
                turn = say(f"[fake {api.vendor}: {found.error}]")
            else:
                try:
                    turn = Turn(tuple(contract.resolve(c) for c in turns[number].calls),
                                turns[number].text)
                except ScriptError as exc:
                    found.error = str(exc)
                    turn = say(f"[fake {api.vendor}: {exc}]")
        found.answer = turn
        return found, api.answer(turn, number, body)

    def serve(self, entry: dict[str, Any], method: str, path: str, body: Any) -> Reply:
        """The reply to one request; ``entry`` (the request as received) is completed with
        what the fake made of it and recorded."""
        entry["body"] = body
        try:
            found, reply = self.exchange(method, path, body)
            found.note(entry)
        except Exception as exc:  # noqa: BLE001 - a fake's own bug is recorded, and answered
            entry.update(role="unknown", error=f"the fake failed: {type(exc).__name__}: {exc}")
            reply = Reply.json({"error": {"message": entry["error"]}}, 500)
        entry["status"] = reply.status
        self.note(entry)
        return reply

    def note(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock, open(self.record, "a", encoding="utf-8") as out:
            out.write(line)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Fake

    def _entry(self, method: str) -> dict[str, Any]:
        return {"vendor": self.server.api.vendor, "method": method, "path": self.path,
                "headers": dict(self.headers)}

    def _serve(self) -> None:
        if self.headers.get("upgrade", "").lower() == "websocket":
            self._websocket()
            return
        try:
            raw = _body(self)
        except (ValueError, OSError) as exc:  # an encoding the fake cannot read
            raw = f"[unreadable body: {exc}]".encode()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        reply = self.server.serve(self._entry(self.command), self.command, self.path, body)
        self.send_response(reply.status)
        self.send_header("content-type", reply.content_type)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    def _websocket(self) -> None:
        """A WebSocket (RFC 6455, no extensions): each message the API reads as a request
        is answered with its streamed reply, one message per event."""
        key = self.headers.get("sec-websocket-key", "")
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        api = self.server.api
        while (message := _read_message(self)) is not None:
            entry = self._entry("WEBSOCKET")
            try:
                body = api.websocket_request(json.loads(message))
            except (ValueError, KeyError) as exc:
                entry.update(body=message.decode("utf-8", "replace"), role="unknown",
                             error=f"unreadable message: {exc}", status=0)
                self.server.note(entry)
                _send_frame(self, 0x1, json.dumps({"type": "error",
                                                   "message": entry["error"]}).encode())
                continue
            if body is None:  # not a request: nothing to answer
                entry.update(body=message.decode("utf-8", "replace"), role="side", status=0)
                self.server.note(entry)
                continue
            reply = self.server.serve(entry, "WEBSOCKET", self.path, body)
            for event in api.stream_events(reply):
                _send_frame(self, 0x1, event)
        _send_frame(self, 0x8, b"")
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the record says it all


def sse(events: list[tuple[str | None, Any]]) -> bytes:
    """Server-sent events: each (name or None, data as JSON)."""
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        out.append(f"data: {json.dumps(data)}\n\n")
    return "".join(out).encode()

def _read_frame(handler: BaseHTTPRequestHandler) -> tuple[bool, int, bytes] | None:
    head = handler.rfile.read(2)
    if len(head) < 2:
        return None
    fin, opcode = bool(head[0] & 0x80), head[0] & 0x0F
    masked, length = bool(head[1] & 0x80), head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", handler.rfile.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", handler.rfile.read(8))[0]
    mask = handler.rfile.read(4) if masked else b"\0\0\0\0"
    data = bytearray(handler.rfile.read(length))
    for i in range(len(data)):
        data[i] ^= mask[i % 4]
    return fin, opcode, bytes(data)


def _read_message(handler: BaseHTTPRequestHandler) -> bytes | None:
    """The next text or binary message (answering pings); None once the peer closes."""
    parts: list[bytes] = []
    while True:
        frame = _read_frame(handler)
        if frame is None:
            return None
        fin, opcode, data = frame
        if opcode == 0x8:
            return None
        if opcode == 0x9:
            _send_frame(handler, 0xA, data)
            continue
        if opcode == 0xA:
            continue
        parts.append(data)
        if fin:
            return b"".join(parts)


def _send_frame(handler: BaseHTTPRequestHandler, opcode: int, data: bytes) -> None:
    length = len(data)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    handler.wfile.write(head + data)
    handler.wfile.flush()
