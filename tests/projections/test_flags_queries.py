"""The returned-mail flags table and its reads against a real ClickHouse: latest row per address, duplicates once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from projections.arrow import to_arrow
from projections.flags.fold import PROJECTION, SCHEMA, TABLE, address_hash
from projections.flags.queries import customer_flags, open_flags, suppression_list
from projections.origin import Origin
from tests.support.folds import fold_all
from schemas import events as ev
from schemas.envelope import Event

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOME = ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 AB", city="Utrecht")
NEW = ev.PostalAddress(street="Kerkweg", house_number="12b", postcode="3511 XY", city="Utrecht")
SHARED = ev.PostalAddress(street="Stationsplein", house_number="3", postcode="9999 ZZ", city="Groningen")


def scenario() -> list[tuple[Event, Origin]]:
    """flagged: HOME of c-1 (with a mail alert), SHARED of c-2 and c-3; cleared: HOME of c-2 (changed);
    counted only: NEW of c-1 (one return)."""
    plan = [
        ("c-1", ev.MailReturned(letter_id="a", address=HOME, reason="moved"), 0),
        ("c-2", ev.MailReturned(letter_id="b", address=HOME, reason="moved"), 0),
        ("c-1", ev.MailReturned(letter_id="c", address=HOME, reason="refused"), 1),
        ("c-2", ev.MailReturned(letter_id="d", address=HOME, reason="moved"), 1),
        ("c-1", ev.MailSent(letter_id="e", address=HOME), 2),
        ("c-2", ev.AddressChanged(address=NEW, previous=HOME), 3),
        ("c-1", ev.MailReturned(letter_id="f", address=NEW, reason="other"), 4),
        ("c-2", ev.MailReturned(letter_id="g", address=SHARED, reason="moved"), 5),
        ("c-3", ev.MailReturned(letter_id="h", address=SHARED, reason="moved"), 5),
        ("c-2", ev.MailReturned(letter_id="i", address=SHARED, reason="moved"), 6),
        ("c-3", ev.MailReturned(letter_id="j", address=SHARED, reason="moved"), 7),
    ]
    return [(Event.of(p, customer=c, channel="web" if isinstance(p, ev.AddressChanged) else "mail",
                      source="/test", id=f"e{i}", time=T0 + timedelta(days=d)), Origin("omnitrail.mail", 0, i))
            for i, (c, p, d) in enumerate(plan)]


@pytest.fixture
def stored(client):
    _, rows, _ = fold_all(PROJECTION, scenario())
    client.insert_arrow(TABLE, to_arrow(rows, SCHEMA))
    # A replay after a crash writes some rows again, older versions after newer ones included.
    client.insert_arrow(TABLE, to_arrow(list(reversed(rows[:6])) + rows[-2:], SCHEMA))
    return rows


def test_open_flags_are_the_latest_flagged_rows_once(client, stored):
    flags = open_flags(client)
    assert [(f["customer_id"], f["address_hash"]) for f in flags] == [
        ("c-1", address_hash(HOME)), ("c-2", address_hash(SHARED)), ("c-3", address_hash(SHARED))]
    home = flags[0]
    assert home["status"] == "flagged" and home["returns"] == 2 and home["version"] == 3
    assert home["actions"] == ["flagged", "mail_sent_alert"]
    assert home["address"] == HOME.one_line()
    assert home["first_return"] == T0.isoformat() and home["last_return"] == (T0 + timedelta(days=1)).isoformat()
    assert home["updated_at"] == (T0 + timedelta(days=2)).isoformat()
    assert (home["event_id"], home["topic"], home["offset"]) == ("e4", "omnitrail.mail", 4)


def test_suppression_list_names_every_flagged_address_and_customer(client, stored):
    assert suppression_list(client) == sorted([
        {"address_hash": address_hash(HOME), "address": HOME.one_line(), "customer_id": "c-1"},
        {"address_hash": address_hash(SHARED), "address": SHARED.one_line(), "customer_id": "c-2"},
        {"address_hash": address_hash(SHARED), "address": SHARED.one_line(), "customer_id": "c-3"},
    ], key=lambda r: (r["address_hash"], r["customer_id"]))


def test_customer_flags_show_each_address_once_in_its_latest_state(client, stored):
    c2 = customer_flags(client, "c-2")
    assert [(r["address_hash"], r["status"]) for r in c2] == [
        (address_hash(HOME), "cleared"), (address_hash(SHARED), "flagged")]
    assert c2[0]["actions"] == ["flagged", "cleared: address changed"] and c2[0]["returns"] == 2
    c1 = customer_flags(client, "c-1")
    assert [(r["address_hash"], r["status"], r["returns"]) for r in c1] == [
        (address_hash(HOME), "flagged", 2), (address_hash(NEW), "returned", 1)]
    assert customer_flags(client, "nobody") == []


def test_a_cleared_confirmation_row_has_no_return_times(client):
    events = scenario()[:4] + [(Event.of(ev.AddressChanged(address=HOME), customer="c-1", channel="web",
                                         source="/test", id="confirm", time=T0 + timedelta(days=9)),
                                Origin("omnitrail.web", 1, 0))]
    _, rows, derived = fold_all(PROJECTION, events)
    client.insert_arrow(TABLE, to_arrow(rows, SCHEMA))
    [row] = customer_flags(client, "c-1")
    assert row["status"] == "cleared" and row["returns"] == 0
    assert row["first_return"] is None and row["last_return"] is None
    assert [f["customer_id"] for f in open_flags(client)] == ["c-2"]
