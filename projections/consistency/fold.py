"""Pure stateful fold: detect a customer being told different values for one subject on different channels.

State (per customer, JSON-serialisable)::

    {"told": {kind: {subject: [{"channel", "value", "event_id", "source", "time" (ISO 8601)}, ...]}}}

Each told value is kept for ``rules.consistency_window_days``; when a new value is told, entries older than the
window before its time are pruned (for every subject). The new value conflicts with another channel when that
channel's latest value for the same (kind, subject) within the window differs from it. One or more conflicts give
one violation: a ``ConsistencyViolated`` derived event and a row, both identified by ``violation-<event id>``.
A new value on the same channel is a change (e.g. a price change), not a violation; and a channel that changed its
value to agree with this one does not conflict, even if it said something else before.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from projections.origin import Origin
from projections.quotes.fold import told
from projections.stateful import Folded, Rules, StatefulProjection
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


def _time(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["time"])


def _pruned(told_state: dict, since: datetime) -> dict:
    """The told values not older than ``since``; subjects (and kinds) left without values are dropped."""
    kept: dict = {}
    for kind, subjects in told_state.items():
        for subject, entries in subjects.items():
            fresh = [e for e in entries if _time(e) >= since]
            if fresh:
                kept.setdefault(kind, {})[subject] = fresh
    return kept


def _latest_per_channel(entries: list[dict]) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for e in sorted(entries, key=lambda e: (_time(e), e["event_id"])):
        latest[e["channel"]] = e
    return latest


def fold(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    value = told(event)
    if value is None:
        return Folded(state)
    kind, subject, text = value
    window = timedelta(days=rules.consistency_window_days)
    told_state = _pruned(state.get("told", {}), event.time - window)
    entries = told_state.get(kind, {}).get(subject, [])
    if any(e["event_id"] == event.id and e.get("source") == event.source for e in entries):
        return Folded(state)  # already folded (a redelivery the caller did not deduplicate)
    channel = event.channel.value
    mine = {"channel": channel, "value": text, "event_id": event.id, "source": event.source,
            "time": event.time.isoformat()}
    # Entries after this event's time stay in state when events arrive late; only those within the window count.
    near = [e for e in entries if abs(_time(e) - event.time) <= window]
    conflicts = [e for ch, e in _latest_per_channel(near).items() if ch != channel and e["value"] != text]
    told_state.setdefault(kind, {})[subject] = [*entries, mine]
    new_state = {**state, "told": told_state}
    if not conflicts:
        return Folded(new_state)

    involved = sorted([*conflicts, mine], key=lambda e: (_time(e), e["channel"], e["event_id"]))
    violation_id = f"violation-{event.id}"
    derived = Event.of(
        ConsistencyViolated(kind=kind, subject=subject, told=[
            ToldValue(channel=e["channel"], value=e["value"], event_id=e["event_id"], time=_time(e))
            for e in involved]),
        customer=event.subject, channel=event.channel, source=SOURCE, id=violation_id, time=event.time,
        correlationid=event.correlationid, causationid=event.id)
    row = {
        "violation_id": violation_id, "customer_id": event.subject, "kind": kind, "subject": subject,
        "channels": [e["channel"] for e in involved], "values": [e["value"] for e in involved],
        "event_ids": [e["event_id"] for e in involved], "detected_at": event.time, "event_id": event.id,
        "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
    }
    return Folded(new_state, [row], [derived])


PROJECTION = StatefulProjection("consistency", TABLE, SCHEMA, fold)
