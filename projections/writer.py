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

    def write(self, batch: Sequence[tuple[Event, Origin]]) -> int:
        """Project and insert the batch; retry with exponential backoff until it is stored. Returns rows written."""
        written = 0
        for projection in self._projections:
            rows = [row for event, origin in batch for row in projection.project(event, origin)]
            if rows:
                self._insert(projection.table, to_arrow(rows, projection.schema))
                written += len(rows)
        return written

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
