"""The daemon's socket protocol, shared by the daemon and its clients (docs/daemon.md).

JSON-RPC 2.0, one request or response per line (UTF-8 JSON with no raw newline,
ended by ``\\n``), at most ``MAX_FRAME`` bytes. A request may carry the envelope
``"striatum": {"protocol": 1, "token": ..., "actor": ..., "cwd": ..., "repo": ...}``
beside ``jsonrpc``, ``id``, ``method`` and ``params``; every response carries
``"striatum": {"protocol": 1}``. The method is a registry verb's name, the params
its parameters as an object.

Standard library only: a client imports neither psycopg nor the registry.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False  # typing itself is a few milliseconds of a routed command's start
if TYPE_CHECKING:
    from typing import Any

PROTOCOL = 1
MAX_FRAME = 1 << 20  # bytes in one line, its newline included

# JSON-RPC 2.0's own codes, and the two this protocol adds; the error object's ``data``
# holds striatum's stable error document ({"code", "message", "hint", "details", "exit"}).
PARSE_ERROR = -32700  # the line is not JSON
INVALID_REQUEST = -32600  # JSON, but not a request of this protocol (or a frame too large)
METHOD_NOT_FOUND = -32601  # no such verb
INVALID_PARAMS = -32602  # the parameters break the verb's schema
INTERNAL_ERROR = -32603  # a bug in striatum
CALL_FAILED = -32000  # the verb ran and refused or failed: data.code says how
FORBIDDEN = -32001  # the caller's capability does not permit the call


def encode(message: dict[str, Any]) -> bytes:
    # A lone surrogate (a request may hold one as a JSON escape, and an error may quote
    # it) goes out as the same escape: the line stays UTF-8.
    text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
    return text.encode("utf-8", "backslashreplace") + b"\n"


def request(id_: int | str | None, method: str, params: dict[str, Any],
            envelope: dict[str, Any]) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method,
                               "params": params,
                               "striatum": {"protocol": PROTOCOL, **envelope}}
    return encode(message)


def result(id_: Any, value: Any) -> bytes:
    return encode({"jsonrpc": "2.0", "id": id_, "result": value,
                   "striatum": {"protocol": PROTOCOL}})


def error(id_: Any, code: int, document: dict[str, Any]) -> bytes:
    """An error response; ``document`` is striatum's error document (``error``,
    ``message``, ``hint``, ``details``) with the exit code the CLI would give it."""
    data = {"code": document.get("error", "internal"), **{
        key: value for key, value in document.items() if key != "error"}}
    return encode({"jsonrpc": "2.0", "id": id_,
                   "error": {"code": code, "message": str(document.get("message", "")),
                             "data": data},
                   "striatum": {"protocol": PROTOCOL}})
