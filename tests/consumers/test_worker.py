"""The projection worker on real engines: channel topics -> timeline, dead letters, duplicates, forged events."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from confluent_kafka import Producer

from consumers.kafka import partition_for
from projections.admission import SOURCES
from schemas import events as ev
from schemas.channels import Channel
from schemas.codec import encode
from schemas.derived import AddressFlagCleared
from schemas.envelope import Event
from services.publisher import Publisher
from services.reader import read, read_timeline
from tests.support.events import T0, journey
from tests.support.kafka import end_offsets, produce_raw, read_topic
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


def dead_letters(settings, expect: int) -> dict[bytes, dict[str, bytes]]:
    """The dead-letter topic once it holds ``expect`` records: each record's value -> its headers."""
    return {m.value(): dict(m.headers()) for m in read_topic(settings.kafka_bootstrap, settings.deadletter_topic,
                                                             expect=expect)}


def settled(settings, customer: str) -> set[str]:
    """Wait until the worker is done with every record of ``customer`` on the web topic so far; return the ids of
    the markers this published there. Once a marker shows on the timeline, the rows of its batch are stored, and
    the worker delivers that batch's dead letters before it reads the next: so once a second marker, published
    after the first showed, shows too, all that was read up to the first is done."""
    markers = set()
    for n in range(2):
        marker = Event.of(ev.WebPageViewed(session_id="s", url=f"https://example.com/{n}"), customer=customer,
                          channel=Channel.WEB, source="/test/web", id=f"{customer}-marker-{n}", time=T0)
        with Publisher(settings) as publisher:
            publisher.publish(marker)
        wait_until(lambda: any(r["event_id"] == marker.id for r in read_timeline(settings, customer)))
        markers.add(marker.id)
    return markers


def test_a_conflicting_duplicate_is_dead_lettered_and_the_first_version_stands(settings, worker):
    def quote(amount: str, channel: Channel, id: str) -> Event:
        return Event.of(ev.PriceQuoted(subject="hotel-ams", amount=Decimal(amount)), customer="dup-1",
                        channel=channel, source=f"/test/{channel.value}", id=id, time=T0, correlationid="j-1")

    phone, web = quote("389.00", Channel.PHONE, "q-1"), quote("429.00", Channel.WEB, "q-2")
    with Publisher(settings) as publisher:
        publisher.publish_many([phone, web])
    before = wait_until(lambda: len(r := read_timeline(settings, "dup-1")) == 3 and r)  # + the violation
    violations = wait_until(lambda: read(settings, "consistency", customer_id="dup-1"))

    forged = quote("1.00", Channel.PHONE, "q-1")  # same source, id and time: the phone's price rewritten
    with Publisher(settings) as publisher:
        publisher.publish(forged)
    with Publisher(settings.model_copy(update={"event_mode": "structured"})) as publisher:
        publisher.publish(web)  # the same web quote again, now in structured mode: nothing new

    [(value, headers)] = dead_letters(settings, expect=1).items()
    assert value == encode(forged).value
    assert headers["dlq_reason"] == (b"conflicting duplicate: (/test/phone, q-1) was first published with "
                                     b"different content; the first event stands")
    assert headers["dlq_topic"] == settings.channel_topic("phone").encode()
    markers = settled(settings, "dup-1")
    assert sum(end_offsets(settings.kafka_bootstrap, settings.deadletter_topic, settings.partitions)) == 1
    after = [r for r in read_timeline(settings, "dup-1") if r["event_id"] not in markers]
    assert [(r["event_id"], r["summary"], r["offset"]) for r in after] == [
        (r["event_id"], r["summary"], r["offset"]) for r in before]
    assert "price for hotel-ams: 389.00 EUR" in [r["summary"] for r in after]
    assert read(settings, "consistency", customer_id="dup-1") == violations


def forwarded(settings, event: Event, origin_topic: str) -> None:
    """Write ``event`` to the repartition topic as the worker forwards a record, claiming ``origin_topic``."""
    record = encode(event)
    headers = record.headers + [("omnitrail_origin_topic", origin_topic.encode()),
                                ("omnitrail_origin_partition", b"0"), ("omnitrail_origin_offset", b"7")]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    producer.produce(settings.topics.repartition, record.value, record.key, headers=headers,
                     partition=partition_for(record.key, settings.partitions))
    assert producer.flush(30) == 0


def test_events_that_do_not_belong_on_their_topic_are_dead_lettered(settings, worker):
    customer, flags_source = "forge-1", SOURCES["AddressFlagCleared"]

    def message(channel: Channel, id: str) -> Event:
        return Event.of(ev.MessageReceived(conversation_id="tw-1", text="hi"), customer=customer, channel=channel,
                        source=f"/test/{channel.value}", id=id, time=T0)

    def clear(source: str, channel: Channel, id: str) -> Event:
        return Event.of(AddressFlagCleared(address_hash="0123456789abcdef", reason="address confirmed"),
                        customer=customer, channel=channel, source=source, id=id, time=T0)

    forged = [  # (topic, event, reason)
        (settings.channel_topic("twitter"), clear(flags_source, Channel.TWITTER, "f-1"),
         f"derived event AddressFlagCleared on channel topic {settings.channel_topic('twitter')}: derived events "
         f"are published by the projection worker only, on {settings.derived_topic}"),
        (settings.derived_topic, clear("/evil/producer", Channel.MAIL, "f-2"),
         f"derived event AddressFlagCleared from source '/evil/producer' on {settings.derived_topic}: only the "
         f"projection worker ({flags_source}) derives it"),
        (settings.derived_topic, message(Channel.TWITTER, "f-3"),
         f"MessageReceived on the derived topic {settings.derived_topic}: only derived events belong there"),
        (settings.channel_topic("phone"), message(Channel.TWITTER, "f-4"),
         f"channel mismatch: a channel=twitter event on topic {settings.channel_topic('phone')}"),
    ]
    produce_raw(settings.kafka_bootstrap, settings.topics.repartition,  # no origin headers: not from the worker
                [(r.key, r.value, r.headers) for r in [encode(message(Channel.TWITTER, "f-5"))]])
    forged.append((settings.topics.repartition, message(Channel.TWITTER, "f-5"),
                   f"read from {settings.topics.repartition}, which is not a topic of the event log"))
    forwarded(settings, message(Channel.TWITTER, "f-6"), settings.channel_topic("phone"))  # judged by its origin
    forged.append((settings.channel_topic("phone"), message(Channel.TWITTER, "f-6"),
                   f"channel mismatch: a channel=twitter event on topic {settings.channel_topic('phone')}"))
    for topic, event, _ in forged[:4]:
        record = encode(event)
        produce_raw(settings.kafka_bootstrap, topic, [(record.key, record.value, record.headers)])
    forwarded(settings, message(Channel.TWITTER, "ok-1"), settings.channel_topic("twitter"))  # a genuine forward

    dead = dead_letters(settings, expect=len(forged))
    assert {v: (h["dlq_topic"].decode(), h["dlq_reason"].decode()) for v, h in dead.items()} == {
        encode(event).value: (topic, reason) for topic, event, reason in forged}
    wait_until(lambda: any(r["event_id"] == "ok-1" for r in read_timeline(settings, customer)))
    markers = settled(settings, customer)
    assert sum(end_offsets(settings.kafka_bootstrap, settings.deadletter_topic, settings.partitions)) == len(forged)
    rows = [r for r in read_timeline(settings, customer) if r["event_id"] not in markers]
    assert [(r["event_id"], r["topic"]) for r in rows] == [("ok-1", settings.channel_topic("twitter"))]
    assert read(settings, "customer_flags", customer_id=customer) == []
