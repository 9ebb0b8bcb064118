"""Writes a batch of decoded events into every projection's table, retrying until the store accepts it.

The caller acknowledges (commits) the batch's offsets only after ``write`` returned, so a crash between the two
replays the batch; the tables collapse such duplicates on their sort keys (read with FINAL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from clickhouse_connect.driver.client import Client

from projections.arrow import to_arrow
from projections.origin import Origin
from projections.registry import PROJECTIONS, Projection
from schemas.envelope import Event

log = logging.getLogger(__name__)


class ProjectionWriter:
    def __init__(self, client: Client, projections: Sequence[Projection] | None = None,
                 max_backoff: float = 30.0):
        self._client = client
        self._projections = list(PROJECTIONS.values()) if projections is None else list(projections)
        self._max_backoff = max_backoff
        self._schemas = {p.table: p.schema for p in self._projections}

    def write(self, batch: Sequence[tuple[Event, Origin]]) -> dict[int, str]:
        """Project and insert the batch, retrying the inserts with backoff until they are stored.

        Returns the events no projection could be applied to (batch index -> reason): a projection bug on one
        event must not stop the stream, so the caller dead-letters those and the rest is written.
        """
        failed: dict[int, str] = {}
        tables = []
        for projection in self._projections:
            rows = []
            for i, (event, origin) in enumerate(batch):
                try:
                    rows += projection.project(event, origin)
                except Exception as exc:
                    failed[i] = f"projection {projection.name} failed: {type(exc).__name__}: {exc}"
            tables.append((projection.table, rows))
        for table, rows in tables:
            if rows:
                self._insert(table, to_arrow(rows, self._schemas[table]))
        return failed

    def _insert(self, table: str, data) -> None:
        delay = 0.1
        while True:
            try:
                self._client.insert_arrow(table, data)
                return
            except Exception as exc:  # any store failure: keep the batch, wait, try again
                log.warning("insert into %s failed (%s); retrying in %.1fs", table, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
