"""Fuzzing the worker: 10,000 generated bad records, interleaved with valid events, through a raw producer.

Every bad record must end in the dead-letter topic exactly once, unchanged, with the reason ``decode`` gives and
its origin; the valid events around them must reach the timeline exactly once; the worker must neither crash
nor stall (it still projects an event published afterwards).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pytest
from confluent_kafka import Producer

from consumers.deadletter import AT, OFFSET, PARTITION, REASON, TOPIC
from schemas.codec import DecodeError, decode, encode
from services.publisher import Publisher
from services.reader import read_timeline
from tests.support.events import T0, journey
from tests.support.fuzz import OBJECT_KINDS, OVERSIZED, RECORD_KINDS, bad_records
from tests.support.kafka import end_offsets, read_topic
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

N_BAD = 10_000
CUSTOMERS = [f"fz-ok-{i:02d}" for i in range(20)]
SEED = 20261101


def _reason(value, headers) -> str:
    with pytest.raises(DecodeError) as info:
        decode(value, headers)
    return info.value.reason


def _produce(bootstrap: str, records: list[tuple[str, bytes | None, bytes | None, list]]) -> list:
    """Produce (topic, key, value, headers) in order; return each record's (topic, partition, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "partitioner": "murmur2_random",  # as the Publisher: by customer
                         "message.max.bytes": 2_000_000})  # the oversized records are over librdkafka's 1 MB
    where: list = [None] * len(records)
    errors: list = []

    def report(err, msg, i):
        if err is not None:
            errors.append((i, err.str()))
        else:
            where[i] = (msg.topic(), msg.partition(), msg.offset())

    for i, (topic, key, value, headers) in enumerate(records):
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=lambda e, m, i=i: report(e, m, i))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not errors, errors[:5]
    return where


def test_ten_thousand_bad_records_are_dead_lettered_and_valid_events_around_them_projected(settings, worker):
    bad = bad_records(SEED, N_BAD)
    assert Counter(r.kind for r in bad).keys() == {*OBJECT_KINDS, *RECORD_KINDS, OVERSIZED}
    assert {r.mode for r in bad} == {"binary", "structured"}

    # A valid journey per customer, spread evenly among the bad records, alternating CloudEvents modes.
    valid = [e for c in CUSTOMERS for e in journey(c)]
    valid.sort(key=lambda e: (int(e.id.rsplit("-", 1)[1]), e.subject))  # step by step across customers
    stream: list[tuple[str, bytes | None, bytes | None, list]] = []
    is_bad: list[bool] = []
    step = N_BAD // len(valid)
    for i, record in enumerate(bad):
        if i % step == 0 and i // step < len(valid):
            event = valid[i // step]
            rec = encode(event, "binary" if (i // step) % 2 else "structured")
            stream.append((settings.channel_topic(event.channel), rec.key, rec.value, rec.headers))
            is_bad.append(False)
        stream.append((settings.channel_topic(record.channel), record.key, record.value, record.headers))
        is_bad.append(True)
    assert is_bad.count(False) == len(valid)

    started = time.monotonic()
    where = _produce(settings.kafka_bootstrap, stream)
    produced = time.monotonic() - started
    expected = {where[i]: (key, value, headers, _reason(value, headers))
                for i, ((_, key, value, headers), b) in enumerate(zip(stream, is_bad)) if b}
    assert len(expected) == N_BAD

    dlq = settings.deadletter_topic
    counts = []  # dead letters so far, for the failure message of a stalled worker

    def all_dead_lettered():
        counts.append(sum(end_offsets(settings.kafka_bootstrap, dlq, settings.partitions)))
        return counts[-1] >= N_BAD

    try:
        wait_until(all_dead_lettered, timeout=90, interval=0.5)
    except AssertionError:
        raise AssertionError(f"only {counts[-1]} of {N_BAD} records dead-lettered after "
                             f"{time.monotonic() - started:.0f}s; worker alive: {worker.alive()}; "
                             f"log {worker.log}") from None
    drained = time.monotonic() - started
    print(f"\nproduced {len(stream)} records in {produced:.1f}s; all {N_BAD} dead-lettered after {drained:.1f}s "
          f"({len(stream) / drained:,.0f} records/s end to end)")

    # The valid events: each on its customer's timeline exactly once.
    def timelines():
        rows = {c: read_timeline(settings, c) for c in CUSTOMERS}
        ids = {c: [r["event_id"] for r in rs if r["source"].startswith("/test/")] for c, rs in rows.items()}
        return ids if all(len(v) >= 10 for v in ids.values()) else None

    ids = wait_until(timelines, timeout=60, interval=0.5)
    for customer in CUSTOMERS:
        assert sorted(ids[customer]) == sorted(e.id for e in journey(customer)), customer

    # Not stalled: an event published now is still projected.
    late = journey("fz-late", T0 + timedelta(days=30))[0]
    with Publisher(settings) as publisher:
        publisher.publish(late)
    assert [r["event_id"] for r in wait_until(lambda: read_timeline(settings, "fz-late"), timeout=30)] == [late.id]
    assert worker.alive()

    # The dead-letter topic holds exactly the bad records, each once, unchanged, with reason and origin.
    assert sum(end_offsets(settings.kafka_bootstrap, dlq, settings.partitions)) == N_BAD
    dead = read_topic(settings.kafka_bootstrap, dlq, expect=N_BAD, timeout=60)
    assert len(dead) == N_BAD
    assert Counter(m.value() for m in dead) == Counter(value for _, value, _, _ in expected.values())
    seen = set()
    for message in dead:
        headers = message.headers() or []
        meta = dict(h for h in headers if h[0].startswith("dlq_"))
        origin = (meta[TOPIC].decode(), int(meta[PARTITION]), int(meta[OFFSET]))
        assert origin in expected, origin
        assert origin not in seen, f"dead-lettered twice: {origin}"
        seen.add(origin)
        key, value, original_headers, reason = expected[origin]
        assert message.value() == value and message.key() == key
        assert [h for h in headers if not h[0].startswith("dlq_")] == list(original_headers)
        assert meta[REASON] and meta[REASON] == reason.encode()[:10_000].decode(errors="ignore").encode()
        assert meta[AT]
    assert seen == expected.keys()
