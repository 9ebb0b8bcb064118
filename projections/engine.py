"""The batch engine: decoded records and the customers' states in, rows, derived events and new states out.

Pure: no I/O, no clock. The live worker and ``omnitrail replay`` both call it, and tests call it without a broker.

A customer's state (one JSON-serialisable dict, kept by the runtime per customer)::

    {"w": {"<topic>:<partition>": next offset}, "ids": {identity: content digest}, "p": {projection: fold state}}

* ``w``, offset watermarks: a record read at an offset below its partition's watermark was already folded into
  this state (a redelivery after a crash or a rebalance) and is skipped whole: no rows, no folds, no derived
  events. A state may be ahead of the committed offsets (checkpointed just before a crash); the watermarks make
  that exact. Watermarks are per (topic, partition), read in log order before anything is sorted.
* ``ids``: the identities (``identity``: a 64-bit hash of (source, id), as hex) of the customer's most recent
  events, oldest first, each with a digest of its content (``content_digest``). History is immutable: the first
  event with a (source, id) stands. A later one with the same content (a producer's retry, the same event sent once
  in binary and once in structured mode) is skipped; one with different content is a *conflicting duplicate*: it
  changes no projection and is reported in ``Applied.failed`` (the worker dead-letters it). A dict, not a list:
  looking an id up in a list of 256 cost ~2-3 µs per event.

  The window is bounded (``IDS_KEPT``, trimmed to the newest ``IDS_KEPT - IDS_TRIM``), so state does not grow with
  a customer's history: a repeated (source, id) is recognised while the original is among the customer's newest
  128-256 events. An older one is projected like a new event (on the timeline it adds a row, or replaces the
  original's when the time is equal; the folds still count a (source, id) they hold once). Recognising every
  repeat would take a digest per event ever seen, which the store holds already (the timeline has every
  (source, id)) but the engine is pure and cannot ask it. Identity is per customer: the same (source, id) under
  another subject is another customer's event. A digest is 32 bits: two different contents may share one (odds
  2^-32), and then the later event is skipped instead of reported; either way the first stands. A state written
  before digests were kept (``ids`` a list of signed 64-bit hashes) is converted on first use, its digests unknown
  (``UNKNOWN``), which count as the same content.

  A rebuild (``Engine(conflicts=False)``) dead-letters nothing, so it does not tell a conflicting duplicate from
  an identical one: either is not projected, exactly as in the live worker. It keys the window by the plain
  ``source``/``id`` text and takes no digest, which saves ~15% of a stateless rebuild's cost per event; its states
  are only ever read back by the same rebuild.

A customer's events come from several channel topics, so a batch may hold them out of time order: each
customer's new events are folded in time order (stable: equal times keep log order).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter
from typing import NamedTuple

import msgspec
import pyarrow as pa

from projections.arrow import to_arrow
from projections.origin import Origin
from projections.registry import PROJECTIONS, STATEFUL, Projection
from projections.rules import Rules
from projections.stateful import StatefulProjection
from schemas.wire import WireEvent, from_model

IDS_KEPT, IDS_TRIM = 256, 128  # ids remembered per customer; trimmed in bulk so appends stay O(1) amortised
UNKNOWN = 0  # the digest of an id remembered before digests were kept


class Record(NamedTuple):
    """One decoded event, where it lives in the log (``origin``, carried by rows) and where it was read
    (``read_at``: the same, or the repartition topic for a record forwarded to its customer's partition). A named
    tuple: one is built per record, and a frozen dataclass cost ~0.7 µs more to build."""

    event: object
    origin: Origin
    read_at: Origin


@dataclass
class Applied:
    rows: dict[str, list[dict]] = field(default_factory=dict)  # table -> rows to store
    derived: list = field(default_factory=list)                # derived events to publish
    failed: dict[int, str] = field(default_factory=dict)       # record index -> why it is not (all) projected
    changed: set[str] = field(default_factory=set)             # customers whose state changed
    skipped: int = 0                                           # redeliveries and repeated events


def identity(source: str, id: str) -> str:
    """A stable 64-bit hash of an event's identity, as 16 hex digits (Python's ``hash`` changes between processes;
    text, since the ids are the keys of a JSON object)."""
    return hashlib.blake2b(f"{source}\x1f{id}".encode(), digest_size=8).hexdigest()


def _identities(hashes: list[int]) -> dict[str, int]:
    """The ``ids`` of a state from before digests were kept: there, the same hashes as signed integers."""
    return {(h % 2**64).to_bytes(8, "big").hex(): UNKNOWN for h in hashes}


_encode = msgspec.json.Encoder().encode


def content_digest(event) -> int:
    """A stable 32-bit digest of everything that makes the event what it is: its whole envelope (type, subject,
    time, channel, correlationid, causationid, dataschema, ...) and data. Computed on the decoded event, so the same
    event gives the same digest in either CloudEvents mode and from either decoder; pydantic events (tests) are
    converted to the wire form first. CRC-32 because it is cheap and a collision costs only a report (see above)."""
    return zlib.crc32(_encode(event if isinstance(event, WireEvent) else from_model(event)))


def conflict_reason(event) -> str:
    return (f"conflicting duplicate: ({event.source}, {event.id}) was first published with different content; "
            "the first event stands")


def new_state() -> dict:
    return {"w": {}, "ids": {}, "p": {}}


class _Dispatch:
    """The projections (given with what to call for each) that act on an event, by the event's name."""

    def __init__(self, projections: list[tuple[Projection | StatefulProjection, tuple]]):
        self._projections = projections
        self._by_name: dict[str, list[tuple]] = {}

    def of(self, name: str) -> list[tuple]:
        chosen = self._by_name.get(name)
        if chosen is None:
            chosen = self._by_name[name] = [call for p, call in self._projections
                                            if p.handles is None or name in p.handles]
        return chosen


class Engine:
    def __init__(self, projections: Sequence[Projection] | None = None,
                 stateful: Sequence[StatefulProjection] | None = None, rules: Rules = Rules(), conflicts: bool = True):
        self.projections = list(PROJECTIONS.values()) if projections is None else list(projections)
        self.stateful = list(STATEFUL.values()) if stateful is None else list(stateful)
        self.rules = rules
        self.conflicts = conflicts  # report conflicting duplicates in ``Applied.failed`` (see the module docstring)

    def apply(self, records: Sequence[Record], states: dict[str, dict]) -> Applied:
        """Apply ``records`` (in log order) to ``states`` (customer -> state), which are updated in place; a
        customer without a state gets a new one."""
        out = Applied()
        fresh = self._new_records(records, states, out)
        rows: dict[str, list[dict]] = {p.table: [] for p in (*self.projections, *self.stateful)}
        # Bound once per batch: per event and projection, a dict item ``+=`` and attribute lookups cost more than
        # most projections' own work.
        failed, rules, derived = out.failed, self.rules, out.derived.extend
        stateless = _Dispatch([(p, (p.name, p.project, rows[p.table].extend)) for p in self.projections])
        for i in fresh:
            event, origin = records[i].event, records[i].origin
            for name, project, store in stateless.of(event.name):
                try:
                    store(project(event, origin))
                except Exception as exc:
                    failed[i] = f"projection {name} failed: {type(exc).__name__}: {exc}"
        if self.stateful:
            stateful = _Dispatch([(p, (p.name, p.fold, rows[p.table].extend)) for p in self.stateful])
            for i in sorted(fresh, key=lambda i: (records[i].event.subject, records[i].event.time)):
                event, origin = records[i].event, records[i].origin
                folds = states[event.subject]["p"]
                for name, fold, store in stateful.of(event.name):
                    state = folds.get(name)
                    try:
                        state, new_rows, new_events = fold({} if state is None else state, event, origin, rules)
                    except Exception as exc:
                        failed[i] = f"projection {name} failed: {type(exc).__name__}: {exc}"
                        continue
                    folds[name] = state
                    if new_rows:
                        store(new_rows)
                    if new_events:
                        derived(new_events)
        out.rows = {table: r for table, r in rows.items() if r}
        return out

    def remember(self, records: Sequence[Record], states: dict[str, dict]) -> None:
        """Note ``records`` in ``states`` as ``apply`` would, without projecting them: how a resumed rebuild of a
        stateless projection, which saves no states, recalls the events it projected before."""
        self._new_records(records, states, Applied())

    def tables(self, applied: Applied) -> dict[str, pa.Table]:
        """The applied rows as Arrow tables, the form the store ingests fastest. Of a versioned table only the last
        row of each key is kept: the store would keep just that one (and does so after a crash replay too)."""
        schemas = {p.table: p.schema for p in (*self.projections, *self.stateful)}
        rows = dict(applied.rows)
        for p in self.stateful:
            if p.versioned_key and p.table in rows:
                key = itemgetter(*p.versioned_key)
                rows[p.table] = list({key(r): r for r in rows[p.table]}.values())
        return {table: to_arrow(r, schemas[table]) for table, r in rows.items()}

    def _new_records(self, records: Sequence[Record], states: dict[str, dict], out: Applied) -> list[int]:
        """Indexes of the records to project: not yet folded into their customer's state, and not a repeat of a
        remembered event. Advances watermarks and ids; a conflicting duplicate goes to ``out.failed``."""
        # Without folds (a rebuild of the timeline, which reads each offset once) rows are all there is to keep
        # exact, so no watermarks: only the ids, for the same first-one-stands rule as the live worker.
        marks_kept, conflicts = bool(self.stateful), self.conflicts
        fresh = []
        for i, rec in enumerate(records):
            event = rec.event
            customer = event.subject
            state = states.get(customer)
            if state is None:
                state = states[customer] = new_state()
            if marks_kept:
                marks, where = state["w"], f"{rec.read_at.topic}:{rec.read_at.partition}"
                if rec.read_at.offset < marks.get(where, 0):
                    out.skipped += 1
                    continue
                marks[where] = rec.read_at.offset + 1
            out.changed.add(customer)
            ids = state["ids"]
            if ids.__class__ is list:
                ids = state["ids"] = _identities(ids)
            if conflicts:
                key, digest = identity(event.source, event.id), content_digest(event)
            else:
                key, digest = f"{event.source}\x1f{event.id}", UNKNOWN
            first = ids.get(key)
            if first is not None:
                if first == digest or first == UNKNOWN:
                    out.skipped += 1
                else:
                    out.failed[i] = conflict_reason(event)
                continue
            ids[key] = digest
            if len(ids) > IDS_KEPT:  # the oldest first: a dict keeps insertion order, and so does JSON
                for old in list(islice(ids, IDS_TRIM)):
                    del ids[old]
            fresh.append(i)
        return fresh
