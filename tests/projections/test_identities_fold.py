"""The pure identity projection: which identifiers an event links to or unlinks from its customer, as rows that
carry the event's id and origin and fit the table's Arrow schema."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from projections.arrow import to_arrow
from projections.identities.fold import SCHEMA, TABLE, project
from projections.origin import Origin
from schemas import derived as dv
from schemas import events as ev
from schemas.envelope import Event
from schemas.wire import from_model
from tests.schemas.payload_samples import CHANNEL_OF, SAMPLES
from tests.support.events import latest

WHEN = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
ORIGIN = Origin("omnitrail.twitter", 4, 77)
HOME = ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 ab", city="Utrecht")
NEW = ev.PostalAddress(street="Kerkweg", house_number="12b", postcode="3511 XY", city="Utrecht")


def event(payload: ev.Payload, channel: str = "twitter") -> Event:
    return Event.of(payload, customer="cust-1", channel=channel, source="/crm", id="e-1", time=WHEN)


def links(payload: ev.Payload, channel: str = "twitter") -> list[tuple[str, str]]:
    return [(r["identifier"], r["action"]) for r in project(event(payload, channel), ORIGIN)]


def test_table_name():
    assert TABLE == "identity_links"


@pytest.mark.parametrize(("payload", "expected"), [
    (ev.IdentityLinked(kind="twitter", value="@Jan"), [("twitter:@jan", "link")]),
    (ev.IdentityLinked(kind="whatsapp", value="+31 6 1234 5678"), [("whatsapp:+31612345678", "link")]),
    (ev.IdentityUnlinked(kind="email", value="Jan@Example.com"), [("email:jan@example.com", "unlink")]),
    (ev.MailSent(letter_id="L-1", address=HOME), [("address:1234AB-1", "link")]),
    (ev.AddressChanged(address=NEW, previous=HOME), [("address:3511XY-12B", "link"), ("address:1234AB-1", "unlink")]),
    (ev.AddressChanged(address=NEW), [("address:3511XY-12B", "link")]),
    (ev.AddressChanged(address=HOME, previous=HOME.model_copy(update={"postcode": "1234AB"})),
     [("address:1234AB-1", "link")]),  # confirmed: the same address, spelt differently, stays linked
    (ev.MailReturned(letter_id="L-1", address=HOME, reason="moved"), []),  # the flags projection's call
    (ev.MessageReceived(conversation_id="c", text="hi", handle="@jan"), []),
    (dv.AddressFlagged(address=HOME, address_hash="h", returns=2, first_return=WHEN, last_return=WHEN,
                       return_event_ids=["a", "b"]), []),  # a conclusion, not what the customer told us
])
def test_what_an_event_links_and_unlinks(payload, expected):
    assert links(payload) == expected


def test_rows_carry_the_customer_the_event_and_its_origin():
    [row] = project(event(ev.IdentityLinked(kind="twitter", value="@Jan")), ORIGIN)
    assert row == {"identifier": "twitter:@jan", "customer_id": "cust-1", "action": "link", "time": WHEN,
                   "type": "omnitrail.IdentityLinked.v1", "channel": "twitter", "source": "/crm", "event_id": "e-1",
                   "topic": "omnitrail.twitter", "partition": 4, "offset": 77}


def test_the_wire_twin_projects_the_same_rows():
    """The worker hands the projection msgspec-decoded events; tests use pydantic ones."""
    for payload in (ev.IdentityUnlinked(kind="whatsapp", value="+31 6 1234 5678"),
                    ev.AddressChanged(address=NEW, previous=HOME), ev.MailSent(letter_id="L", address=HOME)):
        e = event(payload)
        assert project(from_model(e), ORIGIN) == project(e, ORIGIN)


def test_an_identifier_that_normalises_to_nothing_is_refused():
    with pytest.raises(ValueError, match="empty twitter identifier"):
        project(event(ev.IdentityLinked(kind="twitter", value="@")), ORIGIN)


def test_rows_of_every_event_type_fit_the_arrow_schema():
    rows = [r for i, p in enumerate(p for p in latest() if p in ev.PAYLOADS)
            for r in project(Event.of(SAMPLES[p], customer="c", channel=CHANNEL_OF[p], source="/s", id=f"e{i}",
                                      time=WHEN), Origin("t", 0, i))]
    assert {r["type"] for r in rows} == {p.type_name() for p in (ev.MailSent, ev.AddressChanged, ev.IdentityLinked,
                                                                 ev.IdentityUnlinked)}
    table = to_arrow(rows, SCHEMA)
    assert table.num_rows == len(rows) == 5 and table.schema == SCHEMA
