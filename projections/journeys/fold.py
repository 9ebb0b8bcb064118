"""Pure stateful fold: group a customer's contacts into journeys (one need each) and keep experience metrics.

Assignment: an event with a ``correlationid`` belongs to the journey with that id. An event without one joins the
customer's most recently active journey (latest ``last_at``; ties: the one folded into last) when this event lies
within ``rules.journey_gap_hours`` of that journey (``started_at - gap <= time <= last_at + gap``); otherwise it
starts a new journey ``inferred-<event id>``.

State (per customer, JSON-serialisable, times ISO 8601 UTC with microseconds, so text order is time order)::

    {"clock": n, "journeys": {journey_id: {
        "journey_id", "customer_id", "started_at", "last_at", "touched" (clock at last fold), "version",
        "steps": [[time, channel], ...]   # contact steps in time order (arrival order for equal times)
        "first_channel": str,             # channel of the first event folded, for a journey without steps
        "contacts": [key, ...], "transfers": n, "resolved_at": time | None,
        "first_response": {channel: seconds}, "awaiting": {key: [channel, time]}}}}

Derived events (``schemas.derived``, read from the derived topic) are not interactions: they are ignored.
Every event of a journey is folded into it (``version`` counts them) and emits one row: the journey's snapshot.
Feedback (``FeedbackGiven`` or the survey channel) belongs to the journey but is not a contact step: it is the
measurement of the journey, so it adds no channel and no switch. Channels and switches are computed over the
steps in time order, so an event arriving late (channels travel on different topics) lands in its place.

* contacts: customer-initiated contacts, distinct: an inbound call (call id), an email received (message id), a
  conversation on a messaging channel (channel + conversation id: many messages are one contact), a store visit
  (the event). ``repeat_contacts = max(0, contacts - 1)``.
* first response per channel: the first EmailReceived -> the first later EmailSent; a MessageReceived on a channel
  -> the first later MessageSent in the same conversation; the first answered contact of a channel sets it.
* resolved: the earliest CaseResolved or CallEnded(resolved=True); resolution is sticky. FCR: resolved, at most
  one contact and no transfer.

At most ``JOURNEY_LIMIT`` journeys are kept per customer; the least recently active are forgotten beyond that
(their rows stay in the store; a forgotten journey that comes back starts counting again).
"""

from __future__ import annotations

import copy
from bisect import bisect_right
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from projections.origin import Origin
from projections.stateful import Folded, Rules, StatefulProjection, event_key
from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event

TABLE = "journeys"
JOURNEY_LIMIT = 500
SCHEMA = pa.schema([
    ("journey_id", pa.string()), ("customer_id", pa.string()),
    ("started_at", pa.timestamp("ms", tz="UTC")), ("last_at", pa.timestamp("ms", tz="UTC")),
    ("channels", pa.list_(pa.string())), ("channel_switches", pa.uint32()), ("contacts", pa.uint32()),
    ("transfers", pa.uint32()), ("repeat_contacts", pa.uint32()),
    ("first_response_channels", pa.list_(pa.string())), ("first_response_seconds", pa.list_(pa.float64())),
    ("resolved", pa.bool_()), ("resolved_at", pa.timestamp("ms", tz="UTC")),
    ("resolution_seconds", pa.float64()), ("first_contact_resolution", pa.bool_()), ("first_channel", pa.string()),
    ("event_id", pa.string()), ("source", pa.string()), ("topic", pa.string()), ("partition", pa.uint32()),
    ("offset", pa.uint64()), ("version", pa.uint64()),
])


def iso(t: datetime) -> str:
    """Fixed-width UTC ISO 8601, so that comparing the strings compares the times."""
    return t.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def contact_key(event: Event) -> str | None:
    """The identity of the customer-initiated contact this event starts or continues, if any."""
    d = event.data
    if isinstance(d, ev.CallStarted):
        return f"call:{d.call_id}" if d.direction == "inbound" else None
    if isinstance(d, ev.EmailReceived):
        return f"email:{d.message_id}"
    if isinstance(d, ev.MessageReceived):
        return f"conversation:{event.channel.value}\x1f{d.conversation_id}"
    if isinstance(d, ev.StoreVisited):
        return f"store:{event_key(event)}"
    return None


def is_feedback(event: Event) -> bool:
    return isinstance(event.data, ev.FeedbackGiven) or event.channel == Channel.SURVEY


def resolves(event: Event) -> bool:
    d = event.data
    return isinstance(d, ev.CaseResolved) or (isinstance(d, ev.CallEnded) and d.resolved)


def assign(journeys: dict[str, dict], event: Event, rules: Rules) -> str:
    """The id of the journey the event belongs to (existing or new)."""
    if event.correlationid:
        return event.correlationid
    if journeys:
        latest = max(journeys.values(), key=lambda j: (j["last_at"], j["touched"]))
        gap = timedelta(hours=rules.journey_gap_hours)
        if _dt(latest["started_at"]) - gap <= event.time <= _dt(latest["last_at"]) + gap:
            return latest["journey_id"]
    return f"inferred-{event.id}"


def _new_journey(journey_id: str, event: Event) -> dict:
    t = iso(event.time)
    return {"journey_id": journey_id, "customer_id": event.subject, "started_at": t, "last_at": t, "touched": 0,
            "version": 0, "steps": [], "first_channel": event.channel.value, "contacts": [], "transfers": 0,
            "resolved_at": None, "first_response": {}, "awaiting": {}}


def _respond(j: dict, event: Event) -> None:
    """Track the first response per channel (mutates the journey copy)."""
    d, t, channel = event.data, iso(event.time), event.channel.value
    waiting_key = None
    if isinstance(d, ev.EmailReceived):
        waiting_key = f"email:{channel}"
    elif isinstance(d, ev.MessageReceived):
        waiting_key = f"conversation:{channel}\x1f{d.conversation_id}"
    if waiting_key is not None:
        if channel not in j["first_response"]:
            known = j["awaiting"].get(waiting_key)
            if known is None or t < known[1]:
                j["awaiting"][waiting_key] = [channel, t]
        return
    if isinstance(d, ev.EmailSent):
        keys = [k for k in j["awaiting"] if k.startswith("email:")]
    elif isinstance(d, ev.MessageSent):
        keys = [k for k in [f"conversation:{channel}\x1f{d.conversation_id}"] if k in j["awaiting"]]
    else:
        return
    for key in sorted(keys):
        asked_channel, asked = j["awaiting"][key]
        if asked <= t and asked_channel not in j["first_response"]:
            j["first_response"][asked_channel] = (event.time - _dt(asked)).total_seconds()
    answered = set(j["first_response"])
    j["awaiting"] = {k: v for k, v in j["awaiting"].items() if v[0] not in answered}


def snapshot(j: dict, event: Event, origin: Origin) -> dict:
    """The journey's row after folding ``event``."""
    steps = j["steps"]
    channels: list[str] = []
    for _, channel in steps:
        if channel not in channels:
            channels.append(channel)
    switches = sum(1 for a, b in zip(steps, steps[1:]) if a[1] != b[1])
    contacts = len(j["contacts"])
    started = _dt(j["started_at"])
    resolved_at = _dt(j["resolved_at"]) if j["resolved_at"] else None
    responses = sorted(j["first_response"].items())
    return {
        "journey_id": j["journey_id"], "customer_id": j["customer_id"], "started_at": started,
        "last_at": _dt(j["last_at"]), "channels": channels, "channel_switches": switches, "contacts": contacts,
        "transfers": j["transfers"], "repeat_contacts": max(0, contacts - 1),
        "first_response_channels": [c for c, _ in responses], "first_response_seconds": [s for _, s in responses],
        "resolved": resolved_at is not None, "resolved_at": resolved_at,
        "resolution_seconds": (resolved_at - started).total_seconds() if resolved_at else None,
        "first_contact_resolution": resolved_at is not None and contacts <= 1 and j["transfers"] == 0,
        "first_channel": steps[0][1] if steps else j["first_channel"],
        "event_id": event.id, "source": event.source, "topic": origin.topic, "partition": origin.partition,
        "offset": origin.offset, "version": j["version"],
    }


def fold(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    if not isinstance(event.data, ev.PAYLOADS):
        return Folded(state)  # a derived event (from the derived topic) is a conclusion, not an interaction
    journeys = dict(state.get("journeys", {}))
    clock = state.get("clock", 0) + 1
    journey_id = assign(journeys, event, rules)
    j = copy.deepcopy(journeys[journey_id]) if journey_id in journeys else _new_journey(journey_id, event)
    t = iso(event.time)
    j["started_at"], j["last_at"] = min(j["started_at"], t), max(j["last_at"], t)
    j["touched"], j["version"] = clock, j["version"] + 1
    if not is_feedback(event):
        j["steps"].insert(bisect_right(j["steps"], t, key=lambda s: s[0]), [t, event.channel.value])
    key = contact_key(event)
    if key is not None and key not in j["contacts"]:
        j["contacts"].append(key)
    if isinstance(event.data, ev.CallTransferredV2):
        j["transfers"] += 1
    if resolves(event) and (j["resolved_at"] is None or t < j["resolved_at"]):
        j["resolved_at"] = t
    _respond(j, event)
    journeys[journey_id] = j
    if len(journeys) > JOURNEY_LIMIT:
        oldest = min((x for x in journeys.values() if x["journey_id"] != journey_id),
                     key=lambda x: (x["last_at"], x["touched"]))
        del journeys[oldest["journey_id"]]
    return Folded({**state, "clock": clock, "journeys": journeys}, [snapshot(j, event, origin)])


PROJECTION = StatefulProjection("journeys", TABLE, SCHEMA, fold)
