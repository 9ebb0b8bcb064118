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
from projections.timeline.queries import customer_timeline
from services.settings import Settings


class ReaderError(RuntimeError):
    pass


def _api_get(settings: Settings, path: str, timeout: float = 10.0) -> dict | None:
    """GET from the worker's read API; None when nothing listens there."""
    try:
        with urllib.request.urlopen(settings.api_url + path, timeout=timeout) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise ReaderError(orjson.loads(exc.read()).get("error", str(exc))) from None
    except (urllib.error.URLError, ConnectionError):
        return None


def read_timeline(settings: Settings, customer: str, since: datetime | None = None) -> list[dict]:
    if settings.embedded_store:
        params = urllib.parse.urlencode({"since": since.isoformat()} if since else {})
        answer = _api_get(settings, f"/timeline/{urllib.parse.quote(customer, safe='')}?{params}")
        if answer is not None:
            return answer["events"]
    try:
        client = connect(settings.store_url)
    except StoreLocked as exc:
        raise ReaderError(f"{exc}; and no read API answers at {settings.api_url}") from None
    try:
        migrate(client)  # a store nobody has written to yet reads as empty, not as a missing table
        return customer_timeline(client, customer, since)
    finally:
        client.close()
