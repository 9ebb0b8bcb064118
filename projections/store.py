"""The ClickHouse port, chosen by URL: ``chdb:///abs/path`` (embedded) or ``http(s)://host:8123`` (a server).

Both give the same clickhouse-connect ``Client`` and the same SQL, so there is one code path behind them.
An embedded directory is owned by one process at a time; other processes read through that owner's read API.
"""

from __future__ import annotations

from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client


class StoreLocked(RuntimeError):
    """The embedded ClickHouse directory is owned by another process (normally the running worker)."""


def connect(url: str) -> Client:
    """A clickhouse-connect client for ``url``; raises ``StoreLocked`` if another process owns a chdb directory."""
    scheme = urlparse(url).scheme
    if scheme not in ("chdb", "http", "https"):
        raise ValueError(f"unsupported ClickHouse URL {url!r}: use chdb:///abs/path or http(s)://host:8123")
    if scheme != "chdb":
        # No server session: one would serialize the worker's writer and reader clients.
        return clickhouse_connect.get_client(dsn=url, autogenerate_session_id=False)
    try:
        return clickhouse_connect.get_client(dsn=url)
    except Exception as exc:
        # chdb reports a directory locked by another process only as a failed engine start.
        if "Unable to open the chdb engine" in str(exc):
            raise StoreLocked(f"cannot open {url}: it is in use by another process (is the worker running?) "
                              f"[{exc}]") from None
        raise
