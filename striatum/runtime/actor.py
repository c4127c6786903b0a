"""Who a caller is, as the audit rows name it.

Standard library only: a command routed through the daemon names its caller in
the envelope without importing the audit's machinery.
"""

from __future__ import annotations

import os

# The variable an operator's session sets to state its model (``job claim --model``'s
# default, and the MCP server's for ``job_claim``): striatum never guesses a model.
MODEL_VARIABLE = "STRIATUM_MODEL"


def default_actor() -> str:
    """Who is calling: STRIATUM_ACTOR when set, else user@host."""
    configured = os.environ.get("STRIATUM_ACTOR")
    if configured:
        return configured
    return f"{_user()}@{_host()}"


def default_owner() -> str:
    """Who holds a lease when the claimer names no one: user@host:pid."""
    return f"{os.environ.get('USER', 'agent')}@{_host()}:{os.getpid()}"


def _user() -> str:
    # getpass.getuser's own lookup, without importing getpass (and contextlib with it:
    # ~3 ms of a routed command's start).
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        found = os.environ.get(name)
        if found:
            return found
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except (ImportError, KeyError, OSError):
        return "unknown"


def _host() -> str:
    # The C module's: ``socket`` itself imports enum and selectors.
    from _socket import gethostname

    return gethostname()
