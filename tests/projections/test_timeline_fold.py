"""The pure timeline projection: one row per event, traceable to its record, with a summary; rows fit the schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pyarrow as pa
import pytest

from projections.arrow import to_arrow
from projections.origin import Origin
from projections.timeline.fold import SCHEMA, project, summary
from schemas import events as ev
from schemas.envelope import Event
from tests.schemas.payload_samples import CHANNEL_OF, HOME, SAMPLES
from tests.support.events import latest

# Projections see latest versions only: the codec upcasts older ones (schemas.upcasters).
LATEST = [p for p in latest() if p in ev.PAYLOADS]
ALL = pytest.mark.parametrize("payload_type", LATEST, ids=lambda p: p.type_name())
WHEN = datetime(2024, 5, 1, 11, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
ORIGIN = Origin("omnitrail.mail", 2, 41)


def event_of(payload: ev.Payload, channel: str = "mail", **kw) -> Event:
    args = dict(customer="cust-42", channel=channel, source="/channels/test", id="evt-1", time=WHEN)
    args.update(kw)
    return Event.of(payload, **args)


def sample_event(payload_type: type[ev.Payload], **kw) -> Event:
    return event_of(SAMPLES[payload_type], CHANNEL_OF[payload_type], **kw)


def only_row(event: Event, origin: Origin = ORIGIN) -> dict:
    rows = project(event, origin)
    assert isinstance(rows, list) and len(rows) == 1
    return rows[0]


@ALL
def test_one_row_per_event_carrying_id_and_origin(payload_type):
    event = sample_event(payload_type, correlationid="journey-7")
    row = only_row(event, Origin("omnitrail.phone", 7, 123_456))
    assert set(row) == set(SCHEMA.names)
    assert row["event_id"] == "evt-1"
    assert row["source"] == "/channels/test"
    assert (row["topic"], row["partition"], row["offset"]) == ("omnitrail.phone", 7, 123_456)
    assert row["customer_id"] == "cust-42"
    assert row["time"] == WHEN
    assert row["type"] == payload_type.type_name()
    assert row["kind"] == payload_type.name
    assert row["channel"] == CHANNEL_OF[payload_type]
    assert row["correlation_id"] == "journey-7"
    assert orjson.loads(row["data"]) == SAMPLES[payload_type].model_dump(mode="json")
    assert payload_type.model_validate_json(row["data"]) == SAMPLES[payload_type]


@ALL
def test_every_payload_type_has_a_summary(payload_type):
    text = summary(sample_event(payload_type))
    assert isinstance(text, str) and text.strip()
    assert "\n" not in text


def test_samples_cover_every_payload_type():
    assert set(SAMPLES) == set(ev.PAYLOADS)


def test_summary_is_in_the_row():
    event = sample_event(ev.CallEnded)
    assert only_row(event)["summary"] == summary(event) == "call C-1 ended after 312s, resolved"


def test_missing_correlation_id_is_empty_string():
    assert only_row(sample_event(ev.CallEnded))["correlation_id"] == ""


def test_same_event_from_two_offsets_differs_only_in_origin():
    event = sample_event(ev.StoreVisited)
    a, b = only_row(event, Origin("t", 0, 1)), only_row(event, Origin("t", 1, 9))
    assert {k for k in a if a[k] != b[k]} == {"partition", "offset"}


@pytest.mark.parametrize(("payload", "expected"), [
    (SAMPLES[ev.MailSent], "letter L-1 sent to Damrak 1a, 1012 LG Amsterdam, NL: Your new card"),
    (ev.MailSent(letter_id="L-2", address=HOME), "letter L-2 sent to Damrak 1a, 1012 LG Amsterdam, NL"),
    (SAMPLES[ev.MailReturned], "letter L-1 returned (moved) from Damrak 1a, 1012 LG Amsterdam, NL"),
    (ev.MailReturned(letter_id="L", address=HOME, reason="addressee_unknown"),
     "letter L returned (addressee unknown) from Damrak 1a, 1012 LG Amsterdam, NL"),
    (SAMPLES[ev.CallStarted], "outbound call C-1 in queue billing"),
    (ev.CallStarted(call_id="C-2"), "inbound call C-2"),
    (SAMPLES[ev.CallTransferredV2], "call C-1 transferred billing -> fraud-desk [agent] (odd)"),
    (ev.CallTransferredV2(call_id="C", to_target="q", target_kind="queue"), "call C transferred ? -> q"),
    (ev.CallEnded(call_id="C", duration_seconds=0), "call C ended after 0s, not resolved"),
    (SAMPLES[ev.MessageSent], "bot: hello!"),
    (ev.MessageSent(conversation_id="W", text="ok"), "agent: ok"),
    (SAMPLES[ev.BookingMade], "booked room-double (B-1) for 129.50 EUR with discount SPRING"),
    (ev.BookingMade(booking_id="B", product="p", amount=Decimal("5")), "booked p (B) for 5 EUR"),
    (SAMPLES[ev.FeedbackGiven], "CES 6 about phone: took long"),
    (ev.FeedbackGiven(survey_id="s", metric="nps", score=0), "NPS 0"),
    (SAMPLES[ev.CaseResolved], "case K-1 resolved: refunded"),
    (ev.CaseResolved(case_id="K"), "case K resolved"),
    (SAMPLES[ev.AddressChanged], "address changed to Coolsingel 40, 3011 AD Rotterdam, NL"),
    (SAMPLES[ev.IdentityLinked], "whatsapp +31612345678 linked"),
    (SAMPLES[ev.IdentityUnlinked], "twitter @piet unlinked"),
])
def test_summary_texts(payload, expected):
    assert summary(event_of(payload)) == expected


# --- Arrow ----------------------------------------------------------------------------------------------------------
def all_rows() -> list[dict]:
    rows = []
    for i, payload_type in enumerate(LATEST):
        event = sample_event(payload_type, id=f"evt-{i}", correlationid=None if i % 2 else f"j-{i}")
        rows += project(event, Origin(f"omnitrail.{CHANNEL_OF[payload_type]}", i % 3, 2**40 + i))
    return rows


def test_rows_of_every_payload_type_convert_to_arrow():
    rows = all_rows()
    table = to_arrow(rows, SCHEMA)
    assert table.schema == SCHEMA
    assert table.num_rows == len(LATEST)
    assert table.column("kind").to_pylist() == [p.name for p in LATEST]
    assert table.column("offset").to_pylist() == [2**40 + i for i in range(len(LATEST))]
    assert table.column("event_id").to_pylist() == [f"evt-{i}" for i in range(len(LATEST))]
    assert table.column("summary").null_count == 0 and table.column("data").null_count == 0
    for column in ("customer_id", "time", "source", "event_id", "type", "kind", "channel", "correlation_id",
                   "summary", "data", "topic", "partition", "offset"):
        assert table.column(column).null_count == 0, column


def test_arrow_time_is_utc_milliseconds():
    table = to_arrow(only_row_list(sample_event(ev.CallEnded)), SCHEMA)
    assert table.schema.field("time").type == pa.timestamp("ms", tz="UTC")
    [when] = table.column("time").to_pylist()
    assert when == datetime(2024, 5, 1, 9, 30, 15, 123000, tzinfo=UTC)


def test_arrow_origin_types():
    assert SCHEMA.field("partition").type == pa.uint32()
    assert SCHEMA.field("offset").type == pa.uint64()
    table = to_arrow(project(sample_event(ev.CallEnded), Origin("t", 2**32 - 1, 2**64 - 1)), SCHEMA)
    assert table.column("partition").to_pylist() == [2**32 - 1]
    assert table.column("offset").to_pylist() == [2**64 - 1]


def test_empty_batch_converts():
    table = to_arrow([], SCHEMA)
    assert table.num_rows == 0 and table.schema == SCHEMA


def only_row_list(event: Event) -> list[dict]:
    return project(event, ORIGIN)
