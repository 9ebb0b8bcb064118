"""Pure stateful fold: detect a customer being told different values for one subject on different channels.

State (per customer, JSON-serialisable; times are integer microseconds since the Unix epoch, UTC)::

    {"told": {kind: {subject: [[time, event_id, source, channel, value, correlationid], ...]}},  # by (time, id)
     "oldest": time}  # the oldest time in "told" (absent while nothing is told): prune only when something expired

Each told value is kept for ``rules.consistency_window_days``; when a new value is told, entries older than the
window before its time are pruned (for every subject). The new value conflicts with another channel when that
channel's latest value for the same (kind, subject) within the window differs from it. One or more conflicts give
one violation: a ``ConsistencyViolated`` derived event and a row, both identified by ``violation-<id>`` where
``<id>`` is the latest (by time, then id) of the values involved, and dated at that value's time on its channel.
So the violation is the same whichever of its values was folded last: the values come from several channel
topics, and a worker that re-folds them after a crash may read them in another order than the first time.
A new value on the same channel is a change (e.g. a price change), not a violation; and a channel that changed its
value to agree with this one does not conflict, even if it said something else before.

The fold updates the state it is given in place and returns it (the runtime keeps only the returned state);
redelivered events are deduplicated by the runtime, and a value already told is ignored here too.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from projections.origin import Origin
from projections.quotes.fold import HANDLES as TELLING, told
from projections.rules import Rules
from projections.stateful import Folded, StatefulProjection
from schemas.derived import ConsistencyViolated, ToldValue
from schemas.envelope import Event

TABLE = "consistency_violations"
SOURCE = "/omnitrail/projections/consistency"
SCHEMA = pa.schema([
    ("violation_id", pa.string()), ("customer_id", pa.string()), ("kind", pa.string()), ("subject", pa.string()),
    ("channels", pa.list_(pa.string())), ("values", pa.list_(pa.string())), ("event_ids", pa.list_(pa.string())),
    ("detected_at", pa.timestamp("ms", tz="UTC")), ("event_id", pa.string()), ("topic", pa.string()),
    ("partition", pa.uint32()), ("offset", pa.uint64()),
])


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY = 86_400_000_000  # microseconds
TIME, EVENT_ID, SOURCE_, CHANNEL, VALUE, CORRELATION = range(6)  # the fields of a told entry


def micros(t: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact, unlike ``timestamp()``)."""
    return (t - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(0, 0, us)


def _time(entry: list) -> int:
    return entry[TIME]


def _order(entry: list) -> tuple[int, str]:
    """The order of told entries: by time, then event id (arrival order among equals)."""
    return entry[TIME], entry[EVENT_ID]


def _prune(told_state: dict, since: int) -> int | None:
    """Drop the told values older than ``since`` (in place), and subjects and kinds left without values; returns
    the oldest time left."""
    oldest = None
    for kind in list(told_state):
        subjects = told_state[kind]
        for subject in list(subjects):
            entries = subjects[subject]
            if entries[0][TIME] < since:
                del entries[:bisect_left(entries, since, key=_time)]
                if not entries:
                    del subjects[subject]
                    continue
            if oldest is None or entries[0][TIME] < oldest:
                oldest = entries[0][TIME]
        if not subjects:
            del told_state[kind]
    return oldest


def fold(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    value = told(event)
    if value is None:
        return Folded(state)
    kind, subject, text = value
    t, window = micros(event.time), rules.consistency_window_days * _DAY
    told_state = state.setdefault("told", {})
    oldest = state.get("oldest")
    if oldest is not None and oldest < t - window:
        oldest = _prune(told_state, t - window)
    subjects = told_state.get(kind)
    entries = subjects.get(subject) if subjects else None
    id_, source, channel = event.id, event.source, event.channel.value
    conflicts = []
    if entries:
        for e in entries:
            if e[EVENT_ID] == id_ and e[SOURCE_] == source:
                _set_oldest(state, oldest)
                return Folded(state)  # already folded (a redelivery the caller did not deduplicate)
        # Entries after this event's time stay in state when events arrive late; only those within the window count
        # (pruning left none older than the window before it).
        latest: dict[str, list] = {}
        for e in entries[:bisect_right(entries, t + window, key=_time)]:
            latest[e[CHANNEL]] = e  # time order: the last one of a channel is its latest
        conflicts = [e for ch, e in latest.items() if ch != channel and e[VALUE] != text]
    mine = [t, id_, source, channel, text, event.correlationid]
    rows, derived = [], []
    if conflicts:
        involved = sorted([*conflicts, mine], key=lambda e: (e[TIME], e[CHANNEL], e[EVENT_ID]))
        last = max(involved, key=_order)  # names and dates the violation, whatever the arrival order
        violation_id, detected = f"violation-{last[EVENT_ID]}", from_micros(last[TIME])
        derived.append(Event.of(
            ConsistencyViolated(kind=kind, subject=subject, told=[
                ToldValue(channel=e[CHANNEL], value=e[VALUE], event_id=e[EVENT_ID], time=from_micros(e[TIME]))
                for e in involved]),
            customer=event.subject, channel=last[CHANNEL], source=SOURCE, id=violation_id, time=detected,
            correlationid=last[CORRELATION], causationid=last[EVENT_ID]))
        rows.append({
            "violation_id": violation_id, "customer_id": event.subject, "kind": kind, "subject": subject,
            "channels": [e[CHANNEL] for e in involved], "values": [e[VALUE] for e in involved],
            "event_ids": [e[EVENT_ID] for e in involved], "detected_at": detected, "event_id": event.id,
            "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
        })
    if entries is None:
        told_state.setdefault(kind, {})[subject] = [mine]
    else:
        entries.insert(bisect_right(entries, (t, id_), key=_order), mine)
    _set_oldest(state, t if oldest is None else min(oldest, t))
    return Folded(state, rows, derived)


def _set_oldest(state: dict, oldest: int | None) -> None:
    if oldest is None:
        state.pop("oldest", None)
    else:
        state["oldest"] = oldest


PROJECTION = StatefulProjection("consistency", TABLE, SCHEMA, fold, handles=TELLING)
