"""The named reads take an identifier wherever they take a customer id, resolved once for the CLI and the read API
(``services.queries``), against a real ClickHouse (chdb, or a server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from projections.engine import Engine, Record
from projections.migrate import migrate
from projections.origin import Origin
from projections.sink import Sink
from projections.store import connect
from schemas import events as ev
from schemas.envelope import Event
from services.queries import run_query
from tests.support.brokers import running_clickhouse

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOME = ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 AB", city="Utrecht")


def event(n: int, subject: str, payload: ev.Payload, channel: str) -> Event:
    return Event.of(payload, customer=subject, channel=channel, source="/test", id=f"e{n}",
                    time=T0 + timedelta(hours=n), correlationid=f"j-{subject}")


@pytest.fixture
def client(tmp_path):
    with running_clickhouse(tmp_path) as url:
        c = connect(url)
        migrate(c)
        engine = Engine()
        events = [
            event(0, "whatsapp:+31612345678", ev.MessageReceived(conversation_id="w", text="hi"), "whatsapp"),
            event(1, "whatsapp:+31612345678", ev.MailReturned(letter_id="L-1", address=HOME, reason="moved"), "mail"),
            event(2, "c-1", ev.IdentityLinked(kind="whatsapp", value="+31 6 1234 5678"), "whatsapp"),
            event(3, "c-1", ev.CallStarted(call_id="k"), "phone"),
            event(4, "twitter:@piet", ev.MessageReceived(conversation_id="t", text="hello"), "twitter"),
            event(5, "c-2", ev.IdentityLinked(kind="twitter", value="@piet"), "twitter"),
            event(6, "c-2", ev.IdentityUnlinked(kind="twitter", value="@piet"), "twitter"),
            event(7, "crm:7", ev.CallStarted(call_id="m"), "phone"),
        ]
        applied = engine.apply([Record(e, Origin("t", 0, i), Origin("t", 0, i)) for i, e in enumerate(events)], {})
        Sink(c).write(engine.tables(applied))
        yield c
        c.close()


def event_ids(rows: list[dict]) -> list[str]:
    return [r["event_id"] for r in rows]


@pytest.mark.parametrize("name", ["timeline", "journeys", "customer_flags"])
def test_an_identifier_reads_as_the_customer_it_belongs_to(client, name):
    mine = run_query(client, name, {"customer_id": "c-1"})
    assert mine  # the linked events and journeys, and the flag counted under the number
    for spelling in ("whatsapp:+31612345678", "WhatsApp:+31 6 1234 5678", "whatsapp:0031612345678"):
        assert run_query(client, name, {"customer_id": spelling}) == mine


def test_the_customers_timeline_holds_what_its_identifiers_recorded(client):
    assert event_ids(run_query(client, "timeline", {"customer_id": "c-1"})) == ["e0", "e1", "e2", "e3"]


def test_an_identifier_that_belongs_to_nobody_reads_as_itself(client):
    for spelling in ("twitter:@piet", "Twitter:PIET"):  # unlinked again: its own events, in normal form
        assert event_ids(run_query(client, "timeline", {"customer_id": spelling})) == ["e4"]
    assert event_ids(run_query(client, "timeline", {"customer_id": "c-2"})) == ["e5", "e6"]


def test_a_customer_id_that_is_no_identifier_is_read_as_given(client):
    assert event_ids(run_query(client, "timeline", {"customer_id": "crm:7"})) == ["e7"]
    assert run_query(client, "timeline", {"customer_id": "nobody"}) == []


def test_whois_names_the_customer_and_the_history(client):
    [who] = run_query(client, "whois", {"identifier": "whatsapp:+31 6 1234 5678"})
    assert (who["identifier"], who["customer_id"]) == ("whatsapp:+31612345678", "c-1")
    assert [(h["action"], h["customer_id"], h["event_id"]) for h in who["history"]] == [("link", "c-1", "e2")]
    [piet] = run_query(client, "whois", {"identifier": "twitter:piet"})
    assert piet["customer_id"] is None and [h["action"] for h in piet["history"]] == ["link", "unlink"]
    assert run_query(client, "whois", {"identifier": "email:nobody@example.com"}) == []
    with pytest.raises(ValueError, match="not an identifier"):
        run_query(client, "whois", {"identifier": "c-1"})
    with pytest.raises(ValueError, match="needs identifier"):
        run_query(client, "whois", {})
