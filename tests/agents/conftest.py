"""The conformance tests' fixtures: a database the sandbox can reach, a bench per test.

Every test here is marked ``agents``, and skipped with one line saying why when
its CLIs are not installed (``make agent-clis``) or no empty network namespace can
be made. The database is the integration suite's (a migrated template, one copy
per test) on the embedded server, which listens on a UNIX socket only; a
STRIATUM_TEST_DSN that reaches its server over TCP cannot be used from inside
the sandbox's own network namespace, and the tests skip, saying so. (Run as root,
a server of STRIATUM_TEST_DSN must keep its socket in a folder that is not
another user's 0700 one: codex's sandbox drops root's CAP_DAC_OVERRIDE.)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import conftest as integration

from .harness import HOMES, Bench, missing_cli, over_unix_socket, sandbox_refused
from .lanes import VENDORS

HERE = Path(__file__).resolve().parent

# The integration suite's database fixtures, on the admin DSN below.
template_db = integration.template_db
dsn = integration.dsn


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.agents)
        params = getattr(item, "callspec", None)
        # A parameter is a vendor's name, or holds the vendors it runs (``vendors``).
        vendors = sorted({v for value in params.params.values()
                          for v in (value, *getattr(value, "vendors", ())) if v in VENDORS}) \
            if params is not None else []
        reason = sandbox_refused() or next(
            (why for why in map(missing_cli, vendors) if why), None)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    configured = os.environ.get("STRIATUM_TEST_DSN")
    if configured:
        if not over_unix_socket(configured):
            pytest.skip("STRIATUM_TEST_DSN reaches PostgreSQL over TCP, which the sandbox's "
                        "empty network namespace cannot: name a UNIX socket (host=/path) or "
                        "unset it to use the embedded server")
        yield configured
        return
    base = Path(tempfile.mkdtemp(prefix="striatum-agents-"))
    os.chmod(base, 0o755)  # the embedded server may run as its own system user
    try:
        with integration.embedded_server(base) as admin:
            yield admin
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def agent_homes() -> Iterator[None]:
    """The CLIs' homes (``harness._homes``: outside /tmp, for codex) go with the session."""
    yield
    shutil.rmtree(HOMES, ignore_errors=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    return path


@pytest.fixture
def bench(dsn: str, tmp_path: Path, repo: Path) -> Iterator[Bench]:
    opened = Bench(dsn, tmp_path, repo)
    try:
        yield opened
    finally:
        opened.close()
