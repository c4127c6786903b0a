"""The web face's boundary: a loopback address only, a Host header that names it (a page
a foreign site loads through DNS rebinding names the foreign host), and a CSRF token for
every change, derived from the principal's secret and the browser's session.

The secret is the daemon's ``client-token`` when a daemon holds the runtime folder (one
principal credential for both faces), else one this server makes at start and keeps in
``web-token`` (mode 0600) while it runs.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from pathlib import Path

from ..errors import UsageError
from ..server.place import RuntimeDir, prepare, running, write_secret

LOOPBACK_NAMES = ("localhost",)


def check_loopback(host: str) -> None:
    """Refuse a bind address that is not loopback, saying why."""
    if host in LOOPBACK_NAMES:
        return
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise UsageError(
            f"--host {host}: the web UI listens on a loopback address only",
            hint="whoever reaches it reads every run, and with --allow-mutations acts as "
                 "you; use --host 127.0.0.1 (or ::1, localhost), and an SSH tunnel "
                 "(ssh -L) to reach it from another machine")


def check_port(host: str, port: int) -> None:
    """Refuse at once, saying so, a port another process listens on (rather than start,
    open the database, and let the server fail to bind)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family) as probe:
            # As uvicorn binds: a port a stopped server left in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise UsageError(f"--port {port}: cannot listen on {host}:{port}: {exc.strerror}",
                         hint="another server holds it; pass another --port") from exc


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host header values a browser sends for this server, and no other."""
    names = {host, "127.0.0.1", "localhost"} if host != "::1" else {"[::1]", "localhost"}
    if ":" in host and not host.startswith("["):
        names = {f"[{host}]", "localhost"}
    return frozenset(f"{name}:{port}" for name in names) | (
        frozenset(names) if port == 80 else frozenset())


def principal_secret(place: RuntimeDir) -> tuple[str, Path | None]:
    """The principal's secret and, when this server made it, the file to remove at exit."""
    if running(place) is not None and place.client_token.is_file():
        return place.client_token.read_text(encoding="ascii").strip(), None
    prepare(place)
    secret = secrets.token_hex(32)
    path = place.path / "web-token"
    write_secret(path, secret)
    return secret, path


def csrf_token(secret: str, session: str) -> str:
    """The token a page of this browser session carries in its forms."""
    return hmac.new(secret.encode(), f"csrf:{session}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, session: str | None, presented: str | None) -> bool:
    if not session or not presented:
        return False
    return hmac.compare_digest(csrf_token(secret, session).encode(),
                               presented.encode("utf-8", "replace"))
