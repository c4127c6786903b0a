"""The database boundary: connections, transactions with retry, and error conversion.

The connection is the store's own: every statement striatum runs goes through a
method here, inside ``wrap_errors``, so no psycopg exception reaches a caller
(``StoreUnavailable`` when the server cannot be reached, ``StoreError``
otherwise). Transactions that lose a serialization race or a deadlock
(40001 / 40P01) are retried a bounded number of times; anything else is not.

Rows are read by column name into the runtime's records (``records.py``) or as
plain tuples for the few scalar reads.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import RetriesExhausted, StoreError, StoreUnavailable
from .records import record_row
from .sql import query

if TYPE_CHECKING:
    import psycopg

    from .audit import Call

T = TypeVar("T")
RETRYABLE = frozenset({"40001", "40P01"})
MAX_RETRIES = 8

Read = tuple[str, dict[str, Any]] | tuple[str, dict[str, Any], type[Any]]
"""A statement to fetch: (query name, parameters[, the record type of its rows])."""


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


def sqlstate(exc: StoreError) -> str | None:
    """The SQLSTATE a StoreError carries (None for one no statement raised)."""
    state = exc.details.get("sqlstate")
    return str(state) if state else None


@dataclass
class Store:
    """One connection, used by one command or one worker thread, on behalf of ``actor``
    (who the audit rows name)."""

    dsn: str
    _conn: psycopg.Connection[Any] = field(repr=False)
    actor: str = ""
    runtime_role: bool = False
    retries: int = 0  # transactions retried over this store's life (for figures)
    audited: int = 0  # audit rows its verbs wrote (a face audits a call the core did not)
    # The verbs in progress on this store, innermost last (audit.verb).
    calls: list[Call] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if not self.actor:
            from .audit import default_actor

            self.actor = default_actor()

    @classmethod
    def connect(cls, dsn: str, *, as_runtime: bool = True, timeout: int = 10,
                actor: str = "") -> Store:
        return cls.adopt(dsn, open_connection(dsn, timeout), as_runtime=as_runtime,
                         actor=actor)

    @classmethod
    def adopt(cls, dsn: str, conn: psycopg.Connection[Any], *, as_runtime: bool = True,
              actor: str = "") -> Store:
        """A store on a connection opened already (e.g. one that was first used to check
        the schema): switched to the runtime role when the server has it."""
        try:
            role = as_runtime and use_runtime_role(conn)
        except BaseException:
            conn.close()
            raise
        return cls(dsn, conn, actor, role)

    @property
    def closed(self) -> bool:
        return bool(self._conn.closed)

    def close(self) -> None:
        with wrap_errors():
            self._conn.close()

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
            with wrap_errors(), self._conn.transaction(), self._conn.cursor() as cur:
                return work(cur)

        return self._retrying(once)

    def call(self, name: str, params: dict[str, Any]) -> list[Any]:
        """One statement that is a whole transaction (autocommit: one round trip, the
        commit included), retried on 40001/40P01 like any transaction."""
        return self._retrying(lambda: self.execute(name, params))

    def _retrying(self, once: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return once()
            except StoreError as exc:
                if sqlstate(exc) not in RETRYABLE:
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

        conn = self._conn
        try:
            with wrap_errors(), conn.pipeline(), conn.cursor() as cur:
                cur.execute(query("begin"))
                result = work(cur)
                cur.execute(query("commit"))
            return result
        finally:
            if conn.info.transaction_status != pq.TransactionStatus.IDLE and not conn.closed:
                # psycopg's own rollback also forgets (and deallocates) the statements it
                # prepared: a Parse skipped by an aborted pipeline must not be taken for a
                # prepared statement later. Its own failure is not the error to report.
                with contextlib.suppress(Exception):
                    conn.rollback()

    def execute(self, name: str, params: dict[str, Any] | None = None,
                record: type[T] | None = None) -> list[Any]:
        """One query outside any explicit transaction (autocommit); rows as ``record``s
        (by column name) when given."""
        with wrap_errors(), self._cursor(record) as cur:
            cur.execute(query(name), params or {}, binary=record is not None)
            return cur.fetchall() if _rows_came(cur) else []

    def read(self, record: type[T], name: str, params: dict[str, Any]) -> T | None:
        """The first row of a query as a ``record``, or None."""
        found = self.execute(name, params, record)
        return found[0] if found else None

    def _cursor(self, record: type[Any] | None) -> psycopg.Cursor[Any]:
        if record is None:
            return self._conn.cursor()
        return self._conn.cursor(row_factory=record_row(record))

    @contextmanager
    def snapshot(self, *settings: str) -> Iterator[None]:
        """One transaction around a series of reads (``rows``, ``stream``, ``execute``),
        its ``settings`` statements run first; a savepoint, settings left alone, when
        the caller holds a transaction open already."""
        from psycopg import pq

        idle = self._conn.info.transaction_status == pq.TransactionStatus.IDLE
        with wrap_errors(), self._conn.transaction():
            if idle:
                for name in settings:
                    self.execute(name)
            yield

    def rows(self, name: str, params: dict[str, Any] | None = None) -> list[Any]:
        """A query in a savepoint, so that its failure leaves the enclosing transaction
        usable."""
        with wrap_errors(), self._conn.transaction(), self._conn.cursor() as cur:
            cur.execute(query(name), params or {})
            return cur.fetchall()

    def stream(self, name: str, params: dict[str, Any], batch: int
               ) -> Generator[Any, None, None]:
        """The rows of a query through a server-side cursor, ``batch`` at a time, so a long
        result never sits in memory whole."""
        with wrap_errors(), self._conn.transaction(), \
                self._conn.cursor(name="striatum_stream") as cur:
            cur.itersize = batch
            cur.execute(query(name), params)
            yield from cur


def use_runtime_role(conn: psycopg.Connection[Any]) -> bool:
    """Switch the session to the runtime role when the server has it; whether it did.
    A session that logged in as that role (the embedded server's) is one already: no
    question to ask it."""
    from .embedded import RUNTIME_ROLE

    if conn.info.user == RUNTIME_ROLE:
        return True
    with wrap_errors():
        row = conn.execute(query("runtime_role_usable")).fetchone()
        if row and row[0]:
            conn.execute(query("set_runtime_role"))
            return True
    return False


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


def fetch_records(cur: psycopg.Cursor[Any], record: type[T], name: str,
                  params: dict[str, Any]) -> list[T]:
    """The rows of a statement as ``record``s, by column name."""
    return fetch_together(cur, (name, params, record))[0]


def fetch_together(cur: psycopg.Cursor[Any], *statements: Read) -> list[list[Any]]:
    """The rows of several reads. Pipelined, they travel in one round trip: all are sent
    before any is read. Each starts after the one before it has finished, so a read
    placed after a lock sees what committed meanwhile."""
    cursors = []
    try:
        for statement in statements:
            record = statement[2] if len(statement) == 3 else None
            each = cur.connection.cursor(row_factory=record_row(record)) if record else \
                cur.connection.cursor()
            cursors.append(each)
            # Records come in binary: a timestamp is then a number to convert, not text
            # to parse (a 10,000-job run's read took a third of the time).
            each.execute(query(statement[0]), statement[1], binary=record is not None)
        return [each.fetchall() for each in cursors]
    finally:
        for each in cursors:
            each.close()


def send(cur: psycopg.Cursor[Any], name: str, params: dict[str, Any] | None = None) -> None:
    """Run a statement whose answer is not needed; pipelined, it does not wait."""
    cur.execute(query(name), params or {})


def fetch_one(cur: psycopg.Cursor[Any], name: str, params: dict[str, Any] | None = None
              ) -> Any:
    rows = fetch(cur, name, params)
    return rows[0] if rows else None
