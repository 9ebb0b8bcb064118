"""Stores a batch's Arrow tables, retrying until the store accepts them.

The runtime acknowledges nothing (no derived events, no states, no offsets) before ``write`` returned, so a store
that refuses writes holds the whole pipeline back and nothing is lost; a crash in between replays the batch, and
the tables collapse repeated rows on their sort keys (read with FINAL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pyarrow as pa
from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)


class Sink:
    def __init__(self, client: Client, max_backoff: float = 30.0, stopping: Callable[[], bool] = lambda: False):
        self._client = client
        self._max_backoff = max_backoff
        self._stopping = stopping
        self.retrying = False  # read by status/alarms: the store, not the consumer, holds the worker back

    def write(self, tables: dict[str, pa.Table]) -> None:
        for table, data in tables.items():
            self._insert(table, data)

    def _insert(self, table: str, data: pa.Table) -> None:
        delay = 0.1
        while True:
            try:
                self._client.insert_arrow(table, data)
                self.retrying = False
                return
            except Exception as exc:  # any store failure: keep the batch, wait, try again
                if self._stopping():
                    raise
                self.retrying = True
                log.warning("insert into %s failed (%s); retrying in %.1fs", table, exc, delay)
                resume = time.monotonic() + delay
                while time.monotonic() < resume and not self._stopping():  # a stop does not sit out the backoff
                    time.sleep(0.2)
                delay = min(delay * 2, self._max_backoff)
