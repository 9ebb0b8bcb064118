"""Ingest's msgspec fast path (``wire.decode_http`` in ``services.http.ingest.read_events``) gives the answers of the
pydantic path (``codec.from_http``) it stands in for.

* Requests of valid, broken and bent events (hypothesis; the mutations of ``tests.schemas.test_wire``), as batches
  with damage to the array itself, and as single structured events: ``read_events`` then ``admit`` give the same
  per-event verdicts (accepted, invalid with pydantic's reason, forbidden by the key or as a derived type) as
  ``from_http`` then ``admit``, or the same error for the request as a whole.
* Whenever the fast path vouches for a request, every event is the very event pydantic makes of it (not upcast).
* Valid requests stay on the fast path (that is what it is for).
"""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from schemas import wire
from schemas.channels import Channel
from schemas.codec import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE, DecodeError, from_http, split_batch
from schemas.events import CallTransferred  # v1: v2 is the latest
from services.credentials import WriteKey
from services.http.ingest import admit, read_events
from tests.schemas.test_wire import dumps, event_obj, mutated_objects, sample_event, valid_events

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                              HealthCheck.data_too_large])
keys = st.builds(lambda channels, prefix: WriteKey(id="k-1", channels=tuple(channels), source_prefix=prefix,
                                                   digest="-", created="-"),
                 st.lists(st.sampled_from([c.value for c in Channel]), min_size=1, unique=True),
                 st.sampled_from(["", "/", "/channels/", "x"]))
event_objects = st.builds(event_obj, valid_events()) | mutated_objects()


def answers(read, body: bytes, headers: dict, key: WriteKey):
    """What the handler makes of a request with this reader of events: the verdicts, or the request's error."""
    try:
        return admit(read(body, headers), key)
    except DecodeError as exc:
        return f"request refused: {exc.reason}"


def assert_same_answers(body: bytes, ctype: str, key: WriteKey) -> None:
    headers = {"content-type": ctype}
    fast = answers(lambda b, h: read_events(b, h)[0], body, headers, key)
    assert fast == answers(from_http, body, headers, key)
    texts = [body] if ctype == STRUCTURED_CONTENT_TYPE else _split(body)
    vouched = wire.decode_http(texts) if texts is not None else None
    if vouched is not None:  # then it must be exactly pydantic's reading, event by event
        assert vouched == [wire.from_model(e) for e in from_http(body, headers)]
    if currently_in_test_context():  # for ``pytest --hypothesis-show-statistics``
        event("fast path" if vouched is not None else "left to pydantic")


def _split(body: bytes) -> list[bytes] | None:
    try:
        return split_batch(body)
    except Exception:  # noqa: BLE001 - not a JSON array
        return None


@SETTINGS
@given(objects=st.lists(event_objects, min_size=1, max_size=4), key=keys,
       damage=st.sampled_from([None, None, None, "truncate", "append", "object", "space"]), data=st.data())
def test_a_batch_gets_the_same_answers_on_both_paths(objects, key, damage, data):
    body = b"[" + b",".join(dumps(o) for o in objects) + b"]"
    if damage == "truncate":
        body = body[:data.draw(st.integers(0, len(body) - 1))]
    elif damage == "append":
        body += data.draw(st.sampled_from([b" ", b"]", b",", b"x", b"\x00"]))
    elif damage == "object":  # a single event sent with the batch content-type
        body = dumps(objects[0])
    elif damage == "space":
        body = b" \n" + body.replace(b",", b" , ") + b"\t"
    assert_same_answers(body, BATCH_CONTENT_TYPE, key)


@SETTINGS
@given(obj=event_objects, key=keys, damage=st.sampled_from([None, None, "truncate", "append", "space"]),
       data=st.data())
def test_a_structured_event_gets_the_same_answer_on_both_paths(obj, key, damage, data):
    body = dumps(obj)
    if damage == "truncate":
        body = body[:data.draw(st.integers(0, len(body) - 1))]
    elif damage == "append":
        body += data.draw(st.sampled_from([b" ", b"}", b",{}", b"x", b"\x00"]))
    elif damage == "space":
        body = b" \r\n" + body + b"\n"
    assert_same_answers(body, STRUCTURED_CONTENT_TYPE, key)


def test_the_content_type_is_found_whatever_its_case():
    body = orjson.dumps([event_obj(sample_event(CallTransferred))])
    assert read_events(body, {"Content-Type": BATCH_CONTENT_TYPE})[1] == [body[1:-1]]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(valid_events(), min_size=1, max_size=5))
def test_valid_requests_stay_on_the_fast_path(events):
    bodies = [orjson.dumps(e.model_dump(mode="json", exclude_none=True)) for e in events]
    batch = b"[" + b",".join(bodies) + b"]"
    vouched = wire.decode_http(split_batch(batch))
    assert vouched == [wire.from_model(e) for e in events]
    read, texts = read_events(batch, {"content-type": BATCH_CONTENT_TYPE})
    assert read == vouched and texts == bodies  # the events are published as they were sent
    assert wire.decode_http([bodies[0]]) == vouched[:1]


def test_an_old_version_is_validated_as_sent_not_upcast():
    old = sample_event(CallTransferred)
    body = orjson.dumps([old.model_dump(mode="json", exclude_none=True)])
    [event], _ = read_events(body, {"content-type": BATCH_CONTENT_TYPE})
    assert isinstance(event, wire.WireEvent) and event.type == old.type == "omnitrail.CallTransferred.v1"


def _bent(**changes) -> bytes:
    return dumps(event_obj(sample_event(CallTransferred)) | changes)


@pytest.mark.parametrize("body", [b"", b"{}", b"[]", b"[1]", b"[{}]", b"[null]", b"nope", b'[{"type": 1}]',
                                  _bent(data=None), _bent(time="2026-11-01T09:00:00"), _bent(time=1700000000),
                                  _bent(time="2026-11-01T09:00:00.1234567Z"), _bent(type="omnitrail.CallTransferred"),
                                  _bent(data={"call_id": "c", "from_queue": "a", "to_queue": "b", "reason": None})])
def test_edge_cases_get_the_same_answers(body):
    # (an empty batch is the handler's own 422; here both paths read it as no events)
    key = WriteKey(id="k-1", channels=("phone",), source_prefix="/", digest="-", created="-")
    assert_same_answers(b"[" + body + b"]", BATCH_CONTENT_TYPE, key)
    assert_same_answers(body, BATCH_CONTENT_TYPE, key)
    assert_same_answers(body, STRUCTURED_CONTENT_TYPE, key)


def test_pydantic_events_and_fast_events_are_judged_alike():
    event = sample_event(CallTransferred, channel="twitter")
    key = WriteKey(id="k-1", channels=("phone",), source_prefix="/channels/", digest="-", created="-")
    assert admit([event], key) == admit([wire.from_model(event)], key) == [
        {"index": 0, "status": "forbidden", "id": "evt-1",
         "error": "write key k-1 may publish to channels phone, not 'twitter'"}]


@pytest.mark.parametrize("bent", [{"data": None}, {"time": "2026-11-01T09:00:00"}, {"time": 1700000000},
                                  {"time": "2026-11-01T09:00:00.1234567Z"}, {"type": "omnitrail.CallTransferred"}])
def test_what_msgspec_alone_would_misjudge_is_left_to_pydantic(bent):
    # data: null fits the struct (binary mode fills data in later); a naive time, a number or 7 fraction digits parse
    # differently in msgspec; a short type name is no struct's tag
    assert wire.decode_http([_bent(**bent)]) is None
