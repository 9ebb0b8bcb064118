"""Consistency reads against a real ClickHouse (chdb, or a server): violations, and the cross-customer summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from projections.arrow import to_arrow
from projections.consistency import fold as consistency
from projections.consistency.queries import channel_summary, violations
from projections.origin import Origin
from projections.quotes import fold as quotes
from tests.support.folds import fold_all
from schemas import events as ev
from schemas.envelope import Event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def told(customer: str, channel: str, id: str, payload: ev.Payload, hours: float = 0) -> Event:
    return Event.of(payload, customer=customer, channel=channel, source=f"/channels/{channel}", id=id,
                    time=T0 + timedelta(hours=hours))


def price(amount: str, subject: str = "room-double") -> ev.PriceQuoted:
    return ev.PriceQuoted(subject=subject, amount=Decimal(amount))


def with_origins(events: list[Event]) -> list[tuple[Event, Origin]]:
    return [(e, Origin(f"omnitrail.{e.channel.value}", 0, i)) for i, e in enumerate(events)]


def insert_twice(client, table: str, rows: list[dict], schema) -> None:
    """As after a crash between insert and commit: the same rows arrive again, in another batch."""
    client.insert_arrow(table, to_arrow(rows, schema))
    client.insert_arrow(table, to_arrow(list(reversed(rows)), schema))


def test_empty_store_reads_empty(client):
    assert violations(client) == [] and channel_summary(client) == []


def test_violations_read_once_in_time_order_and_filter(client):
    events = [
        told("c-1", "phone", "p1", price("389"), hours=0),
        told("c-2", "web", "w2", price("429"), hours=1),
        told("c-1", "web", "w1", price("429"), hours=2),            # violation-w1
        told("c-2", "phone", "p2", price("389"), hours=3),          # violation-p2
        told("c-2", "email", "a1", ev.AnswerGiven(subject="refunds", answer="14 days"), hours=4),
        told("c-2", "phone", "a2", ev.AnswerGiven(subject="refunds", answer="30 days"), hours=5),  # violation-a2
        told("c-3", "phone", "p3", price("389"), hours=6),
        told("c-3", "web", "w3", price("389.00"), hours=7),         # same price: none
    ]
    _, rows, derived = fold_all(consistency.PROJECTION, with_origins(events))
    assert sorted(d.id for d in derived) == ["violation-a2", "violation-p2", "violation-w1"]
    insert_twice(client, consistency.TABLE, rows, consistency.SCHEMA)

    found = violations(client)
    assert [v["violation_id"] for v in found] == ["violation-w1", "violation-p2", "violation-a2"]
    first = found[0]
    assert first["customer_id"] == "c-1" and (first["kind"], first["subject"]) == ("price", "room-double")
    assert first["channels"] == ["phone", "web"]
    assert first["values"] == ["389.00 EUR", "429.00 EUR"]
    assert first["event_ids"] == ["p1", "w1"]
    assert first["detected_at"] == (T0 + timedelta(hours=2)).isoformat()
    assert (first["event_id"], first["topic"], first["offset"]) == ("w1", "omnitrail.web", 2)

    assert [v["violation_id"] for v in violations(client, customer_id="c-2")] == ["violation-p2", "violation-a2"]
    assert [v["violation_id"] for v in violations(client, subject="room-double")] == ["violation-w1", "violation-p2"]
    assert [v["violation_id"] for v in violations(client, customer_id="c-2", subject="refunds")] == ["violation-a2"]
    assert violations(client, customer_id="c-3") == []


def quote_rows(events: list[Event]) -> list[dict]:
    return [row for e, o in with_origins(events) for row in quotes.project(e, o)]


def test_channel_summary_finds_the_channel_that_quotes_differently(client):
    events = []
    for i in range(20):
        c = f"cust-{i:02d}"
        events += [
            told(c, "phone", f"{c}-p", price("389" if i < 17 else "429")),  # phone mostly quotes 389
            told(c, "web", f"{c}-w", price("429.00")),
            told(c, "store", f"{c}-s", price("429")),
            told(c, "phone", f"{c}-ps", price("99", subject="room-single")),  # everyone agrees on room-single
            told(c, "web", f"{c}-ws", price("99.00", subject="room-single")),
            told(c, "phone", f"{c}-o", ev.OfferMade(subject="SPRING", terms="10% off")),  # two channels disagree
            told(c, "email", f"{c}-e", ev.OfferMade(subject="SPRING", terms=" 15% off ")),
            told(c, "mail", f"{c}-m", ev.MailSent(letter_id=f"{c}-L", address=ev.PostalAddress(
                street="Damrak", house_number="1", postcode="1012 LG", city="Amsterdam"))),  # tells nothing
        ]
    insert_twice(client, quotes.TABLE, quote_rows(events), quotes.SCHEMA)

    summary = {(r["kind"], r["subject"], r["channel"]): r for r in channel_summary(client)}
    assert set(summary) == {("price", "room-double", "phone"), ("price", "room-double", "store"),
                            ("price", "room-double", "web"), ("price", "room-single", "phone"),
                            ("price", "room-single", "web"), ("offer", "SPRING", "email"),
                            ("offer", "SPRING", "phone")}
    phone = summary["price", "room-double", "phone"]
    assert phone["quotes"] == 20  # duplicates collapsed
    assert phone["top_value"] == "389.00 EUR" and phone["top_share"] == pytest.approx(0.85)
    assert phone["other_quotes"] == 40 and phone["other_value"] == "429.00 EUR"
    assert phone["other_share"] == pytest.approx(1.0)
    assert phone["deviates"] is True
    for channel in ("web", "store"):
        row = summary["price", "room-double", channel]
        assert row["quotes"] == 20 and row["top_value"] == "429.00 EUR" and row["top_share"] == pytest.approx(1.0)
        assert row["other_value"] == "429.00 EUR" and row["other_quotes"] == 40
        assert row["other_share"] == pytest.approx(23 / 40)
        assert row["deviates"] is False
    for channel in ("phone", "web"):
        row = summary["price", "room-single", channel]
        assert (row["top_value"], row["other_value"], row["deviates"]) == ("99.00 EUR", "99.00 EUR", False)
    # With only two channels that disagree, each deviates from the other: both are reported.
    assert summary["offer", "SPRING", "email"]["top_value"] == "15% off"
    assert summary["offer", "SPRING", "phone"]["other_value"] == "15% off"
    assert summary["offer", "SPRING", "email"]["deviates"] and summary["offer", "SPRING", "phone"]["deviates"]


def test_a_channel_alone_on_a_subject_does_not_deviate(client):
    insert_twice(client, quotes.TABLE, quote_rows([told("c-1", "web", "w1", price("1", subject="gift-card")),
                                                   told("c-2", "web", "w2", price("2", subject="gift-card"))]),
                 quotes.SCHEMA)
    [row] = channel_summary(client)
    assert (row["channel"], row["quotes"], row["top_value"], row["top_share"]) == ("web", 2, "1.00 EUR", 0.5)
    assert (row["other_quotes"], row["other_value"], row["other_share"], row["deviates"]) == (0, None, None, False)


def test_most_common_value_ties_go_to_the_smallest_value(client):
    insert_twice(client, quotes.TABLE, quote_rows([told("c-1", "web", "w1", price("5", subject="x")),
                                                   told("c-2", "web", "w2", price("4", subject="x")),
                                                   told("c-1", "phone", "p1", price("4", subject="x"))]),
                 quotes.SCHEMA)
    summary = {r["channel"]: r for r in channel_summary(client)}
    assert summary["web"]["top_value"] == "4.00 EUR" and summary["web"]["deviates"] is False
    assert summary["phone"]["other_value"] == "4.00 EUR" and summary["phone"]["deviates"] is False
