"""The producer SDK against a real broker: confirmed delivery, per-channel topics, clear failure."""

from __future__ import annotations

import time

import pytest

from schemas.channels import Channel
from schemas.codec import decode
from schemas.derived import AddressFlagCleared
from schemas.envelope import Event
from services.publisher import DerivedEventError, Publisher, PublishError
from services.settings import Settings
from services.stack import free_port
from tests.support.events import T0, journey
from tests.support.kafka import end_offsets, read_topic

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_events_land_on_their_channel_topic_keyed_by_customer(settings, mode):
    settings = settings.model_copy(update={"event_mode": mode})
    events = journey("p-1")
    with Publisher(settings) as publisher:
        assert publisher.publish_many(events) == len(events)
    phone = read_topic(settings.kafka_bootstrap, settings.channel_topic("phone"), expect=3)
    assert {m.key() for m in phone} == {b"p-1"}
    assert len({m.partition() for m in phone}) == 1  # one customer, one partition: per-customer order
    assert [decode(m.value(), m.headers()) for m in phone] == [e for e in events if e.channel == "phone"]


def test_an_unreachable_broker_raises_a_clear_error(tmp_path):
    settings = Settings(state_dir=tmp_path, kafka_bootstrap=f"127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(PublishError, match="not delivered"):
        with Publisher(settings, timeout=3) as publisher:
            publisher.publish(journey("p-2")[0])
    assert time.monotonic() - started < 15


def test_derived_events_are_refused_and_nothing_is_published(settings):
    clear = Event.of(AddressFlagCleared(address_hash="0123456789abcdef", reason="address confirmed"),
                     customer="p-3", channel=Channel.TWITTER, source="/test/twitter", id="clear-1", time=T0)
    with Publisher(settings) as publisher:
        with pytest.raises(DerivedEventError) as refused:
            publisher.publish_many(iter([*journey("p-3"), clear]))  # the derived event last, in a one-shot iterable
    assert str(refused.value) == (
        "refusing to publish derived event type(s) AddressFlagCleared (1 event(s), e.g. id clear-1): derived events "
        "are published by the projection worker only; nothing was published")
    for topic in [*settings.topics.channels, settings.derived_topic]:
        assert sum(end_offsets(settings.kafka_bootstrap, topic, settings.partitions)) == 0, topic
