"""The producer SDK against a real broker: confirmed delivery, per-channel topics, clear failure."""

from __future__ import annotations

import time

import pytest

from schemas.codec import decode
from services.publisher import Publisher, PublishError
from services.settings import Settings
from services.stack import free_port
from tests.support.events import journey
from tests.support.kafka import read_topic

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
