"""Pure projection: a FeedbackGiven event -> its feedback row (NPS, CES or CSAT score about a channel).

``channel`` is the channel the feedback is about: ``about_channel`` when the survey says so, otherwise the channel
the event came in on. ``day`` is the UTC date of the answer. Other events give no rows. No I/O, no clock.
"""

from __future__ import annotations

from datetime import UTC

import pyarrow as pa

from projections.origin import Origin
from schemas import events as ev
from schemas.envelope import Event

TABLE = "feedback"
SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("time", pa.timestamp("ms", tz="UTC")), ("day", pa.date32()),
    ("metric", pa.string()), ("score", pa.uint8()), ("channel", pa.string()), ("survey_id", pa.string()),
    ("event_id", pa.string()), ("source", pa.string()), ("topic", pa.string()), ("partition", pa.uint32()),
    ("offset", pa.uint64()),
])


_FEEDBACK = ev.FeedbackGiven.name
HANDLES = frozenset({_FEEDBACK})


def project(event: Event, origin: Origin) -> list[dict]:
    if event.name != _FEEDBACK:  # by name, never the payload's class: pydantic and msgspec-decoded events alike
        return []
    d = event.data
    return [{
        "customer_id": event.subject, "time": event.time, "day": event.time.astimezone(UTC).date(),
        "metric": d.metric.value, "score": d.score, "channel": d.about_channel or event.channel.value,
        "survey_id": d.survey_id, "event_id": event.id, "source": event.source,
        "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
    }]
