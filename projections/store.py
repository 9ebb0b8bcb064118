"""The ClickHouse port, chosen by URL: ``chdb:///abs/path`` (embedded) or ``http(s)://host:8123`` (a server).

Both give the same clickhouse-connect ``Client`` and the same SQL, so there is one code path behind them.
An embedded directory is owned by one process at a time; other processes read through that owner's read API.
The embedded engine (chdb) is the ``local`` extra: the production image talks to a server and does not carry it.
Errors show the URL through ``redact_url``: a server URL carries its password.
"""

from __future__ import annotations

from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from projections.redact import redact_url


class StoreLocked(RuntimeError):
    """The embedded ClickHouse directory is owned by another process (normally the running worker)."""


def connect(url: str, settings: dict[str, str] | None = None) -> Client:
    """A clickhouse-connect client for ``url`` with session ``settings``; raises ``StoreLocked`` if another process
    owns a chdb directory."""
    scheme = urlparse(url).scheme
    if scheme not in ("chdb", "http", "https"):
        raise ValueError(f"unsupported ClickHouse URL {redact_url(url)!r}: use chdb:///abs/path or "
                         "http(s)://user:password@host:8123/database")
    if scheme != "chdb":
        # No server session: one would serialize the worker's writer and reader clients.
        return clickhouse_connect.get_client(dsn=url, settings=settings, autogenerate_session_id=False)
    try:
        return clickhouse_connect.get_client(dsn=url, settings=settings)
    except ImportError as exc:  # clickhouse-connect imports chdb only for a chdb:// URL
        raise ImportError(f"{redact_url(url)} is an embedded ClickHouse, which needs chdb: pip install "
                          "'omnitrail[local]', or set OMNITRAIL_CLICKHOUSE_URL to a ClickHouse server (http(s)://...)"
                          ) from exc
    except Exception as exc:
        # chdb reports a directory locked by another process only as a failed engine start.
        if "Unable to open the chdb engine" in str(exc):
            raise StoreLocked(f"cannot open {redact_url(url)}: it is in use by another process (is the worker "
                              f"running?) [{exc}]") from None
        raise
