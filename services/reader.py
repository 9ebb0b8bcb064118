"""How a process other than the worker reads projections.

With a ClickHouse server URL every process connects directly. With the embedded store only one process can own
the chdb directory: while the worker runs, reads go through its read API; when no worker runs, the reader opens
the directory itself.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

import orjson

from projections.migrate import migrate
from projections.store import StoreLocked, connect
from services.queries import run_query, run_sql
from services.settings import Settings


class ReaderError(RuntimeError):
    pass


def api_get(settings: Settings, path: str, timeout: float = 10.0, method: str = "GET",
            body: bytes | None = None) -> dict | None:
    """Call the worker's API (GET unless said otherwise); None when nothing listens there."""
    try:
        request = urllib.request.Request(settings.api_url + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ReaderError(orjson.loads(exc.read()).get("error", str(exc))) from None
    except (urllib.error.URLError, ConnectionError, TimeoutError):  # bound but not serving yet: not ready
        return None


def read(settings: Settings, query: str, **params) -> list[dict]:
    """Rows of a named query (``services.queries``), through the worker or from the store directly."""
    params = {k: v for k, v in params.items() if v is not None}
    if settings.embedded_store:
        text = {k: v.isoformat() if isinstance(v, datetime) else str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in params.items()}
        answer = api_get(settings, f"/{query}?{urllib.parse.urlencode(text)}")
        if answer is not None:
            return answer["rows"]
    try:
        client = connect(settings.store_url)
    except StoreLocked as exc:
        raise ReaderError(f"{exc}; and no read API answers at {settings.api_url}") from None
    try:
        migrate(client)  # a store nobody has written to yet reads as empty, not as a missing table
        return orjson.loads(orjson.dumps(run_query(client, query, params), default=str))
    except (KeyError, ValueError) as exc:
        raise ReaderError(str(exc)) from None
    finally:
        client.close()


def sql(settings: Settings, statement: str) -> dict:
    """Run one SQL statement on the store: through the worker when it owns the embedded store, else directly."""
    if settings.embedded_store:
        answer = api_get(settings, "/sql", 600, "POST", statement.encode())
        if answer is not None:
            return answer
    try:
        client = connect(settings.store_url)
    except StoreLocked as exc:
        raise ReaderError(f"{exc}; and no read API answers at {settings.api_url}") from None
    try:
        migrate(client)
        return orjson.loads(orjson.dumps(run_sql(client, statement), default=str))
    except Exception as exc:
        raise ReaderError(f"{type(exc).__name__}: {exc}") from None
    finally:
        client.close()


def read_timeline(settings: Settings, customer: str, since: datetime | None = None) -> list[dict]:
    return read(settings, "timeline", customer_id=customer, since=since)
