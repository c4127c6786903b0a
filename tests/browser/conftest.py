"""The browser tests run on the integration tests' databases (a migrated template, one
copy per test)."""

from __future__ import annotations

from ..integration.conftest import admin_dsn, dsn, repo, store, template_db

__all__ = ["admin_dsn", "dsn", "repo", "store", "template_db"]
