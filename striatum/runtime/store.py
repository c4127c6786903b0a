"""The database boundary: connections, transactions with retry, and error conversion.

Every psycopg error crosses ``wrap_errors`` and comes out as a striatum error
(``StoreUnavailable`` when the server cannot be reached, ``StoreError``
otherwise), so no driver exception reaches a caller. Transactions that lose
a serialization race or a deadlock (40001 / 40P01) are retried a bounded
number of times; anything else is not retried.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import EXIT_STORE_UNAVAILABLE, StriatumError
from .sql import query

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")
RETRYABLE = frozenset({"40001", "40P01"})
MAX_RETRIES = 8


class StoreUnavailable(StriatumError):
    exit_code = EXIT_STORE_UNAVAILABLE
    code = "store_unavailable"


class StoreError(StriatumError):
    code = "store_error"


class RetriesExhausted(StoreError):
    code = "retries_exhausted"


def _unreachable(exc: BaseException) -> bool:
    """A lost or refused connection (not a server's answer to a statement)."""
    import psycopg

    state = getattr(exc, "sqlstate", None)
    if state is None:
        return isinstance(exc, psycopg.OperationalError)
    # 08: connection exception; 57P01-03: the server is shutting down or starting.
    return state.startswith("08") or state in ("57P01", "57P02", "57P03")


@contextmanager
def wrap_errors() -> Iterator[None]:
    """The one boundary where psycopg's errors become striatum's.

    psycopg counts deadlocks and serialization failures as OperationalError
    too; they are answers from a working server, so they stay StoreErrors
    (with their SQLSTATE) and ``Store.transaction`` retries them.
    """
    import psycopg

    try:
        yield
    except psycopg.Error as exc:
        if _unreachable(exc):
            raise StoreUnavailable(
                f"cannot reach PostgreSQL: {_first_line(exc)}",
                hint="check --dsn / STRIATUM_DSN, or run `striatum db status`") from exc
        raise StoreError(f"database error: {_first_line(exc)}",
                         sqlstate=getattr(exc, "sqlstate", None)) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Store:
    """One connection, used by one command or one worker thread."""

    dsn: str
    conn: psycopg.Connection[Any]
    runtime_role: bool = False
    retries: int = 0  # transactions retried over this store's life (for figures)
    _now: Any = field(default=None, repr=False)

    @classmethod
    def connect(cls, dsn: str, *, as_runtime: bool = True, timeout: int = 10) -> Store:
        return cls.adopt(dsn, open_connection(dsn, timeout), as_runtime=as_runtime)

    @classmethod
    def adopt(cls, dsn: str, conn: psycopg.Connection[Any], *, as_runtime: bool = True
              ) -> Store:
        """A store on a connection opened already (e.g. one that was first used to check
        the schema): switched to the runtime role when the server has it."""
        role = False
        try:
            if as_runtime:
                with wrap_errors():
                    row = conn.execute(query("runtime_role_usable")).fetchone()
                    if row and row[0]:
                        conn.execute(query("set_runtime_role"))
                        role = True
        except BaseException:
            conn.close()
            raise
        return cls(dsn, conn, role)

    def close(self) -> None:
        with wrap_errors():
            self.conn.close()

    def transaction(self, work: Callable[[psycopg.Cursor[Any]], T], *,
                    pipelined: bool = False) -> T:
        """Run ``work`` in one transaction, retrying it on 40001/40P01.

        ``pipelined``: BEGIN travels with the first read and every write after the
        last read travels with the COMMIT (psycopg's pipeline mode), so ``work``
        must ``send`` its writes and ``fetch`` only statements that return rows.
        """
        if pipelined:
            return self._retrying(lambda: self._pipelined(work))

        def once() -> T:
            with wrap_errors(), self.conn.transaction(), self.conn.cursor() as cur:
                return work(cur)

        return self._retrying(once)

    def call(self, name: str, params: dict[str, Any]) -> list[Any]:
        """One statement that is a whole transaction (autocommit: one round trip, the
        commit included), retried on 40001/40P01 like any transaction."""
        return self._retrying(lambda: self.execute(name, params))

    def _retrying(self, once: Callable[[], T]) -> T:
        import psycopg

        attempt = 0
        while True:
            try:
                return once()
            except StoreError as exc:
                cause = exc.__cause__
                state = cause.sqlstate if isinstance(cause, psycopg.Error) else None
                if state not in RETRYABLE:
                    raise
                attempt += 1
                self.retries += 1
                if attempt > MAX_RETRIES:
                    raise RetriesExhausted(
                        f"gave up after {MAX_RETRIES} retries of a conflicting transaction",
                        hint="the database is heavily contended; try again") from exc
                time.sleep(min(0.2, 0.002 * 2 ** attempt) * random.random())

    def _pipelined(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        # psycopg's own transaction block syncs at BEGIN and before COMMIT (two more
        # round trips), so the block is spelled out here.
        from psycopg import pq

        conn = self.conn
        try:
            with wrap_errors(), conn.pipeline(), conn.cursor() as cur:
                cur.execute(query("begin"))
                result = work(cur)
                cur.execute(query("commit"))
            return result
        finally:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE and not conn.closed:
                try:
                    # psycopg's own rollback also forgets (and deallocates) the statements
                    # it prepared: a Parse skipped by an aborted pipeline must not be
                    # taken for a prepared statement later.
                    conn.rollback()
                except Exception:  # noqa: BLE001 - the first error is the one to report
                    pass

    def execute(self, name: str, params: dict[str, Any] | None = None) -> list[Any]:
        """One query outside any explicit transaction (autocommit)."""
        with wrap_errors(), self.conn.cursor() as cur:
            cur.execute(query(name), params or {})
            return cur.fetchall() if _rows_came(cur) else []


def open_connection(dsn: str, timeout: int = 10) -> psycopg.Connection[Any]:
    """An autocommit connection, errors converted."""
    import psycopg

    with wrap_errors():
        return psycopg.connect(dsn, autocommit=True, application_name="striatum",
                               connect_timeout=timeout)


def _rows_came(cur: psycopg.Cursor[Any]) -> bool:
    """Whether the answer in hand is rows: psycopg's ``description`` test without the
    Column objects it builds, which cost more than the rest of a short statement."""
    from psycopg import pq

    res = cur.pgresult
    return res is not None and (res.nfields > 0 or res.status == pq.ExecStatus.TUPLES_OK)


def fetch(cur: psycopg.Cursor[Any], name: str, params: dict[str, Any] | None = None
          ) -> list[Any]:
    """Run a statement and return its rows ([] for one that returns none)."""
    cur.execute(query(name), params or {})
    if cur.pgresult is not None and not _rows_came(cur):
        return []  # answered, and not with rows
    # Pipelined, the answer is not here yet: fetching waits for it.
    return cur.fetchall()


def fetch_together(cur: psycopg.Cursor[Any], *statements: tuple[str, dict[str, Any]]
                   ) -> list[list[Any]]:
    """The rows of several reads. Pipelined, they travel in one round trip: all are sent
    before any is read. The first runs on ``cur`` itself; each starts after the one
    before it has finished, so a read placed after a lock sees what committed meanwhile."""
    extra = [cur.connection.cursor() for _ in statements[1:]]
    try:
        cursors = [cur, *extra]
        for each, (name, params) in zip(cursors, statements, strict=True):
            each.execute(query(name), params)
        return [each.fetchall() for each in cursors]
    finally:
        for each in extra:
            each.close()


def send(cur: psycopg.Cursor[Any], name: str, params: dict[str, Any] | None = None) -> None:
    """Run a statement whose answer is not needed; pipelined, it does not wait."""
    cur.execute(query(name), params or {})


def fetch_one(cur: psycopg.Cursor[Any], name: str, params: dict[str, Any] | None = None
              ) -> Any:
    rows = fetch(cur, name, params)
    return rows[0] if rows else None
