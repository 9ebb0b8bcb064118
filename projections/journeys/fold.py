"""Pure stateful fold: group a customer's contacts into journeys (one need each) and keep experience metrics.

Assignment: an event with a ``correlationid`` belongs to the journey with that id. An event without one joins the
customer's most recently active journey (latest ``last_at``; ties: the one folded into last) when this event lies
within ``rules.journey_gap_hours`` of that journey (``started_at - gap <= time <= last_at + gap``); otherwise it
starts a new journey ``inferred-<event id>``.

State (per customer, JSON-serialisable; times are integer microseconds since the Unix epoch, UTC)::

    {"clock": n, "latest": journey_id, "journeys": {journey_id: {
        "journey_id", "customer_id", "started_at", "last_at", "touched" (clock at last fold), "version",
        "steps": [[time, channel], ...]   # contact steps in time order (arrival order for equal times)
        "switches": n,                    # channel switches between consecutive steps
        "first_steps": {channel: [time, version]},  # each channel's first step (version: when it was folded)
        "first_channel": str,             # channel of the first event folded, for a journey without steps
        "contacts": {key: true, ...}, "transfers": n, "resolved_at": time | None,
        "first_response": {channel: seconds}, "asked": {channel: time},  # when the answered message was sent
        "awaiting": {key: [channel, time]}}}}

``latest`` is the most recently active journey (the one an uncorrelated event may join), kept up to date so that
no event has to look at every journey. The fold updates the state it is given in place and returns it (the
runtime keeps only the returned state); redelivered events are deduplicated by the runtime.

Derived events (``schemas.derived``, read from the derived topic) are not interactions: they are ignored.
Every event of a journey is folded into it (``version`` counts them) and emits one row: the journey's snapshot.
Feedback (``FeedbackGiven`` or the survey channel) belongs to the journey but is not a contact step: it is the
measurement of the journey, so it adds no channel and no switch. Channels and switches are computed over the
steps in time order, so an event arriving late (channels travel on different topics) lands in its place.

* contacts: customer-initiated contacts, distinct: an inbound call (call id), an email received (message id), a
  conversation on a messaging channel (channel + conversation id: many messages are one contact), a store visit
  (the event). ``repeat_contacts = max(0, contacts - 1)``.
* first response per channel: the first EmailReceived -> the first later EmailSent; a MessageReceived on a channel
  -> the first later MessageSent in the same conversation; the first answered contact of a channel sets it. The row
  says when the answered message was sent (``first_response_asked_at``), and when the first channel was first used
  (``first_channel_at``): the channel metrics count a response on the day of the message it answered and a
  resolved journey on the day of its first step, so that both lie within that day's volume. A state folded before
  ``asked`` was kept gives the channel's first step instead, an event of that channel too.
* resolved: the earliest CaseResolved or CallEnded(resolved=True); resolution is sticky. FCR: resolved, at most
  one contact and no transfer.

At most ``JOURNEY_LIMIT`` journeys are kept per customer; the least recently active are forgotten beyond that
(their rows stay in the store; a forgotten journey that comes back starts counting again).
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from projections.origin import Origin
from projections.rules import Rules
from projections.stateful import Folded, StatefulProjection
from schemas import derived as dv
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
    ("first_response_asked_at", pa.list_(pa.timestamp("ms", tz="UTC"))),
    ("resolved", pa.bool_()), ("resolved_at", pa.timestamp("ms", tz="UTC")),
    ("resolution_seconds", pa.float64()), ("first_contact_resolution", pa.bool_()), ("first_channel", pa.string()),
    ("first_channel_at", pa.timestamp("ms", tz="UTC")),
    ("event_id", pa.string()), ("source", pa.string()), ("topic", pa.string()), ("partition", pa.uint32()),
    ("offset", pa.uint64()), ("version", pa.uint64()),
])


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_HOUR = 3_600_000_000  # microseconds

# Dispatch on the event's name, never on the payload's class: the worker hands folds msgspec-decoded events.
INTERACTIONS = frozenset(p.name for p in ev.PAYLOADS)
assert INTERACTIONS.isdisjoint(p.name for p in dv.DERIVED)
CALL_STARTED, CALL_TRANSFERRED, CALL_ENDED = ev.CallStarted.name, ev.CallTransferredV2.name, ev.CallEnded.name
EMAIL_RECEIVED, EMAIL_SENT = ev.EmailReceived.name, ev.EmailSent.name
MESSAGE_RECEIVED, MESSAGE_SENT = ev.MessageReceived.name, ev.MessageSent.name
STORE_VISITED, FEEDBACK_GIVEN, CASE_RESOLVED = ev.StoreVisited.name, ev.FeedbackGiven.name, ev.CaseResolved.name
SURVEY = Channel.SURVEY.value
_CHANNEL_VALUE = {c: c.value for c in Channel}  # faster than ``.value`` (an enum property); a value maps to itself
_RESPONSES = frozenset({EMAIL_RECEIVED, MESSAGE_RECEIVED, EMAIL_SENT, MESSAGE_SENT})


def micros(t: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact, unlike ``timestamp()``)."""
    return (t - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(0, 0, us)


def _seconds(us: int) -> float:
    return us / 1_000_000  # exactly timedelta.total_seconds()


_CONTACTS = {  # event name -> (event, channel value) -> contact key or None
    CALL_STARTED: lambda e, channel: f"call:{e.data.call_id}" if e.data.direction == "inbound" else None,
    EMAIL_RECEIVED: lambda e, channel: f"email:{e.data.message_id}",
    MESSAGE_RECEIVED: lambda e, channel: f"conversation:{channel}\x1f{e.data.conversation_id}",
    STORE_VISITED: lambda e, channel: f"store:{e.source}\x1f{e.id}",
}


def _assign(state: dict, event: Event, t: int, rules: Rules) -> str:
    """The id of the journey the event belongs to (existing or new)."""
    if event.correlationid:
        return event.correlationid
    latest = state["journeys"].get(state.get("latest"))
    if latest is not None:
        gap = rules.journey_gap_hours * _HOUR
        if latest["started_at"] - gap <= t <= latest["last_at"] + gap:
            return latest["journey_id"]
    return f"inferred-{event.id}"


def _activity(j: dict) -> tuple[int, int]:
    """How recently a journey was active: latest ``last_at``, ties broken by the one folded into last."""
    return j["last_at"], j["touched"]


def _new_journey(journey_id: str, event: Event, t: int, channel: str) -> dict:
    return {"journey_id": journey_id, "customer_id": event.subject, "started_at": t, "last_at": t, "touched": 0,
            "version": 0, "steps": [], "switches": 0, "first_steps": {}, "first_channel": channel,
            "contacts": {}, "transfers": 0, "resolved_at": None, "first_response": {}, "asked": {}, "awaiting": {}}


def _step_time(step: list) -> int:
    return step[0]


def _step(j: dict, t: int, channel: str) -> None:
    """Insert a contact step in time order, keeping the switch count and each channel's first step."""
    steps = j["steps"]
    # after every step at or before ``t``; usually the last, as events mostly arrive in time order
    i = len(steps) if not steps or steps[-1][0] <= t else bisect_right(steps, t, key=_step_time)
    before = steps[i - 1][1] if i else None
    after = steps[i][1] if i < len(steps) else None
    if before is not None and after is not None and before != after:
        j["switches"] -= 1
    j["switches"] += (before is not None and before != channel) + (after is not None and after != channel)
    steps.insert(i, [t, channel])
    first = j["first_steps"].get(channel)
    if first is None or t < first[0]:  # equal times keep arrival order: a later arrival is not first
        j["first_steps"][channel] = [t, j["version"]]


def _respond(j: dict, event: Event, name: str, channel: str, t: int) -> None:
    """Track the first response per channel."""
    awaiting, first_response = j["awaiting"], j["first_response"]
    if name == EMAIL_RECEIVED or name == MESSAGE_RECEIVED:
        if channel not in first_response:
            waiting_key = (f"email:{channel}" if name == EMAIL_RECEIVED
                           else f"conversation:{channel}\x1f{event.data.conversation_id}")
            known = awaiting.get(waiting_key)
            if known is None or t < known[1]:
                awaiting[waiting_key] = [channel, t]
        return
    if name == EMAIL_SENT:
        keys = sorted(k for k in awaiting if k.startswith("email:"))
    elif name == MESSAGE_SENT:
        key = f"conversation:{channel}\x1f{event.data.conversation_id}"
        keys = [key] if key in awaiting else []
    else:
        return
    answered = False
    for key in keys:
        asked_channel, asked = awaiting[key]
        if asked <= t and asked_channel not in first_response:
            first_response[asked_channel] = _seconds(t - asked)
            j.setdefault("asked", {})[asked_channel] = asked  # a state from before ``asked`` was kept has none
            answered = True
    if answered:  # an answered channel waits no more
        for key in [k for k, (c, _) in awaiting.items() if c in first_response]:
            del awaiting[key]


def snapshot(j: dict, event: Event, origin: Origin, t: int | None = None) -> dict:
    """The journey's row after folding ``event`` (at ``t``, its time in microseconds, if the caller has it)."""
    first_steps = j["first_steps"]
    # in the order of their first steps
    channels = sorted(first_steps, key=first_steps.__getitem__) if len(first_steps) > 1 else list(first_steps)
    contacts = len(j["contacts"])
    started, last, resolved_at = j["started_at"], j["last_at"], j["resolved_at"]
    if t is None:
        t = micros(event.time)
    # Building a datetime costs about as much as the rest of the row: the event's own time and the journey's start
    # are usually the times asked for, so each is built once.
    started_at = event.time if started == t else from_micros(started)
    last_at = event.time if last == t else started_at if last == started else from_micros(last)
    first_at = first_steps[channels[0]][0] if channels else started
    first_channel_at = started_at if first_at == started else last_at if first_at == last else from_micros(first_at)
    if j["first_response"]:
        responses = sorted(j["first_response"].items())
        asked = j.get("asked", {})
        response_channels, response_seconds = [c for c, _ in responses], [s for _, s in responses]
        asked_at = [from_micros(asked[c] if c in asked else first_steps.get(c, [started])[0]) for c, _ in responses]
    else:
        response_channels, response_seconds, asked_at = [], [], []
    return {
        "journey_id": j["journey_id"], "customer_id": j["customer_id"], "started_at": started_at,
        "last_at": last_at, "channels": channels, "channel_switches": j["switches"],
        "contacts": contacts, "transfers": j["transfers"], "repeat_contacts": max(0, contacts - 1),
        "first_response_channels": response_channels, "first_response_seconds": response_seconds,
        "first_response_asked_at": asked_at,
        "resolved": resolved_at is not None,
        "resolved_at": None if resolved_at is None else from_micros(resolved_at),
        "resolution_seconds": None if resolved_at is None else _seconds(resolved_at - started),
        "first_contact_resolution": resolved_at is not None and contacts <= 1 and j["transfers"] == 0,
        "first_channel": channels[0] if channels else j["first_channel"], "first_channel_at": first_channel_at,
        "event_id": event.id, "source": event.source, "topic": origin.topic, "partition": origin.partition,
        "offset": origin.offset, "version": j["version"],
    }


def fold(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    name = event.name
    if name not in INTERACTIONS:
        return Folded(state)  # a derived event (from the derived topic) is a conclusion, not an interaction
    journeys = state.get("journeys")
    if journeys is None:
        journeys = state["journeys"] = {}
    clock = state["clock"] = state.get("clock", 0) + 1
    t, channel = micros(event.time), _CHANNEL_VALUE[event.channel]
    journey_id = _assign(state, event, t, rules)
    j = journeys.get(journey_id)
    if j is None:
        j = journeys[journey_id] = _new_journey(journey_id, event, t, channel)
    if t < j["started_at"]:
        j["started_at"] = t
    if t > j["last_at"]:
        j["last_at"] = t
    j["touched"], j["version"] = clock, j["version"] + 1
    if name != FEEDBACK_GIVEN and channel != SURVEY:  # feedback measures the journey: not a contact step
        _step(j, t, channel)
    contact = _CONTACTS.get(name)
    if contact is not None and (key := contact(event, channel)) is not None:
        j["contacts"][key] = True
    if name == CALL_TRANSFERRED:
        j["transfers"] += 1
    elif name == CASE_RESOLVED or (name == CALL_ENDED and event.data.resolved):  # resolution is sticky
        if j["resolved_at"] is None or t < j["resolved_at"]:
            j["resolved_at"] = t
    elif name in _RESPONSES:
        _respond(j, event, name, channel, t)
    # Only this journey's activity grew, so the most recently active one is it or the one before. ``touched`` is
    # this fold's clock, the highest, so by ``_activity`` this journey is the latest unless it ended earlier.
    latest = journeys.get(state.get("latest"))
    if latest is None or j["last_at"] >= latest["last_at"]:
        state["latest"] = journey_id
    if len(journeys) > JOURNEY_LIMIT:
        oldest = min((x for x in journeys.values() if x is not j), key=_activity)
        del journeys[oldest["journey_id"]]
        if state["latest"] == oldest["journey_id"]:
            state["latest"] = max(journeys.values(), key=_activity)["journey_id"]
    return Folded(state, [snapshot(j, event, origin, t)])


PROJECTION = StatefulProjection("journeys", TABLE, SCHEMA, fold, versioned_key=("customer_id", "journey_id"),
                                handles=INTERACTIONS)
