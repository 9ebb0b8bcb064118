"""The projection worker on real engines: channel topics -> timeline, dead letters, duplicates."""

from __future__ import annotations

import orjson
import pytest

from schemas.codec import encode
from services.publisher import Publisher
from services.reader import read_timeline
from tests.support.events import journey
from tests.support.kafka import produce_raw, read_topic
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration
CUSTOMERS = ("c-1", "c-2", "c-3")


def test_events_from_every_channel_reach_the_timeline_once_in_time_order(settings, worker):
    events = {c: journey(c) for c in CUSTOMERS}
    everything = [e for c in CUSTOMERS for e in events[c]]
    with Publisher(settings) as publisher:
        publisher.publish_many(everything)
        publisher.publish_many(everything[:5])  # a producer retrying: the same events again

    for customer in CUSTOMERS:
        # the ten events, plus the violation derived from the phone and web prices differing
        rows = wait_until(lambda: (r := read_timeline(settings, customer)) and len(r) >= 11 and r)
        assert [r["event_id"] for r in rows if r["source"].startswith("/test/")] == [e.id for e in events[customer]]
        assert [r["kind"] for r in rows if not r["source"].startswith("/test/")] == ["ConsistencyViolated"]
        assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
        assert {r["channel"] for r in rows} == {"mail", "phone", "web", "email", "whatsapp", "survey"}
        for row in rows:  # every row traces back to its record in the log
            derived = not row["source"].startswith("/test/")
            topic = settings.derived_topic if derived else settings.channel_topic(row["channel"])
            assert row["topic"] == topic and row["offset"] >= 0


def test_malformed_records_are_dead_lettered_and_the_worker_keeps_going(settings, worker):
    topic = settings.channel_topic("phone")
    good = journey("c-dlq")[2]
    bad = [(b"c-dlq", b'{"truncated": ', []),
           (b"c-dlq", b"\xff\xfe not utf-8", [("ce_specversion", b"1.0")]),
           (b"c-dlq", orjson.dumps({"specversion": "1.0", "type": "omnitrail.Nope.v1"}), [])]
    produce_raw(settings.kafka_bootstrap, topic, bad)
    record = encode(good)
    produce_raw(settings.kafka_bootstrap, topic, [(record.key, record.value, record.headers)])

    rows = wait_until(lambda: read_timeline(settings, "c-dlq"))
    assert [r["event_id"] for r in rows] == [good.id]
    dead = read_topic(settings.kafka_bootstrap, settings.deadletter_topic, expect=3)
    assert sorted(m.value() for m in dead) == sorted(v for _, v, _ in bad)  # the original bytes, unchanged
    for message in dead:
        headers = dict(message.headers())
        assert headers["dlq_topic"] == topic.encode()
        assert int(headers["dlq_offset"]) >= 0 and headers["dlq_reason"]
    reasons = b" | ".join(dict(m.headers())["dlq_reason"] for m in dead)
    assert b"not valid UTF-8 JSON" in reasons and b"unknown event type" in reasons
    assert worker.alive()
