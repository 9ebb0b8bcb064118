"""Which events may enter the projections, by the topic they were published to (no broker needed)."""

from __future__ import annotations

import pytest

from projections.admission import SOURCES, Admission
from projections.engine import Engine, Record
from projections.origin import Origin
from schemas.channels import Channel
from schemas.derived import AddressFlagCleared, AddressFlagged
from schemas.envelope import Event
from schemas.topics import Topics
from services import demo
from tests.support.events import ADDRESS, T0, journey

TOPICS = Topics("ot", "g")
ADMISSION = Admission(TOPICS)


def derived_by_the_worker() -> list[Event]:
    """What the folds derive from the demo stories: a flag, mail to the flagged address, the clear, a violation."""
    events = sorted(demo.all_events(), key=lambda e: e.time)
    origins = [Origin(TOPICS.channel(e.channel), 0, i) for i, e in enumerate(events)]
    return Engine().apply([Record(e, o, o) for e, o in zip(events, origins)], {}).derived


def forged_clear(source: str = SOURCES["AddressFlagCleared"]) -> Event:
    return Event.of(AddressFlagCleared(address_hash="0123456789abcdef", reason="address confirmed"),
                    customer="c-1", channel=Channel.TWITTER, source=source, time=T0)


def test_interaction_events_are_admitted_on_their_channel_topic():
    for event in journey("c-1"):
        assert ADMISSION.refusal(event, TOPICS.channel(event.channel)) is None


def test_every_derived_event_the_worker_publishes_is_admitted_on_the_derived_topic():
    derived = derived_by_the_worker()
    assert {e.name for e in derived} == set(SOURCES)  # every derived type is exercised
    for event in derived:
        assert ADMISSION.refusal(event, TOPICS.derived) is None, event


def test_a_channel_other_than_the_topics_is_refused():
    event = journey("c-1")[0].model_copy(update={"channel": Channel.TWITTER})
    assert ADMISSION.refusal(event, "ot.phone") == "channel mismatch: a channel=twitter event on topic ot.phone"


@pytest.mark.parametrize("channel", [Channel.TWITTER, Channel.MAIL])
def test_a_derived_event_on_a_channel_topic_is_refused(channel):
    reason = ADMISSION.refusal(forged_clear().model_copy(update={"channel": channel}), TOPICS.channel(channel))
    assert reason == ("derived event AddressFlagCleared on channel topic " + TOPICS.channel(channel)
                      + ": derived events are published by the projection worker only, on ot.derived")


def test_a_derived_event_from_another_source_is_refused_on_the_derived_topic():
    assert ADMISSION.refusal(forged_clear("/evil/producer"), TOPICS.derived) == (
        "derived event AddressFlagCleared from source '/evil/producer' on ot.derived: only the projection worker "
        "(/omnitrail/projections/flags) derives it")
    # the source of another fold is not good enough either
    flagged = Event.of(AddressFlagged(address=ADDRESS, address_hash="0123456789abcdef", returns=2, first_return=T0,
                                      last_return=T0, return_event_ids=["a", "b"]),
                       customer="c-1", channel=Channel.MAIL, source=SOURCES["ConsistencyViolated"], time=T0)
    assert "only the projection worker (/omnitrail/projections/flags)" in ADMISSION.refusal(flagged, TOPICS.derived)


def test_an_interaction_event_on_the_derived_topic_is_refused():
    assert ADMISSION.refusal(journey("c-1")[0], TOPICS.derived) == (
        "MailSent on the derived topic ot.derived: only derived events belong there")


def test_a_topic_outside_the_log_is_refused():
    # e.g. a record written straight to the repartition topic, without the origin headers the worker adds
    assert ADMISSION.refusal(journey("c-1")[0], TOPICS.repartition) == (
        "read from ot.repartition, which is not a topic of the event log")


def test_a_rebuild_derives_the_same_admission_from_the_log_topics():
    forged = forged_clear()
    for event, topic in [(forged, TOPICS.channel("twitter")), (forged, TOPICS.derived),
                         (journey("c-1")[2], TOPICS.channel("phone")), (journey("c-1")[2], TOPICS.channel("web"))]:
        assert Admission.for_log(TOPICS.log).refusal(event, topic) == ADMISSION.refusal(event, topic)
    with pytest.raises(ValueError):
        Admission.for_log(TOPICS.channels)
