"""Pure projection: an event that tells the customer a value -> its quotes row. No I/O, no clock.

Values are normalised so that trivial formatting differences are not read as different values: a price is
``"<amount with 2 decimals> <CURRENCY>"``, offer terms are stripped, an answer has its whitespace collapsed and is
casefolded.
"""

from __future__ import annotations

import pyarrow as pa

from projections.origin import Origin
from schemas import events as ev
from schemas.envelope import Event

TABLE = "quotes"
SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("kind", pa.string()), ("subject", pa.string()), ("channel", pa.string()),
    ("value", pa.string()), ("time", pa.timestamp("ms", tz="UTC")), ("event_id", pa.string()),
    ("source", pa.string()), ("topic", pa.string()), ("partition", pa.uint32()), ("offset", pa.uint64()),
])


_TOLD = {  # by event name (never the payload's class): pydantic and msgspec-decoded events alike
    ev.PriceQuoted.name: lambda d: ("price", d.subject, f"{d.amount:.2f} {d.currency.upper()}"),
    ev.OfferMade.name: lambda d: ("offer", d.subject, d.terms.strip()),
    ev.AnswerGiven.name: lambda d: ("answer", d.subject, " ".join(d.answer.split()).casefold()),
}


HANDLES = frozenset(_TOLD)  # the events that tell a value


def told(event: Event) -> tuple[str, str, str] | None:
    """``(kind, subject, normalised value)`` when the event tells the customer a price, offer or answer; else None."""
    normalise = _TOLD.get(event.name)
    return None if normalise is None else normalise(event.data)


def project(event: Event, origin: Origin) -> list[dict]:
    """The quotes rows for one event: one if it told the customer a value, none otherwise."""
    value = told(event)
    if value is None:
        return []
    kind, subject, text = value
    return [{
        "customer_id": event.subject, "kind": kind, "subject": subject, "channel": event.channel.value,
        "value": text, "time": event.time, "event_id": event.id, "source": event.source,
        "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
    }]
