"""A client of the daemon's socket: one verb call, one request line, one answer line.

Standard library only (no psycopg, no registry, no jsonschema), so that a command
routed through the daemon starts as fast as Python and click allow. A refusal or a
failure comes back as the striatum error the daemon raised, with the same stable
code and exit code (``RemoteError``); a daemon that cannot be reached, or that
went away before answering, is ``DaemonUnavailable`` (exit 6).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
from pathlib import Path
from typing import Any, Literal

from ..errors import EXIT_INTERNAL, DaemonUnavailable, StriatumError
from . import protocol
from .place import RuntimeDir, check_socket_path, runtime_dir

Holding = Literal["principal", "viewer", "none"]


class RemoteError(StriatumError):
    """A striatum error the daemon answered with: its code, exit code, hint and details."""

    def __init__(self, data: dict[str, Any], rpc_code: int) -> None:
        details = data.get("details")
        super().__init__(str(data.get("message", "")), hint=data.get("hint"),
                         **(details if isinstance(details, dict) else {}))
        self.code = str(data.get("code", "internal"))
        exit_code = data.get("exit")
        self.exit_code = exit_code if isinstance(exit_code, int) else EXIT_INTERNAL
        self.rpc_code = rpc_code


def read_token(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


class Client:
    """Calls on one connection, opened on the first call and kept until ``close``. Not
    for sharing between threads: give each thread a client of its own."""

    def __init__(self, place: RuntimeDir | None = None, *, holding: Holding = "principal",
                 token: str | None = None, actor: str | None = None,
                 repo: str | None = None, cwd: str | None = None,
                 timeout: float = 300.0, socket_path: Path | None = None) -> None:
        # A socket named outright (a lane's: its worker's) has no runtime folder and no
        # token file: such a client holds what it presents in the parameters (a lease).
        self.socket_path = socket_path
        self.place = place or runtime_dir() if socket_path is None else place
        self.holding = holding
        self._token_given = token is not None
        # Relative paths in the parameters are the caller's, not the daemon's.
        self.envelope: dict[str, Any] = {"cwd": cwd or os.getcwd()}
        for key, value in (("token", token), ("actor", actor), ("repo", repo)):
            if value is not None:
                self.envelope[key] = value
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._sock: socket.socket | None = None
        self._lines: Any = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sock is not None:
            self._lines.close()
            self._sock.close()
            self._sock, self._lines = None, None

    def connect(self) -> Client:
        """Connect now rather than at the first call (``DaemonUnavailable`` when no daemon
        answers), so that a caller can choose another way before it asks anything."""
        if self._sock is None:
            self._connect()
        return self

    def _connect(self) -> None:
        if not self._token_given and self.holding != "none" and self.place is not None:
            # Read at each connection: a daemon that restarted issued new tokens.
            token = read_token(self.place.client_token if self.holding == "principal"
                               else self.place.viewer_token)
            if token is None:
                self.envelope.pop("token", None)
            else:
                self.envelope["token"] = token
        where = check_socket_path(self.socket_path or self._place().socket)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(where)
        except OSError as exc:
            sock.close()
            raise DaemonUnavailable(
                f"no daemon answers at {where}: {exc.strerror or exc}",
                hint="`striatum daemon start` starts it") from exc
        self._sock, self._lines = sock, sock.makefile("rb")

    def _place(self) -> RuntimeDir:
        assert self.place is not None
        return self.place

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """The verb's result document, or its error raised."""
        if self._sock is None:
            self._connect()
        assert self._sock is not None
        ident = next(self._ids)
        try:
            self._sock.sendall(protocol.request(ident, method, params or {}, self.envelope))
            line = self._lines.readline()  # an answer may be longer than a request may
        except OSError as exc:
            self.close()
            raise unanswered(method, exc) from exc
        if not line:
            self.close()
            raise unanswered(method)
        answer = json.loads(line)
        if "error" in answer:
            if answer.get("id") is None:  # the daemon could not read the request: it hung up
                self.close()
            raise refusal(answer)
        return answer["result"]


def unanswered(method: str, exc: OSError | None = None) -> DaemonUnavailable:
    """The error of a call the daemon did not answer: it went away (``exc``: how)."""
    said = (f"the daemon did not answer {method}: {exc}" if exc is not None else
            f"the daemon closed the connection before answering {method} (it stopped, or "
            "was killed)")
    return DaemonUnavailable(said, hint="a call that got no answer may have been applied: "
                                        "look (e.g. `run status`) before trying again")


def in_lane(exc: DaemonUnavailable) -> DaemonUnavailable:
    """``exc`` as a lane's call says it: the socket is its worker's, not the daemon's."""
    return DaemonUnavailable(
        f"{exc.message} (the lane's socket, $STRIATUM_SOCKET)",
        hint="the worker that started this lane serves it: it stopped, or this is not its "
             "lane; a call that got no answer may have been applied")


def refusal(answer: dict[str, Any]) -> RemoteError:
    """The striatum error an error answer carries."""
    error = answer["error"]
    data = error.get("data") or {"message": error.get("message", "")}
    return RemoteError(data, int(error.get("code", protocol.INTERNAL_ERROR)))


def call(method: str, params: dict[str, Any] | None = None, *,
         holding: Holding = "principal", place: RuntimeDir | None = None) -> Any:
    """One call on a connection of its own."""
    with Client(place, holding=holding) as client:
        return client.call(method, params)
