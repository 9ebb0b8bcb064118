"""Read-only access to the projections for analysts: the named queries and ``omnitrail sql`` / ``POST /v1/sql``.

Every read runs on its own connection opened with ``readonly=1`` (ClickHouse then refuses writes, DDL, settings
changes and the table functions that reach files and the network: ``file()``, ``url()``, ``remote()``...) and a
``max_execution_time``. The connection settings are fixed when it opens because a read-only session cannot change
them per query, and because chdb keeps per-query settings on the session: they would leak into the worker's
writer. A statement that is not a query is refused before it reaches the store, with a message that says so.

Reads run concurrently on a small pool of connections (no lock shared with other reads), and each carries a
marker comment so that ``cancel`` can stop it when its caller hangs up.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

T = TypeVar("T")
QUERY_WORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS")
READONLY = 164          # ClickHouse error codes: the session refused a write, DDL or a table function
TIMEOUT_EXCEEDED = 159  # ... the query ran past max_execution_time
CANCELLED = 394         # ... KILL QUERY stopped it


class ReadOnlyViolation(PermissionError):
    pass


class QueryTimeout(TimeoutError):
    pass


def check_statement(statement: str) -> str:
    """The statement if it is one query; ``ReadOnlyViolation`` naming what is allowed otherwise."""
    words = statement.split(None, 1)
    if not words:
        raise ValueError("no SQL statement given")
    if words[0].upper() not in QUERY_WORDS:
        raise ReadOnlyViolation(
            f"read-only access: {words[0][:40]!r} is not allowed; run one query starting with "
            f"{', '.join(QUERY_WORDS)} (writes, DDL, SET, SYSTEM and KILL need the store's own admin access)")
    return statement


def readonly_client(url: str, query_seconds: float) -> Client:
    from projections.store import connect  # here: a CLI read through the worker never loads a ClickHouse client

    # Settings before readonly=1: after it the session refuses to change any setting. A query may still name a
    # setting at the session's value, so join_use_nulls is set here for the queries that ask for standard SQL NULLs
    # from outer joins (projections/consistency/queries.py); analysts get the same semantics.
    # optimize_move_to_prewhere_if_final: a point read with FINAL (a customer's timeline) otherwise merges whole
    # granules of every part before filtering; measured at 10M rows (bench/reads.py): timeline p99 4.9x -> 1.7x the
    # raw query. Only sort-key conditions move, so the answer is the same.
    return connect(url, {"max_execution_time": str(max(1, round(query_seconds))), "join_use_nulls": "1",
                         "optimize_move_to_prewhere_if_final": "1", "readonly": "1"})


def translate(exc: Exception, query_seconds: float) -> Exception:
    """The store's error as one that names the rule broken (read-only, time limit), or ``exc`` unchanged."""
    code = getattr(exc, "code", None)
    text = str(exc)
    if code == READONLY or "(READONLY)" in text:
        return ReadOnlyViolation("read-only access: the store refused this query (table functions such as file() "
                                 "or url(), INSERT, DDL and settings changes are not allowed)")
    if code == TIMEOUT_EXCEEDED or "(TIMEOUT_EXCEEDED)" in text:
        return QueryTimeout(f"the query ran longer than the {query_seconds:g} s limit (OMNITRAIL_API_QUERY_SECONDS)")
    return exc


class _Marked:
    """A client whose queries start with a marker comment, so that ``KILL QUERY`` can find them."""

    def __init__(self, client: Client, marker: str):
        self._client, self._marker = client, marker

    def query(self, sql: str, *args, **kwargs):
        return self._client.query(f"/* {self._marker} */ {sql}", *args, **kwargs)

    def command(self, sql: str, *args, **kwargs):
        return self._client.command(f"/* {self._marker} */ {sql}", *args, **kwargs)


class ReadPool:
    """Up to ``size`` concurrent read-only connections to ``url``, opened on first use."""

    def __init__(self, url: str, query_seconds: float, size: int = 4):
        self.url, self.query_seconds = url, query_seconds
        self._idle: queue.LifoQueue[Client] = queue.LifoQueue()
        self._slots = threading.BoundedSemaphore(size)
        self._killer: Client | None = None
        self._killer_lock = threading.Lock()

    @contextmanager
    def _client(self) -> Iterator[Client]:
        with self._slots:
            try:
                client = self._idle.get_nowait()
            except queue.Empty:
                client = readonly_client(self.url, self.query_seconds)
            try:
                yield client
            finally:
                self._idle.put(client)

    @staticmethod
    def marker() -> str:
        return f"omnitrail-read:{uuid.uuid4().hex}"

    def run(self, fn: Callable[[Client], T], marker: str | None = None) -> T:
        """``fn`` on a read-only connection; the store's refusals come back as ``ReadOnlyViolation`` or
        ``QueryTimeout``."""
        with self._client() as client:
            try:
                return fn(_Marked(client, marker or self.marker()))  # type: ignore[arg-type]
            except Exception as exc:
                raise translate(exc, self.query_seconds) from None

    def cancel(self, marker: str) -> None:
        """Stop the read carrying ``marker`` (its caller went away). A separate connection: the pool may be full."""
        with self._killer_lock:
            if self._killer is None:
                self._killer = readonly_client(self.url, self.query_seconds)
            self._killer.command(f"KILL QUERY WHERE query LIKE '/* {marker} */%' ASYNC")

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                break
        if self._killer is not None:
            self._killer.close()
