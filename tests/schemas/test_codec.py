"""The codec: Kafka record <-> Event in both CloudEvents Kafka modes; every bad record is a DecodeError with a reason."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import events as ev
from schemas.channels import Channel
from schemas.upcasters import upcast
from schemas.codec import (BATCH_CONTENT_TYPE, MAX_RECORD_BYTES, STRUCTURED_CONTENT_TYPE, DecodeError, Record, as_sent,
                           decode, encode, from_http, split_batch)
from schemas.envelope import Event
from tests.schemas.payload_samples import CHANNEL_OF, SAMPLES

MODES = pytest.mark.parametrize("mode", ["binary", "structured"])

# --- strategies ---------------------------------------------------------------------------------------------------
ids = st.text(min_size=1, max_size=40)
texts = st.text(max_size=80)
short = st.text(max_size=30)
addresses = st.builds(ev.PostalAddress, street=st.text(min_size=1, max_size=40), house_number=ids.filter(
    lambda s: len(s) <= 20), postcode=st.text(min_size=1, max_size=20), city=st.text(min_size=1, max_size=40),
    country=st.text(min_size=2, max_size=2))
amounts = st.decimals(min_value=0, max_value=10**12 - 1, places=2, allow_nan=False, allow_infinity=False)
currencies = st.text(min_size=3, max_size=3)
identity_kinds = st.sampled_from(["phone", "email", "twitter", "facebook", "whatsapp", "loyalty_card", "other"])


@st.composite
def feedback(draw) -> ev.FeedbackGiven:
    metric = draw(st.sampled_from(ev.FeedbackMetric))
    low, high = ev.FEEDBACK_SCALE[metric]
    return ev.FeedbackGiven(survey_id=draw(ids), metric=metric, score=draw(st.integers(low, high)),
                            about_channel=draw(st.none() | st.sampled_from([c.value for c in Channel])),
                            comment=draw(texts))


payloads = st.one_of(
    st.builds(ev.MailReturned, letter_id=ids, address=addresses, reason=st.sampled_from(ev.ReturnReason),
              note=texts),
    st.builds(ev.CallStarted, call_id=ids, direction=st.sampled_from(["inbound", "outbound"]), queue=short,
              agent=short),
    st.builds(ev.CallEnded, call_id=ids, duration_seconds=st.integers(0, 2**53), resolved=st.booleans()),
    st.builds(ev.EmailSent, message_id=ids, in_reply_to=st.none() | ids, subject=texts, body=texts),
    st.builds(ev.MessageReceived, conversation_id=ids, text=texts, handle=short),
    st.builds(ev.BookingMade, booking_id=ids, product=ids, amount=amounts, currency=currencies,
              discount_code=short),
    st.builds(ev.PriceQuoted, subject=ids, amount=amounts, currency=currencies),
    st.builds(ev.AddressChanged, address=addresses, previous=st.none() | addresses),
    st.builds(ev.IdentityLinked, kind=identity_kinds, value=ids),
    st.builds(ev.IdentityUnlinked, kind=identity_kinds, value=ids),
    feedback(),
)

# Whole-minute UTC offsets only: see test_sub_minute_utc_offset_survives_the_codec below.
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
times = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)


@st.composite
def events(draw) -> Event:
    return Event.of(draw(payloads), customer=draw(ids), channel=draw(st.sampled_from(Channel)),
                    source=draw(ids), id=draw(ids), time=draw(times),
                    correlationid=draw(st.none() | ids), causationid=draw(st.none() | ids))


# --- round trips --------------------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=events(), mode=st.sampled_from(["binary", "structured"]))
def test_decode_inverts_encode(event, mode):
    record = encode(event, mode)
    assert isinstance(record, Record)
    assert record.key == event.subject.encode()
    back = decode(record.value, record.headers)
    assert back == event
    assert type(back) is type(event) and type(back.data) is type(event.data)
    assert back.time == event.time and back.time.utcoffset() == event.time.utcoffset()


@MODES
@pytest.mark.parametrize("payload_type", ev.PAYLOADS, ids=lambda p: p.type_name())
def test_every_payload_type_survives_the_codec(payload_type, mode):
    event = Event.of(SAMPLES[payload_type], customer="c-1", channel=CHANNEL_OF[payload_type], source="/t",
                     correlationid="j", causationid="k")
    record = encode(event, mode)
    assert decode(record.value, record.headers) == upcast(event)  # an older version comes out as the latest
    assert decode(record.value, dict(record.headers)) == upcast(event)


def sample(**kw) -> Event:
    return Event.of(SAMPLES[ev.MailReturned], customer="cust-1", channel="mail", source="/channels/mail",
                    id="evt-1", time=datetime(2024, 5, 1, 9, 30, tzinfo=timezone.utc), **kw)


def test_binary_mode_layout():
    event = sample(correlationid="j-1")
    record = encode(event, "binary")
    headers = dict(record.headers)
    assert len(headers) == len(record.headers), "duplicate headers"
    assert headers == {
        "ce_specversion": b"1.0", "ce_id": b"evt-1", "ce_source": b"/channels/mail",
        "ce_type": b"omnitrail.MailReturned.v1", "ce_subject": b"cust-1", "ce_time": b"2024-05-01T09:30:00Z",
        "ce_dataschema": b"urn:omnitrail:schema:omnitrail.MailReturned.v1", "ce_channel": b"mail",
        "ce_correlationid": b"j-1", "content-type": b"application/json"}
    assert orjson.loads(record.value) == event.data.model_dump(mode="json")
    assert record.key == b"cust-1"


def test_structured_mode_layout():
    event = sample()
    record = encode(event, "structured")
    assert record.headers == [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
    body = orjson.loads(record.value)
    assert body["type"] == "omnitrail.MailReturned.v1" and body["specversion"] == "1.0"
    assert body["data"]["reason"] == "moved"
    assert "correlationid" not in body  # None attributes are left out, not sent as null
    assert record.key == b"cust-1"


def test_default_mode_is_binary():
    assert encode(sample()) == encode(sample(), "binary")


@MODES
def test_headers_as_dict_or_list_or_tuples(mode):
    event = sample(causationid="x")
    record = encode(event, mode)
    assert decode(record.value, record.headers) == upcast(event)  # an older version comes out as the latest
    assert decode(record.value, dict(record.headers)) == upcast(event)
    assert decode(record.value, tuple(record.headers)) == event
    assert decode(record.value, [(k, bytearray(v)) for k, v in record.headers]) == event


def test_header_names_are_case_insensitive():
    record = encode(sample(), "binary")
    assert decode(record.value, [(k.upper(), v) for k, v in record.headers]) == sample()


def test_foreign_headers_are_ignored():
    record = encode(sample(), "binary")
    assert decode(record.value, [("traceparent", b"00-abc-def-01"), *record.headers]) == sample()


def test_content_type_parameters_are_ignored():
    record = encode(sample(), "binary")
    headers = [(k, v) for k, v in record.headers if k != "content-type"]
    assert decode(record.value, [*headers, ("content-type", b"application/json; charset=utf-8")]) == sample()
    structured = encode(sample(), "structured")
    assert decode(structured.value, {"content-type": b"application/cloudevents+json; charset=UTF-8"}) == sample()


def test_binary_content_type_defaults_to_json():
    record = encode(sample(), "binary")
    assert decode(record.value, [(k, v) for k, v in record.headers if k != "content-type"]) == sample()


@pytest.mark.parametrize("headers", [None, [], {}])
def test_record_without_headers_is_structured(headers):
    assert decode(encode(sample(), "structured").value, headers) == sample()


# --- decode errors ------------------------------------------------------------------------------------------------
def reason(value, headers) -> str:
    with pytest.raises(DecodeError) as info:
        decode(value, headers)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == info.value.reason
    return info.value.reason


def binary(**changes) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The binary record of ``sample()`` with headers replaced (bytes) or removed (None)."""
    record = encode(sample(), "binary")
    headers = [(k, changes.get(k, v)) for k, v in record.headers if changes.get(k, v) is not None]
    return record.value, headers


@MODES
def test_tombstone(mode):
    assert "no value" in reason(None, encode(sample(), mode).headers)


@MODES
def test_oversized_value(mode):
    record = encode(sample(), mode)
    padded = record.value[:-1] + b" " * (MAX_RECORD_BYTES + 1 - len(record.value)) + b"}"
    assert len(padded) == MAX_RECORD_BYTES + 1
    why = reason(padded, record.headers)
    assert str(MAX_RECORD_BYTES + 1) in why and "limit" in why


def test_value_at_the_limit_is_accepted():
    record = encode(sample(), "structured")
    padded = record.value[:-1] + b" " * (MAX_RECORD_BYTES - len(record.value)) + b"}"
    assert len(padded) == MAX_RECORD_BYTES
    assert decode(padded, record.headers) == sample()


@MODES
def test_truncated_json(mode):
    record = encode(sample(), mode)
    assert "not valid UTF-8 JSON" in reason(record.value[:-3], record.headers)


@MODES
@pytest.mark.parametrize("junk", [b"", b"\x00", b"not json", b"{'a': 1}"])
def test_not_json(mode, junk):
    assert "not valid UTF-8 JSON" in reason(junk, encode(sample(), mode).headers)


@MODES
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])
def test_invalid_utf8_in_value(mode, bad):
    record = encode(sample(), mode)
    value = record.value.replace(b"cust-1", b"cust-" + bad) if mode == "structured" else \
        record.value.replace(b'"moved"', b'"mov' + bad + b'"')
    assert value != record.value
    assert "not valid UTF-8" in reason(value, record.headers)


@pytest.mark.parametrize("header", ["ce_source", "ce_id", "content-type"])
def test_invalid_utf8_header(header):
    value, headers = binary(**{header: b"\xff\xfe"})
    why = reason(value, headers)
    assert header in why and "UTF-8" in why


def test_invalid_utf8_header_in_dict():
    value, headers = binary()
    assert "ce_subject" in reason(value, {**dict(headers), "ce_subject": b"\xc3"})


def test_unknown_type():
    value, headers = binary(ce_type=b"omnitrail.MailEaten.v1")
    why = reason(value, headers)
    assert "unknown event type" in why and "omnitrail.MailEaten.v1" in why


def test_unknown_version():
    value, headers = binary(ce_type=b"omnitrail.MailReturned.v9")
    why = reason(value, headers)
    assert "unknown event type" in why and "omnitrail.MailReturned.v9" in why


def test_unknown_version_structured():
    body = orjson.loads(encode(sample(), "structured").value)
    body["type"] = "omnitrail.MailReturned.v9"
    assert "omnitrail.MailReturned.v9" in reason(orjson.dumps(body), None)


def test_short_type_name_on_the_wire():
    value, headers = binary(ce_type=b"MailReturned")
    assert "omnitrail.MailReturned.v1" in reason(value, headers)


@pytest.mark.parametrize("ctype", [b"text/plain", b"application/xml", b"application/cloudevents-batch+json"])
def test_wrong_content_type_binary(ctype):
    value, headers = binary(**{"content-type": ctype})
    why = reason(value, headers)
    assert "content-type" in why and ctype.decode() in why


@pytest.mark.parametrize("ctype", [b"application/json", b"text/plain"])
def test_wrong_content_type_structured(ctype):
    record = encode(sample(), "structured")
    why = reason(record.value, [("content-type", ctype)])
    assert "ce_specversion" in why and ctype.decode() in why


def test_binary_record_without_specversion_is_not_taken_for_structured():
    value, headers = binary(ce_specversion=None)
    assert "ce_specversion" in reason(value, headers)


@pytest.mark.parametrize("missing", ["ce_id", "ce_source", "ce_subject", "ce_time", "ce_channel"])
def test_binary_record_missing_a_ce_header(missing):
    value, headers = binary(**{missing: None})
    why = reason(value, headers)
    assert f"{missing[3:]}: Field required" in why


def test_binary_record_missing_ce_type():
    value, headers = binary(ce_type=None)
    assert "type: missing" in reason(value, headers)


def test_structured_body_with_stray_ce_headers_is_still_checked():
    # ce_ headers without ce_specversion do not make a record binary; the structured body must be whole.
    record = encode(sample(), "structured")
    body = orjson.loads(record.value)
    del body["subject"]
    why = reason(orjson.dumps(body), [*record.headers, ("ce_subject", b"cust-1")])
    assert "subject: Field required" in why


def test_unknown_ce_extension_is_rejected():
    value, headers = binary()
    assert "colour" in reason(value, [*headers, ("ce_colour", b"red")])


@pytest.mark.parametrize(("header", "bad", "field"), [
    ("ce_time", b"2024-05-01T09:30:00", "time"), ("ce_time", b"yesterday", "time"),
    ("ce_channel", b"fax", "channel"), ("ce_specversion", b"0.3", "specversion"), ("ce_subject", b"", "subject")])
def test_bad_header_values_are_named(header, bad, field):
    value, headers = binary(**{header: bad})
    assert f"invalid event: {field}: " in reason(value, headers)


def test_bad_payload_in_binary_mode_is_named():
    value, headers = binary()
    body = orjson.loads(value)
    body["reason"] = "lost"
    assert "data.reason: " in reason(orjson.dumps(body), headers)


@pytest.mark.parametrize("body", [b"[]", b"42", b"null", b'"event"'])
def test_structured_value_that_is_not_an_object(body):
    assert "expected a JSON object" in reason(body, None)


def test_decode_error_is_a_value_error_with_reason():
    err = DecodeError("because")
    assert isinstance(err, ValueError) and err.reason == "because" and str(err) == "because"


# --- a known bug, kept visible ------------------------------------------------------------------------------------
@MODES
def test_sub_minute_utc_offset_survives_the_codec(mode):
    odd = timezone(timedelta(minutes=19, seconds=32))  # Europe/Amsterdam before 1937
    event = Event.of(SAMPLES[ev.CallEnded], customer="c", channel="phone", source="/t",
                     time=datetime(1930, 6, 1, 12, 0, tzinfo=odd))
    record = encode(event, mode)
    assert decode(record.value, record.headers).time == event.time


def test_structured_content_type_wins_over_ce_headers():
    record = encode(sample(), "structured")
    assert decode(record.value, [*record.headers, ("ce_specversion", b"1.0")]) == sample()


# --- the CloudEvents HTTP binding (ingest) ----------------------------------------------------------------------------
def _sample_events() -> list[Event]:
    start = datetime(2026, 11, 1, 9, tzinfo=timezone.utc)
    return [Event.of(p, customer=f"c-{i}", channel=CHANNEL_OF[t], source="/test/http", id=f"h-{i}",
                     time=start + timedelta(minutes=i)) for i, (t, p) in enumerate(SAMPLES.items())]


def test_a_valid_batch_reads_as_the_same_events_as_one_by_one():
    events = _sample_events()
    body = orjson.dumps([e.model_dump(mode="json", exclude_none=True) for e in events])
    assert from_http(body, {"Content-Type": BATCH_CONTENT_TYPE}) == events
    assert [decode(as_sent(e, raw).value, as_sent(e, raw).headers) for e, raw in zip(events, split_batch(body))] \
        == [upcast(e) for e in events]


def test_a_batch_with_a_bad_event_answers_per_event():
    good, bad = (e.model_dump(mode="json", exclude_none=True) for e in _sample_events()[:2])
    bad["time"] = "yesterday"
    results = from_http(orjson.dumps([good, bad]), {"content-type": BATCH_CONTENT_TYPE})
    assert isinstance(results[0], Event) and isinstance(results[1], DecodeError)
    assert results[1].reason.startswith("invalid event: time:")


def test_binary_mode_headers_are_percent_decoded():
    event = _sample_events()[0]
    headers = {f"ce-{k}": str(v) for k, v in
               event.model_dump(mode="json", exclude_none=True, exclude={"data", "datacontenttype"}).items()}
    headers["ce-source"] = "/test%2Fhttp"  # '/' sent percent-encoded, as an SDK may
    [decoded] = from_http(orjson.dumps(event.data.model_dump(mode="json")),
                          {**headers, "content-type": "application/json"})
    assert decoded == event


@pytest.mark.parametrize("ctype", ["text/plain", "", "application/xml"])
def test_a_body_that_is_not_cloudevents_is_refused_as_a_whole(ctype):
    with pytest.raises(DecodeError, match="content-type must be"):
        from_http(b"{}", {"content-type": ctype})
