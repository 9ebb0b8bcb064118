"""Pure projection: an event (and where it was read) -> its timeline row. No I/O, no clock.

The summary is chosen by the event's ``name`` (never by the payload's class), so the projection reads pydantic and
msgspec-decoded events alike; ``CallTransferred`` arrives upcast to v2.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from projections.origin import Origin
from schemas import derived as dv
from schemas import events as ev
from schemas.envelope import Event
from schemas.wire import data_json

TABLE = "timeline"
SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("time", pa.timestamp("ms", tz="UTC")), ("source", pa.string()),
    ("event_id", pa.string()), ("type", pa.string()), ("kind", pa.string()), ("channel", pa.string()),
    ("correlation_id", pa.string()), ("summary", pa.string()), ("data", pa.string()), ("topic", pa.string()),
    ("partition", pa.uint32()), ("offset", pa.uint64()),
])

_SUMMARIES: dict[str, Callable] = {p.name: summarise for p, summarise in {
    ev.MailSent: lambda d: f"letter {d.letter_id} sent to {d.address.one_line()}"
                           + (f": {d.subject}" if d.subject else ""),
    ev.MailReturned: lambda d: f"letter {d.letter_id} returned ({d.reason.value.replace('_', ' ')}) "
                               f"from {d.address.one_line()}",
    ev.CallStarted: lambda d: f"{d.direction} call {d.call_id}" + (f" in queue {d.queue}" if d.queue else ""),
    ev.CallTransferredV2: lambda d: f"call {d.call_id} transferred {d.from_target or '?'} -> {d.to_target}"
                                    + (f" [{d.target_kind}]" if d.target_kind != "queue" else "")
                                    + (f" ({d.reason})" if d.reason else ""),
    ev.CallEnded: lambda d: f"call {d.call_id} ended after {d.duration_seconds}s, "
                            + ("resolved" if d.resolved else "not resolved"),
    ev.EmailReceived: lambda d: f"email from customer: {d.subject}",
    ev.EmailSent: lambda d: f"email to customer: {d.subject}",
    ev.MessageReceived: lambda d: f"customer: {d.text}",
    ev.MessageSent: lambda d: f"{d.agent or 'agent'}: {d.text}",
    ev.StoreVisited: lambda d: f"visited store {d.store_id}" + (f": {d.purpose}" if d.purpose else ""),
    ev.WebPageViewed: lambda d: f"viewed {d.url}",
    ev.BookingMade: lambda d: f"booked {d.product} ({d.booking_id}) for {d.amount} {d.currency}"
                              + (f" with discount {d.discount_code}" if d.discount_code else ""),
    ev.BookingChanged: lambda d: f"booking {d.booking_id} changed: {d.change}",
    ev.FeedbackGiven: lambda d: f"{d.metric.value.upper()} {d.score}"
                                + (f" about {d.about_channel}" if d.about_channel else "")
                                + (f": {d.comment}" if d.comment else ""),
    ev.PriceQuoted: lambda d: f"price for {d.subject}: {d.amount} {d.currency}",
    ev.OfferMade: lambda d: f"offer {d.subject}: {d.terms}",
    ev.AnswerGiven: lambda d: f"answer on {d.subject}: {d.answer}",
    ev.CaseOpened: lambda d: f"case {d.case_id} opened: {d.intent}",
    ev.CaseResolved: lambda d: f"case {d.case_id} resolved" + (f": {d.resolution}" if d.resolution else ""),
    ev.AddressChanged: lambda d: f"address changed to {d.address.one_line()}",
    ev.IdentityLinked: lambda d: f"{d.kind} {d.value} linked",
    ev.IdentityUnlinked: lambda d: f"{d.kind} {d.value} unlinked",
    # derived events: what the projections concluded, on the same timeline
    dv.AddressFlagged: lambda d: f"ADDRESS FLAGGED undeliverable after {d.returns} returned letters: "
                                 f"{d.address.one_line()}; stop mailing it",
    dv.AddressFlagCleared: lambda d: f"address flag cleared ({d.reason})",
    dv.MailToFlaggedAddress: lambda d: f"ALERT letter {d.letter_id} sent to an address flagged undeliverable",
    dv.ConsistencyViolated: lambda d: f"INCONSISTENT {d.kind} for {d.subject}: "
                                      + ", ".join(f"{t.channel} said {t.value}" for t in d.told),
}.items()}


def summary(event: Event) -> str:
    """One human line about the event, for the timeline."""
    return _SUMMARIES[event.name](event.data)


def project(event: Event, origin: Origin) -> list[dict]:
    """The timeline rows for one event: exactly one, carrying its id and origin."""
    return [{
        "customer_id": event.subject, "time": event.time, "source": event.source, "event_id": event.id,
        "type": event.type, "kind": event.name, "channel": event.channel.value,
        "correlation_id": event.correlationid or "", "summary": summary(event),
        "data": data_json(event),
        "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
    }]
