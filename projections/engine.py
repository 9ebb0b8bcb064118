"""The batch engine: decoded records and the customers' states in, rows, derived events and new states out.

Pure: no I/O, no clock. The live worker and ``omnitrail replay`` both call it, and tests call it without a broker.

A customer's state (one JSON-serialisable dict, kept by the runtime per customer)::

    {"w": {"<topic>:<partition>": next offset}, "ids": [64-bit id hash, ...], "p": {projection: fold state}}

* ``w``, offset watermarks: a record read at an offset below its partition's watermark was already folded into
  this state (a redelivery after a crash or a rebalance) and is skipped whole: no rows, no folds, no derived
  events. A state may be ahead of the committed offsets (checkpointed just before a crash); the watermarks make
  that exact. Watermarks are per (topic, partition), read in log order before anything is sorted.
* ``ids``: the hashes of the customer's most recent (source, id) pairs, bounded and updated in place. A producer
  that publishes the same event twice (a retry) at two offsets is caught here; older duplicates fall to the
  projections' own semantics (rows collapse on their keys, flags count a return once).

A customer's events come from several channel topics, so a batch may hold them out of time order: each
customer's new events are folded in time order (stable: equal times keep log order).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from projections.arrow import to_arrow
from projections.origin import Origin
from projections.registry import PROJECTIONS, STATEFUL, Projection
from projections.stateful import Rules, StatefulProjection

IDS_KEPT, IDS_TRIM = 256, 128  # ids remembered per customer; trimmed in bulk so appends stay O(1) amortised


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded event, where it lives in the log (``origin``, carried by rows) and where it was read
    (``read_at``: the same, or the repartition topic for a record forwarded to its customer's partition)."""

    event: object
    origin: Origin
    read_at: Origin


@dataclass
class Applied:
    rows: dict[str, list[dict]] = field(default_factory=dict)  # table -> rows to store
    derived: list = field(default_factory=list)                # derived events to publish
    failed: dict[int, str] = field(default_factory=dict)       # record index -> why a projection rejected it
    changed: set[str] = field(default_factory=set)             # customers whose state changed
    skipped: int = 0                                           # redeliveries and repeated ids


def id_hash(source: str, id: str) -> int:
    """A stable 64-bit hash of an event's identity (Python's ``hash`` changes between processes)."""
    return int.from_bytes(hashlib.blake2b(f"{source}\x1f{id}".encode(), digest_size=8).digest(), "big", signed=True)


def new_state() -> dict:
    return {"w": {}, "ids": [], "p": {}}


class Engine:
    def __init__(self, projections: Sequence[Projection] | None = None,
                 stateful: Sequence[StatefulProjection] | None = None, rules: Rules = Rules()):
        self.projections = list(PROJECTIONS.values()) if projections is None else list(projections)
        self.stateful = list(STATEFUL.values()) if stateful is None else list(stateful)
        self.rules = rules

    def apply(self, records: Sequence[Record], states: dict[str, dict]) -> Applied:
        """Apply ``records`` (in log order) to ``states`` (customer -> state), which are updated in place; a
        customer without a state gets a new one."""
        out = Applied()
        # Without folds there is nothing to keep exact but rows, and rows collapse on their keys: no state needed
        # (a rebuild of the timeline keeps no per-customer state at all).
        fresh = self._new_records(records, states, out) if self.stateful else range(len(records))
        rows: dict[str, list[dict]] = {p.table: [] for p in (*self.projections, *self.stateful)}
        for i in fresh:
            rec = records[i]
            for projection in self.projections:
                try:
                    rows[projection.table] += projection.project(rec.event, rec.origin)
                except Exception as exc:
                    out.failed[i] = f"projection {projection.name} failed: {type(exc).__name__}: {exc}"
        if self.stateful:
            in_time = sorted(fresh, key=lambda i: (records[i].event.subject, records[i].event.time))
            for i in in_time:
                rec = records[i]
                folds = states[rec.event.subject]["p"]
                for projection in self.stateful:
                    try:
                        result = projection.fold(folds.get(projection.name, {}), rec.event, rec.origin, self.rules)
                    except Exception as exc:
                        out.failed[i] = f"projection {projection.name} failed: {type(exc).__name__}: {exc}"
                        continue
                    folds[projection.name] = result.state
                    rows[projection.table] += result.rows
                    out.derived += result.derived
        out.rows = {table: r for table, r in rows.items() if r}
        return out

    def tables(self, applied: Applied) -> dict[str, pa.Table]:
        """The applied rows as Arrow tables, the form the store ingests fastest. Of a versioned table only the last
        row of each key is kept: the store would keep just that one (and does so after a crash replay too)."""
        schemas = {p.table: p.schema for p in (*self.projections, *self.stateful)}
        rows = dict(applied.rows)
        for p in self.stateful:
            if p.versioned_key and p.table in rows:
                rows[p.table] = list({tuple(r[k] for k in p.versioned_key): r for r in rows[p.table]}.values())
        return {table: to_arrow(r, schemas[table]) for table, r in rows.items()}

    @staticmethod
    def _new_records(records: Sequence[Record], states: dict[str, dict], out: Applied) -> list[int]:
        """Indexes of the records not yet folded into their customer's state; advances watermarks and ids."""
        fresh = []
        for i, rec in enumerate(records):
            customer = rec.event.subject
            state = states.get(customer)
            if state is None:
                state = states[customer] = new_state()
            marks, where = state["w"], f"{rec.read_at.topic}:{rec.read_at.partition}"
            if rec.read_at.offset < marks.get(where, 0):
                out.skipped += 1
                continue
            marks[where] = rec.read_at.offset + 1
            out.changed.add(customer)
            ids, h = state["ids"], id_hash(rec.event.source, rec.event.id)
            if h in ids:
                out.skipped += 1
                continue
            ids.append(h)
            if len(ids) > IDS_KEPT:
                del ids[:IDS_TRIM]
            fresh.append(i)
        return fresh

