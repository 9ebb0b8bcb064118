"""Applies a batch of decoded events to every projection and stores the rows, retrying until the store accepts.

Stateless projections map each event to rows; stateful ones fold it into the customer's state (which the caller
keeps, in a faust table) and may derive events. The caller acknowledges the batch's offsets, publishes the derived
events and saves the new states only after ``write`` returned, i.e. after the rows were stored: a crash in between
replays the batch, and the tables collapse the repeated rows on their sort keys (read with FINAL).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from clickhouse_connect.driver.client import Client

from projections.arrow import to_arrow
from projections.origin import Origin
from projections.registry import PROJECTIONS, STATEFUL, Projection
from projections.stateful import Rules, StatefulProjection, fold_batch
from schemas.envelope import Event

log = logging.getLogger(__name__)


@dataclass
class Written:
    """What a batch produced besides stored rows."""

    failed: dict[int, str] = field(default_factory=dict)    # batch index -> why no projection could take it
    derived: list[Event] = field(default_factory=list)      # to publish on the derived topic
    states: dict[str, dict[str, dict]] = field(default_factory=dict)  # projection -> customer -> new state


class ProjectionWriter:
    def __init__(self, client: Client, projections: Sequence[Projection] | None = None,
                 stateful: Sequence[StatefulProjection] | None = None, rules: Rules = Rules(),
                 max_backoff: float = 30.0):
        self._client = client
        self.projections = list(PROJECTIONS.values()) if projections is None else list(projections)
        self.stateful = list(STATEFUL.values()) if stateful is None else list(stateful)
        self._rules = rules
        self._max_backoff = max_backoff
        self.retrying = False

    def write(self, batch: Sequence[tuple[Event, Origin]],
              states: dict[str, dict[str, dict]] | None = None) -> Written:
        """Project the batch, store all rows; ``states`` (projection -> customer -> state) are the stateful
        projections' states before the batch (missing: empty)."""
        out = Written()
        tables: list[tuple[str, object, list[dict]]] = []
        for projection in self.projections:
            rows = []
            for i, (event, origin) in enumerate(batch):
                try:
                    rows += projection.project(event, origin)
                except Exception as exc:
                    out.failed[i] = f"projection {projection.name} failed: {type(exc).__name__}: {exc}"
            tables.append((projection.table, projection.schema, rows))
        # A customer's events come from several channel topics, so a batch may hold them out of time order:
        # fold each customer's events in time order (the sort is stable, so equal times keep log order).
        order = sorted(range(len(batch)), key=lambda i: (batch[i][0].subject, batch[i][0].time))
        in_time = [batch[i] for i in order]
        for projection in self.stateful:
            proj_states = dict((states or {}).get(projection.name, {}))
            rows, derived, failed = fold_batch(projection, proj_states, in_time, self._rules)
            out.failed.update({order[i]: reason for i, reason in failed.items()})
            out.derived += derived
            out.states[projection.name] = proj_states
            tables.append((projection.table, projection.schema, rows))
        for table, schema, rows in tables:
            if rows:
                self._insert(table, to_arrow(rows, schema))
        return out

    def _insert(self, table: str, data) -> None:
        delay = 0.1
        while True:
            try:
                self._client.insert_arrow(table, data)
                self.retrying = False
                return
            except Exception as exc:  # any store failure: keep the batch, wait, try again
                self.retrying = True  # the worker's stall watchdog leaves a worker waiting for the store alone
                log.warning("insert into %s failed (%s); retrying in %.1fs", table, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
