"""A producer that does not partition like the Java client (librdkafka's default, kcat, another language): its
records still fold into the one state of their customer, through the repartition topic."""

from __future__ import annotations

from datetime import timedelta

import pytest
from confluent_kafka import Producer

from consumers.kafka import partition_for
from schemas import events as ev
from schemas.channels import Channel
from schemas.codec import encode
from schemas.envelope import Event
from services.publisher import Publisher
from services.reader import read, read_timeline
from tests.support.events import ADDRESS, T0
from tests.support.kafka import read_topic
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration


def returned(customer: str, n: int) -> Event:
    return Event.of(ev.MailReturned(letter_id=f"{customer}-l{n}", address=ADDRESS, reason="moved"),
                    customer=customer, channel=Channel.MAIL, source="/test/mailhouse", id=f"{customer}-r{n}",
                    time=T0 + timedelta(days=n))


def test_records_on_the_wrong_partition_fold_into_their_customers_state(settings, worker):
    customers = [f"cp-{i}" for i in range(40)]
    with Publisher(settings) as publisher:  # the first return of each, placed by murmur2 like the Java client
        publisher.publish_many([returned(c, 1) for c in customers])

    # The second return from a producer with librdkafka's default partitioner (CRC32), as kcat would send it.
    crc_producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "partitioner": "consistent_random"})
    placed: dict[str, int] = {}
    for customer in customers:
        record = encode(returned(customer, 2))
        crc_producer.produce(settings.channel_topic("mail"), record.value, record.key, headers=record.headers,
                             on_delivery=lambda err, msg, c=customer: placed.__setitem__(c, msg.partition()))
    assert crc_producer.flush(30) == 0
    wrong = {c for c in customers if placed[c] != partition_for(c.encode(), settings.partitions)}
    assert len(wrong) >= 10  # the two partitioners disagree on most keys: the case is really exercised

    for customer in customers:  # two returns to one address: flagged once, whichever partition each came on
        rows = wait_until(lambda: len(r := read_timeline(settings, customer)) >= 3 and r, timeout=60)
        assert sorted(r["kind"] for r in rows) == ["AddressFlagged", "MailReturned", "MailReturned"]
        second = next(r for r in rows if r["event_id"] == f"{customer}-r2")
        assert (second["topic"], second["partition"]) == (settings.channel_topic("mail"), placed[customer])
    flags = {f["customer_id"]: f for f in read(settings, "flags")}
    assert {c: (flags[c]["status"], flags[c]["returns"]) for c in customers} == {c: ("flagged", 2) for c in customers}

    forwarded = read_topic(settings.kafka_bootstrap, settings.topics.repartition, expect=len(wrong), timeout=10)
    assert sorted(m.key().decode() for m in forwarded) == sorted(wrong)
    assert all(m.partition() == partition_for(m.key(), settings.partitions) for m in forwarded)
