"""Dead-letter headers: the original headers are kept, earlier dead-letter headers dropped, reason and origin added."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from consumers.deadletter import AT, OFFSET, PARTITION, REASON, TOPIC, deadletter_headers
from projections.origin import Origin
from schemas.codec import DecodeError, decode, encode
from schemas.events import CallEnded
from schemas.envelope import Event

ORIGIN = Origin("omnitrail.phone", 2, 1234)
NOW = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
DLQ = [(REASON, b"bad"), (TOPIC, b"omnitrail.phone"), (PARTITION, b"2"), (OFFSET, b"1234"),
       (AT, NOW.isoformat().encode())]


def test_originals_kept_in_order_then_reason_and_origin():
    original = [("ce_type", b"omnitrail.Nope.v1"), ("content-type", b"application/json"), ("x-trace", b"\xff\x00")]
    assert deadletter_headers(original, "bad", ORIGIN, NOW) == original + DLQ


def test_repeated_original_headers_are_all_kept():
    original = [("x", b"1"), ("x", b"2")]
    assert deadletter_headers(original, "bad", ORIGIN, NOW)[:2] == original


def test_earlier_deadletter_headers_are_replaced():
    original = [("ce_id", b"1"), (REASON, b"old reason"), (TOPIC, b"old.topic"), ("dlq_whatever", b"x"),
                ("content-type", b"application/json"), (AT, b"2020-01-01")]
    out = deadletter_headers(original, "bad", ORIGIN, NOW)
    assert out == [("ce_id", b"1"), ("content-type", b"application/json")] + DLQ
    assert [k for k, _ in out].count(REASON) == 1


def test_dict_headers():
    out = deadletter_headers({"ce_id": b"1", REASON: b"old", "k": b"v"}, "bad", ORIGIN, NOW)
    assert out == [("ce_id", b"1"), ("k", b"v")] + DLQ


@pytest.mark.parametrize("headers", [None, [], {}, ()])
def test_no_headers(headers):
    assert deadletter_headers(headers, "bad", ORIGIN, NOW) == DLQ


def test_header_values_become_bytes():
    out = deadletter_headers([("a", None), ("b", bytearray(b"ba")), ("c", memoryview(b"mv"))], "bad", ORIGIN, NOW)
    assert out[:3] == [("a", b""), ("b", b"ba"), ("c", b"mv")]
    assert all(isinstance(v, bytes) for _, v in out)


def test_reason_and_origin_values():
    out = dict(deadletter_headers([], "value is not valid UTF-8 JSON: ü", Origin("t.x", 0, 2**63 - 1), NOW))
    assert out[REASON] == "value is not valid UTF-8 JSON: ü".encode()
    assert out[TOPIC] == b"t.x"
    assert out[PARTITION] == b"0"
    assert out[OFFSET] == str(2**63 - 1).encode()
    assert datetime.fromisoformat(out[AT].decode()) == NOW


def test_time_defaults_to_now():
    out = dict(deadletter_headers([], "bad", ORIGIN))
    at = datetime.fromisoformat(out[AT].decode())
    assert at.tzinfo is not None
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)


def test_long_reason_is_capped():
    out = dict(deadletter_headers([], "x" * 50_000, ORIGIN, NOW))
    assert out[REASON] == b"x" * 10_000


def test_input_headers_are_not_changed():
    original = [("ce_id", b"1"), (REASON, b"old")]
    deadletter_headers(original, "bad", ORIGIN, NOW)
    assert original == [("ce_id", b"1"), (REASON, b"old")]


def test_a_real_decode_failure_round_trip():
    """What the worker does: a record fails to decode; its dead letter keeps the headers needed to replay it."""
    event = Event.of(CallEnded(call_id="C", duration_seconds=1), customer="c", channel="phone", source="/t")
    record = encode(event, "binary")
    broken = [(k, b"omnitrail.CallEnded.v9" if k == "ce_type" else v) for k, v in record.headers]
    with pytest.raises(DecodeError) as info:
        decode(record.value, broken)
    out = deadletter_headers(broken, info.value.reason, ORIGIN, NOW)
    assert out[:len(broken)] == broken
    assert dict(out)[REASON].decode().startswith("invalid event: type: unknown event type")
    # a fixed copy (dead-letter headers stripped, type repaired) decodes again
    fixed = [(k, b"omnitrail.CallEnded.v1" if k == "ce_type" else v) for k, v in out if not k.startswith("dlq_")]
    assert decode(record.value, fixed) == event


def test_capped_reason_is_still_utf8():
    reason = "x" + "é" * 5_000  # 10 001 bytes; byte 10 000 is the first half of the last 'é'
    out = dict(deadletter_headers([], reason, ORIGIN, NOW))
    assert len(out[REASON]) <= 10_000
    out[REASON].decode()


def test_a_replayed_record_keeps_where_it_was_replayed_from():
    out = deadletter_headers([("ce_id", b"1"), ("dlq_replayed_from", b"0:7")], "bad", ORIGIN, NOW)
    assert out == [("ce_id", b"1"), ("dlq_replayed_from", b"0:7")] + DLQ
