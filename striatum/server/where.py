"""Where the home's daemon listens, and whether it serves a given database, as plain
paths (docs/daemon.md).

Standard library only, and none of typing, dataclasses or pathlib: the routed fast path
(``cli.fastpath``) looks here before it imports anything else. ``place.RuntimeDir``
names the same files.
"""

from __future__ import annotations

import os

RUNTIME_DIR = "run"  # under the striatum home
SOCKET = "daemon.sock"
DSN_DIGEST = "dsn-sha256"
CLIENT_TOKEN = "client-token"
VIEWER_TOKEN = "viewer-token"


def home_dir() -> str:
    """The striatum home, as ``runtime.embedded.home`` finds it."""
    configured = os.environ.get("STRIATUM_HOME")
    if configured:
        return os.path.realpath(os.path.expanduser(configured))
    import platformdirs

    return str(platformdirs.user_data_dir("striatum", appauthor=False))


def dsn_digest(dsn: str | None) -> str:
    # CPython's own sha256 where it has one: OpenSSL's, which hashlib loads, costs a
    # routed command a few milliseconds of its start for one short hash.
    import importlib

    for name in ("_sha2", "_sha256"):  # 3.12 and later; 3.11
        try:
            sha256 = importlib.import_module(name).sha256
            break
        except (ImportError, AttributeError):
            continue
    else:
        from hashlib import sha256
    return str(sha256((dsn or "").encode("utf-8", "surrogatepass")).hexdigest())


def serves(runtime_dir: str, dsn: str | None) -> bool:
    """Whether a daemon may listen in ``runtime_dir`` for the database ``dsn`` names (None:
    the home's default): its socket is there and, for a DSN, the daemon was started with
    it (the sha256 it wrote). Whether one answers, a connection tells."""
    if not os.path.exists(os.path.join(runtime_dir, SOCKET)):
        return False
    if not dsn:
        return True
    try:
        with open(os.path.join(runtime_dir, DSN_DIGEST), encoding="ascii") as found:
            served = found.read().strip()
    except (OSError, UnicodeDecodeError):
        return False
    return served == dsn_digest(dsn)
