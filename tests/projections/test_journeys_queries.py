"""Journeys and channel experience metrics read from a real ClickHouse (chdb, or a server): exact numbers on small
known data, with duplicate deliveries and older journey snapshots in the store."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from projections.arrow import to_arrow
from projections.feedback import fold as feedback
from projections.journeys.fold import PROJECTION, SCHEMA
from projections.journeys.queries import channel_metrics, customer_journeys
from projections.engine import Engine, Record
from projections.origin import Origin
from projections.sink import Sink
from tests.support.folds import fold_all
from projections.timeline import fold as timeline
from schemas import derived as dv
from schemas import events as ev
from schemas.envelope import Event
from services import demo

pytestmark = pytest.mark.integration

DAY = datetime(2026, 10, 15, 8, 0, tzinfo=UTC)  # the transferred-call story is on this day too
S, M, D = timedelta(seconds=1), timedelta(minutes=1), timedelta(days=1)


def event(customer: str, n: int, payload: ev.Payload, at: datetime, channel: str,
          correlationid: str | None = None) -> Event:
    return Event.of(payload, customer=customer, channel=channel, source=f"/q/{channel}", id=f"{customer}-{n}",
                    time=at, correlationid=correlationid)


def feedback_event(n: int, metric: str, score: int, about: str | None, at: datetime = DAY + 5 * 60 * M) -> Event:
    return event("fb", n, ev.FeedbackGiven(survey_id=f"S-{n}", metric=metric, score=score, about_channel=about),
                 at, "survey")


def stories() -> list[Event]:
    events = demo.hotel_booking() + demo.transferred_call()
    # Four email journeys on DAY, first responses after 60, 120, 180 and 600 seconds; the first one is resolved.
    for i, seconds in enumerate((60, 120, 180, 600)):
        c = f"mail-{i}"
        events += [event(c, 1, ev.EmailReceived(message_id=f"{c}-E"), DAY, "email"),
                   event(c, 2, ev.EmailSent(message_id=f"{c}-R"), DAY + seconds * S, "email")]
    events.append(event("mail-0", 3, ev.CaseResolved(case_id="K"), DAY + 30 * M, "email"))
    # Two phone journeys on DAY resolved in one call: with the transferred call, 2 of 3 resolved at first contact.
    for c in ("call-1", "call-2"):
        events += [event(c, 1, ev.CallStarted(call_id=f"{c}-C"), DAY + M, "phone"),
                   event(c, 2, ev.CallEnded(call_id=f"{c}-C", duration_seconds=120, resolved=True), DAY + 3 * M,
                         "phone")]
    # A customer with two inferred journeys, far apart.
    events += [event("two", 1, ev.MessageReceived(conversation_id="W", text="hi"), DAY - 5 * D, "whatsapp"),
               event("two", 2, ev.MessageSent(conversation_id="W", text="hello"), DAY - 5 * D + 90 * S, "whatsapp"),
               event("two", 3, ev.StoreVisited(store_id="S1"), DAY, "store")]
    # Feedback: NPS about phone 10, 9, 9, 7, 3 -> 3 promoters, 1 detractor of 5 -> +40;
    # NPS about email 0, 5, 10 -> 1 promoter, 2 detractors of 3 -> -33.3; CES about phone 6 (story) and 4;
    # CSAT about phone 5 and 4; one CSAT without a channel counts for the survey channel.
    scores = [("nps", s, "phone") for s in (10, 9, 9, 7, 3)] + [("nps", s, "email") for s in (0, 5, 10)] + [
        ("ces", 4, "phone"), ("csat", 5, "phone"), ("csat", 4, "phone"), ("csat", 2, None)]
    events += [feedback_event(n, metric, score, about) for n, (metric, score, about) in enumerate(scores)]
    # A derived event on the timeline: neither volume nor part of a journey.
    events.append(Event.of(dv.MailToFlaggedAddress(letter_id="L-9", address_hash="h"), customer="fb",
                           channel="mail", source="/omnitrail/projections/flags", id="derived-1", time=DAY))
    # The newest event in the store: an NPS 9 about email the next day.
    events.append(feedback_event(99, "nps", 9, "email", DAY + D))
    return events


@pytest.fixture
def loaded(client):
    events = stories()
    batch = [(e, Origin("omnitrail.test", 0, i)) for i, e in enumerate(events)]
    _, rows, _ = fold_all(PROJECTION, batch)
    # Every snapshot, then the newest ones again (a replayed batch) and the oldest ones last: FINAL keeps the newest.
    client.insert_arrow("journeys", to_arrow(rows, SCHEMA))
    client.insert_arrow("journeys", to_arrow(rows[-10:], SCHEMA))
    client.insert_arrow("journeys", to_arrow([r for r in rows if r["version"] == 1], SCHEMA))
    timeline_rows = [r for e, o in batch for r in timeline.project(e, o)]
    feedback_rows = [r for e, o in batch for r in feedback.project(e, o)]
    for _ in range(2):  # every event delivered twice
        client.insert_arrow(timeline.TABLE, to_arrow(timeline_rows, timeline.SCHEMA))
        client.insert_arrow(feedback.TABLE, to_arrow(feedback_rows, feedback.SCHEMA))
    return events


def by_key(metrics: list[dict]) -> dict[tuple[str, str], dict]:
    return {(m["channel"], m["day"]): m for m in metrics}


def test_customer_journeys_newest_snapshot_by_start(client, loaded):
    [hotel] = customer_journeys(client, demo.HOTEL_CUSTOMER)
    assert hotel["journey_id"] == "journey-hotel-2002"
    assert hotel["channels"] == ["phone", "web", "email", "partner"]
    assert hotel["channel_switches"] == 3 and hotel["contacts"] == 2 and hotel["repeat_contacts"] == 1
    assert hotel["first_response_seconds"] == {"email": 86400.0}
    assert hotel["version"] == 9 and hotel["resolved"] is False and hotel["resolved_at"] is None
    assert hotel["started_at"] == "2026-10-07T09:00:00+00:00" and hotel["last_at"] == "2026-10-10T09:00:00+00:00"
    assert hotel["first_channel"] == "phone" and hotel["resolution_seconds"] is None

    [billing] = customer_journeys(client, demo.TRANSFERRED_CUSTOMER)
    assert (billing["transfers"], billing["resolved"], billing["first_contact_resolution"]) == (3, True, False)
    assert billing["resolution_seconds"] == 22 * 60 and billing["resolved_at"] == "2026-10-15T09:22:00+00:00"

    two = customer_journeys(client, "two")
    assert [j["journey_id"] for j in two] == ["inferred-two-1", "inferred-two-3"]
    assert [j["channels"] for j in two] == [["whatsapp"], ["store"]]
    assert two[0]["first_response_seconds"] == {"whatsapp": 90.0} and two[1]["first_response_seconds"] == {}
    assert [j["version"] for j in two] == [2, 1]
    assert customer_journeys(client, "nobody") == []
    assert all(j["channels"] == ["survey"] or not j["channels"] for j in customer_journeys(client, "fb"))


def test_channel_metrics_exact_numbers(client, loaded):
    metrics = channel_metrics(client)
    m = by_key(metrics)
    # Volume: timeline events per channel and day, each once despite the double delivery.
    expected_volume = Counter((e.channel.value, e.time.date().isoformat()) for e in loaded
                              if isinstance(e.data, ev.PAYLOADS))
    assert {k: v["volume"] for k, v in m.items() if v["volume"]} == dict(expected_volume)
    assert [(x["day"], x["channel"]) for x in metrics] == sorted((x["day"], x["channel"]) for x in metrics)

    email = m[("email", "2026-10-15")]
    assert email["volume"] == 9
    assert email["responses"] == 4
    assert email["response_p50_seconds"] == pytest.approx(150.0)           # between 120 and 180
    assert email["response_p90_seconds"] == pytest.approx(180 + 0.7 * 420)  # 0.9 * 3 = 2.7 of the way
    assert (email["resolved_journeys"], email["fcr_journeys"], email["fcr_share"]) == (1, 1, 1.0)
    assert (email["nps_responses"], email["promoters"], email["detractors"]) == (3, 1, 2)
    assert email["nps"] == pytest.approx(100 * (1 - 2) / 3)
    assert email["ces"] is None and email["csat"] is None and email["ces_responses"] == 0

    phone = m[("phone", "2026-10-15")]
    assert phone["volume"] == 7 + 4  # the transferred call's 7 phone events and two calls of two events
    assert (phone["resolved_journeys"], phone["fcr_journeys"]) == (3, 2)
    assert phone["fcr_share"] == pytest.approx(2 / 3)
    assert (phone["nps_responses"], phone["promoters"], phone["detractors"], phone["nps"]) == (5, 3, 1, 40.0)
    assert (phone["ces_responses"], phone["ces"]) == (2, 5.0)
    assert (phone["csat_responses"], phone["csat"]) == (2, 4.5)
    assert phone["responses"] == 0 and phone["response_p50_seconds"] is None

    survey = m[("survey", "2026-10-15")]
    assert (survey["csat_responses"], survey["csat"], survey["nps"]) == (1, 2.0, None)
    assert survey["volume"] == 13  # 12 answers and the transferred-call survey
    assert ("mail", "2026-10-15") not in m  # only the derived event was on the mail channel that day
    assert m[("whatsapp", "2026-10-10")]["response_p90_seconds"] == 90.0

    # The hotel journey started on the phone on 10-07; the customer's email came on 10-08 and was answered on
    # 10-09: the response time belongs to the email's channel and day, within that day's volume.
    assert ("email", "2026-10-07") not in m
    hotel_email = m[("email", "2026-10-08")]
    assert (hotel_email["volume"], hotel_email["responses"], hotel_email["response_p50_seconds"]) == (1, 1, 86400.0)
    assert m[("email", "2026-10-09")]["volume"] == 1 and m[("email", "2026-10-09")]["responses"] == 0

    nps_day2 = m[("email", "2026-10-16")]
    assert (nps_day2["nps_responses"], nps_day2["nps"], nps_day2["volume"]) == (1, 100.0, 0)


def store(client, events: list[Event]) -> None:
    """Project ``events`` into the store as the worker would, in batches, in the order given."""
    engine, states, sink = Engine(), {}, Sink(client)
    for i in range(0, len(events), 500):
        records = [Record(e, Origin("omnitrail.test", 0, i + n), Origin("omnitrail.test", 0, i + n))
                   for n, e in enumerate(events[i:i + 500])]
        sink.write(engine.tables(engine.apply(records, states)))


def assert_within_volume(metrics: list[dict]) -> None:
    for row in metrics:
        assert row["volume"] >= row["responses"], row
        assert row["volume"] >= row["resolved_journeys"], row
        assert (row["response_p50_seconds"] is None) == (row["responses"] == 0), row


def test_a_response_or_resolution_counts_on_a_day_with_volume_of_its_channel(client):
    """Issue 10 item 9: `twitter 2026-10-05 volume 0, p50 7200`, a response on the day its journey started."""
    late = "survey-first"  # answers a survey, calls two days later: the journey starts with the answer
    events = demo.returned_mail() + demo.hotel_booking() + [
        event(late, 1, ev.FeedbackGiven(survey_id="S", metric="nps", score=3, about_channel="phone"), DAY, "survey"),
        event(late, 2, ev.CallStarted(call_id="K"), DAY + 2 * D, "phone"),
        event(late, 3, ev.CallEnded(call_id="K", duration_seconds=60, resolved=True), DAY + 2 * D + M, "phone")]
    store(client, events)
    m = by_key(metrics := channel_metrics(client))
    assert_within_volume(metrics)
    assert ("twitter", "2026-10-05") not in m  # the mail journey started then; the tweet came a month later
    tweet = m[("twitter", "2026-11-07")]
    assert (tweet["responses"], tweet["response_p50_seconds"], tweet["volume"]) == (1, 7200.0, 3)
    answer_day = m[("phone", "2026-10-15")]  # the survey answer about phone, given before the call: no resolution
    assert (answer_day["volume"], answer_day["resolved_journeys"], answer_day["nps_responses"]) == (0, 0, 1)
    call = m[("phone", "2026-10-17")]
    assert (call["resolved_journeys"], call["fcr_journeys"], call["volume"]) == (1, 1, 2)


def test_rows_from_before_the_attribution_columns_read_as_the_journey_start(bare_client):
    """Migration 0002 adds when a response was asked and when the first channel was used; rows written before it
    read as the journey's start (the old attribution) until a rebuild, and every read still works."""
    from projections.migrate import discover, migrate

    migrate(bare_client, [m for m in discover() if m.version == 1])
    _, rows, _ = fold_all(PROJECTION, [(e, Origin("omnitrail.test", 0, i)) for i, e in enumerate(demo.hotel_booking())])
    old = to_arrow(rows, SCHEMA).drop_columns(["first_response_asked_at", "first_channel_at"])
    bare_client.insert_arrow("journeys", old)
    migrate(bare_client)
    [hotel] = customer_journeys(bare_client, demo.HOTEL_CUSTOMER)
    assert hotel["first_response_seconds"] == {"email": 86400.0}
    email = by_key(channel_metrics(bare_client))[("email", "2026-10-07")]
    assert (email["responses"], email["response_p50_seconds"]) == (1, 86400.0)
    store(bare_client, demo.hotel_booking())  # what a rebuild writes: the email's day
    assert by_key(channel_metrics(bare_client))[("email", "2026-10-08")]["responses"] == 1


def test_channel_metrics_filters_by_channel_and_recent_days(client, loaded):
    assert {x["channel"] for x in channel_metrics(client, channel="phone")} == {"phone"}
    assert [x["day"] for x in channel_metrics(client, channel="phone")] == ["2026-10-07", "2026-10-15"]
    assert [(x["channel"], x["day"]) for x in channel_metrics(client, days=1)] == [("email", "2026-10-16"),
                                                                                  ("survey", "2026-10-16")]
    recent = channel_metrics(client, days=2)
    assert {x["day"] for x in recent} == {"2026-10-15", "2026-10-16"}
    assert by_key(recent)[("phone", "2026-10-15")] == by_key(channel_metrics(client))[("phone", "2026-10-15")]
    assert channel_metrics(client, channel="phone", days=1) == []
    with pytest.raises(ValueError):
        channel_metrics(client, days=0)


def test_channel_metrics_of_an_empty_store(client):
    assert channel_metrics(client) == [] and channel_metrics(client, days=7) == []
