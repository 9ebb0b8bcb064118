"""What omnitrail needs from a Kafka-protocol broker, checked on each one: produce, consume in order, commit and
resume, end offsets, dead letters, and the faust worker end to end."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.codec import decode
from services.publisher import Publisher
from services.reader import read_timeline
from tests.support.events import journey
from tests.support.kafka import end_offsets, produce_raw, read_topic
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def test_produce_and_consume_keeps_keys_headers_and_per_customer_order(settings):
    events = journey("k-1") + journey("k-2")
    with Publisher(settings) as publisher:
        publisher.publish_many(events)
    phone = read_topic(settings.kafka_bootstrap, settings.channel_topic("phone"), expect=6)
    for customer in ("k-1", "k-2"):
        got = [decode(m.value(), m.headers()) for m in phone if m.key() == customer.encode()]
        assert got == [e for e in events if e.subject == customer and e.channel == "phone"]


def test_end_offsets_count_the_records(settings, known_bugs):
    known_bugs({"tansu": "ListOffsets(latest) answers the start of the last batch + 1, not the log end"})
    topic = settings.channel_topic("mail")
    produce_raw(settings.kafka_bootstrap, topic, [(f"k{i}".encode(), b"{}", []) for i in range(30)])
    assert sum(end_offsets(settings.kafka_bootstrap, topic, settings.partitions)) == 30


def test_a_consumer_group_resumes_exactly_after_its_committed_offsets(settings):
    topic = settings.channel_topic("email")
    produce_raw(settings.kafka_bootstrap, topic, [(b"same-key", str(i).encode(), []) for i in range(20)])
    group = f"resume-{uuid.uuid4().hex}"

    def consumer() -> Consumer:
        c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000})
        c.subscribe([topic])
        return c

    first, seen = consumer(), []
    while len(seen) < 8:
        seen += [m for m in first.consume(8 - len(seen), 1.0) if m.error() is None]
    last = seen[-1]
    first.commit(offsets=[TopicPartition(topic, last.partition(), last.offset() + 1)], asynchronous=False)
    first.close()
    second, rest = consumer(), []
    for _ in range(40):
        rest += [m for m in second.consume(20, 0.5) if m.error() is None]
        if len(rest) >= 12:
            break
    second.close()
    assert [int(m.value()) for m in seen + rest] == list(range(20))


def test_the_worker_projects_events_and_dead_letters_bad_records(settings, worker):
    events = journey("k-3")
    with Publisher(settings) as publisher:
        publisher.publish_many(events)
    produce_raw(settings.kafka_bootstrap, settings.channel_topic("web"), [(b"k-3", b"not json", [])])
    def published_rows():  # the derived violation (phone and web prices differ) may come before or after
        return [r for r in read_timeline(settings, "k-3") if r["source"].startswith("/test/")]

    rows = wait_until(lambda: len(r := published_rows()) >= len(events) and r, timeout=30)
    assert [r["event_id"] for r in rows] == [e.id for e in events]
    dead = read_topic(settings.kafka_bootstrap, settings.deadletter_topic, expect=1)
    assert [m.value() for m in dead] == [b"not json"]
    assert b"not valid UTF-8 JSON" in dict(dead[0].headers())["dlq_reason"]
