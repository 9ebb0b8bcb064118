"""How a process other than the worker reads projections.

With a ClickHouse server URL every process connects directly. With the embedded store only one process can own
the chdb directory: while the worker runs, reads go through its HTTP service (with ``api_token`` when it requires
one); when no worker runs, the reader opens the directory itself. Reads are read-only either way.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

import orjson

from services.queries import QUERIES, run_query, run_sql
from services.readonly import ReadPool
from services.settings import Settings

T = TypeVar("T")


class ReaderError(RuntimeError):
    pass


def api_call(settings: Settings, path: str, timeout: float = 10.0, method: str = "GET",
             body: object | None = None) -> dict | None:
    """Call the HTTP service (GET unless said otherwise, ``body`` as JSON); None when nothing listens there."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if settings.api_token:
        headers["Authorization"] = f"Bearer {settings.api_token}"
    try:
        request = urllib.request.Request(settings.api_url + path, method=method, headers=headers,
                                         data=None if body is None else orjson.dumps(body))
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            message = orjson.loads(exc.read()).get("error", str(exc))
        except orjson.JSONDecodeError:
            message = str(exc)
        if exc.code == 401 and not settings.api_token:
            message += "; set OMNITRAIL_API_TOKEN to a read token"
        raise ReaderError(message) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError):  # bound but not serving yet: not ready
        return None


def query_path(query: str, params: dict[str, object]) -> str:
    """The service's route for a named query: ``/v1/<query>[/<required parameter>]?<params>``."""
    params = dict(params)
    path = f"/v1/{query}"
    for name in QUERIES[query].required:  # a route takes its query's required parameter in its path
        path += "/" + urllib.parse.quote(str(params.pop(name)), safe="")
    text = {k: v.isoformat() if isinstance(v, datetime) else str(v) for k, v in params.items()}
    return f"{path}?{urllib.parse.urlencode(text)}" if text else path


def _directly(settings: Settings, fn: Callable[..., T]) -> T:
    """``fn(client)`` on a read-only connection of this process's own."""
    from projections.migrate import migrate
    from projections.store import StoreLocked, connect

    if settings.embedded_store:
        try:
            writer = connect(settings.store_url)
        except StoreLocked as exc:
            raise ReaderError(f"{exc}; and no worker answers at {settings.api_url}") from None
        try:
            migrate(writer)  # a store nobody has written to yet reads as empty, not as a missing table
        finally:
            writer.close()
    pool = ReadPool(settings.read_url, settings.api_query_seconds, size=1)
    try:
        return orjson.loads(orjson.dumps(pool.run(fn), default=str))
    except (KeyError, ValueError, PermissionError, TimeoutError) as exc:
        raise ReaderError(str(exc)) from None
    except Exception as exc:
        raise ReaderError(f"{type(exc).__name__}: {exc}") from None
    finally:
        pool.close()


def read(settings: Settings, query: str, **params) -> list[dict]:
    """Rows of a named query (``services.queries``), through the worker or from the store directly."""
    return read_where(settings, query, **params)[0]


def read_where(settings: Settings, query: str, **params) -> tuple[list[dict], bool]:
    """``read``, and whether a worker's HTTP service answered it (so a worker runs)."""
    params = {k: v for k, v in params.items() if v is not None}
    if query not in QUERIES:
        raise ReaderError(f"no query named {query!r}; known: {', '.join(sorted(QUERIES))}")
    if settings.embedded_store:
        answer = api_call(settings, query_path(query, params), 60)
        if answer is not None:
            return answer["rows"], True
    return _directly(settings, lambda client: run_query(client, query, params)), False


def sql(settings: Settings, statement: str) -> dict:
    """One read-only query on the store: through the worker when it owns the embedded store, else directly."""
    if settings.embedded_store:
        answer = api_call(settings, "/v1/sql", settings.api_query_seconds + 10, "POST", {"sql": statement})
        if answer is not None:
            return answer
    return _directly(settings, lambda client: run_sql(client, statement))


def read_timeline(settings: Settings, customer: str, since: datetime | None = None) -> list[dict]:
    return read(settings, "timeline", customer_id=customer, since=since)
