"""Who a caller is, as the audit rows name it.

Standard library only: a command routed through the daemon names its caller in
the envelope without importing the audit's machinery.
"""

from __future__ import annotations

import os


def default_actor() -> str:
    """Who is calling: STRIATUM_ACTOR when set, else user@host."""
    configured = os.environ.get("STRIATUM_ACTOR")
    if configured:
        return configured
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def default_owner() -> str:
    """Who holds a lease when the claimer names no one: user@host:pid."""
    import socket

    return f"{os.environ.get('USER', 'agent')}@{socket.gethostname()}:{os.getpid()}"
