"""The identity graph resolved at read time, against a real ClickHouse (chdb, or a server): events recorded under an
identifier show on the timeline, journeys and flags of the customer it is linked to now, earlier ones included;
a re-link moves them, an unlink takes them away, and the history of links stays."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from projections.engine import Engine, Record
from projections.flags.queries import customer_flags
from projections.identities.queries import EVER, SUBJECTS, owner, whois
from projections.migrate import discover, migrate
from projections.journeys.queries import customer_journeys
from projections.origin import Origin
from projections.sink import Sink
from projections.timeline.queries import customer_timeline
from schemas import events as ev
from schemas.envelope import Event
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
H = timedelta(hours=1)
HOME = ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 AB", city="Utrecht")
MOVED = ev.PostalAddress(street="Kerkweg", house_number="12b", postcode="3511 XY", city="Utrecht")


class Log:
    """Events through the engine into the store, each batch at the next offsets of one partition, as a worker would."""

    def __init__(self, client):
        self.client, self.sink, self.engine, self.states, self.offset = client, Sink(client), Engine(), {}, 0
        self.n = 0

    def event(self, subject: str, payload: ev.Payload, at: datetime, channel: str = "twitter",
              correlationid: str | None = None) -> Event:
        self.n += 1
        return Event.of(payload, customer=subject, channel=channel, source="/test", id=f"e{self.n}", time=at,
                        correlationid=correlationid)

    def publish(self, *events: Event, offsets: list[int] | None = None) -> list[Event]:
        if offsets is None:
            offsets = list(range(self.offset, self.offset + len(events)))
            self.offset += len(events)
        records = [Record(e, Origin("omnitrail.x", 0, o), Origin("omnitrail.x", 0, o)) for e, o in zip(events, offsets)]
        applied = self.engine.apply(records, self.states)
        assert applied.failed == {}
        self.sink.write(self.engine.tables(applied))
        return list(events)

    def link(self, customer: str, at: datetime, kind: str = "twitter", value: str = "@Jan") -> Event:
        return self.publish(self.event(customer, ev.IdentityLinked(kind=kind, value=value), at))[0]

    def unlink(self, customer: str, at: datetime, kind: str = "twitter", value: str = "jan") -> Event:
        return self.publish(self.event(customer, ev.IdentityUnlinked(kind=kind, value=value), at))[0]


def ids(rows: list[dict]) -> list[str]:
    return [r["event_id"] for r in rows]


def eids(events: list[Event]) -> list[str]:
    return [e.id for e in events]


def tweets(log: Log, at: datetime, conversation: str) -> list[Event]:
    """An anonymous conversation on Twitter: the webcare tool knows only the handle."""
    return log.publish(
        log.event("twitter:@jan", ev.MessageReceived(conversation_id=conversation, text="Where is my letter?",
                                                     handle="@jan"), at, correlationid=conversation),
        log.event("twitter:@jan", ev.MessageSent(conversation_id=conversation, text="Which customer number?"),
                  at + timedelta(minutes=5), correlationid=conversation))


@pytest.fixture
def log(client):
    return Log(client)


def test_link_relink_and_unlink_take_effect_on_the_next_read_and_the_history_stays(client, log):
    own = log.publish(log.event("c-1", ev.CallStarted(call_id="k-1"), T0, "phone", "c-1-call"))
    first = tweets(log, T0 + H, "tw-1")  # before anyone knows whose handle it is
    assert ids(customer_timeline(client, "c-1")) == eids(own)
    assert ids(customer_timeline(client, "twitter:@jan")) == eids(first)
    assert owner(client, "twitter:@jan") is None and whois(client, "twitter:@jan") == []

    linked = log.link("c-1", T0 + 2 * H)  # "@Jan": the same identifier in another spelling
    rows = customer_timeline(client, "c-1")
    assert ids(rows) == eids(own + first + [linked])  # the earlier tweets too, in time order
    assert [r["customer_id"] for r in rows] == ["c-1", "twitter:@jan", "twitter:@jan", "c-1"]
    assert [j["journey_id"] for j in customer_journeys(client, "c-1")] == ["c-1-call", "tw-1"]
    later = tweets(log, T0 + 3 * H, "tw-2")
    assert ids(customer_timeline(client, "c-1")) == eids(own + first + [linked] + later)

    relinked = log.link("c-2", T0 + 4 * H, value="jan")  # the handle was someone else's after all
    assert ids(customer_timeline(client, "c-1")) == eids(own + [linked])
    assert ids(customer_timeline(client, "c-2")) == eids(first + later + [relinked])
    # c-2's link event starts a journey of its own (no correlation id, no earlier journey of c-2 to join)
    assert [j["journey_id"] for j in customer_journeys(client, "c-2")] == ["tw-1", "tw-2", f"inferred-{relinked.id}"]
    assert [j["journey_id"] for j in customer_journeys(client, "c-1")] == ["c-1-call"]

    stale = log.unlink("c-1", T0 + 5 * H)  # c-1 no longer has it: changes nothing
    assert owner(client, "twitter:@jan") == "c-2"
    unlinked = log.unlink("c-2", T0 + 6 * H)
    assert owner(client, "twitter:@jan") is None
    assert ids(customer_timeline(client, "c-2")) == eids([relinked, unlinked])
    assert [j["journey_id"] for j in customer_journeys(client, "c-2")] == [f"inferred-{relinked.id}"]
    assert ids(customer_timeline(client, "twitter:@jan")) == eids(first + later)  # the log stays as it was

    [who] = whois(client, "Twitter:@JAN")
    assert who["identifier"] == "twitter:@jan" and who["customer_id"] is None
    assert [(h["action"], h["customer_id"], h["event_id"]) for h in who["history"]] == [
        ("link", "c-1", linked.id), ("link", "c-2", relinked.id), ("unlink", "c-1", stale.id),
        ("unlink", "c-2", unlinked.id)]
    assert who["history"][0]["time"] == (T0 + 2 * H).isoformat()
    assert (who["history"][0]["type"], who["history"][0]["topic"]) == ("omnitrail.IdentityLinked.v1", "omnitrail.x")


def test_event_time_decides_not_arrival_and_ties_go_to_the_later_log_position(client, log):
    tweets(log, T0, "tw-1")
    log.link("c-1", T0 + H)
    log.unlink("c-1", T0 + 3 * H)
    late = log.link("c-3", T0 + 2 * H)  # arrives after the unlink, happened before it: c-1's unlink is not c-3's
    assert owner(client, "twitter:@jan") == "c-3"
    assert late.id in ids(customer_timeline(client, "c-3"))
    log.link("c-1", T0 + 2 * H)  # at the same time as c-3's link, later in the log; but c-1 unlinked it after
    assert owner(client, "twitter:@jan") is None

    a, b = (log.event(c, ev.IdentityLinked(kind="email", value="x@example.com"), T0) for c in ("c-4", "c-5"))
    log.publish(a, b, offsets=[900, 100])  # one batch; c-4's link sits later in the log
    assert owner(client, "email:x@example.com") == "c-4"
    log.publish(log.event("c-6", ev.IdentityLinked(kind="email", value="X@example.com"), T0), offsets=[901])
    assert owner(client, "email:x@example.com") == "c-6"


def test_a_duplicate_delivery_shows_once_in_the_history(client, log):
    linked = log.link("c-1", T0)
    log.engine, log.states = Engine(), {}  # a worker that lost its states redelivers the same record
    log.publish(linked, offsets=[0])
    [who] = whois(client, "twitter:@jan")
    assert [h["event_id"] for h in who["history"]] == [linked.id] and who["customer_id"] == "c-1"


def test_addresses_link_from_the_customers_own_mail_and_address_events(client, log):
    log.publish(log.event("c-1", ev.MailSent(letter_id="L-1", address=HOME), T0, "mail"))
    assert owner(client, "address:1234AB-1") == "c-1"
    log.publish(log.event("c-2", ev.MailSent(letter_id="L-2", address=HOME), T0 + H, "mail"))
    assert owner(client, "address:1234AB-1") == "c-2"  # the newest letter to the address names its customer
    log.publish(log.event("c-2", ev.AddressChanged(address=MOVED, previous=HOME), T0 + 2 * H, "web"))
    assert (owner(client, "address:1234AB-1"), owner(client, "address:3511XY-12B")) == (None, "c-2")
    log.publish(log.event("c-1", ev.MailReturned(letter_id="L-1", address=HOME, reason="moved"), T0 + 3 * H, "mail"))
    assert owner(client, "address:1234AB-1") is None  # a return links and unlinks nothing


def test_flags_recorded_under_a_linked_identifier_are_the_customers(client, log):
    card = "loyalty_card:NL123"
    for i in range(2):  # two letters to a loyalty-card holder nobody had linked yet come back: flagged
        log.publish(log.event(card, ev.MailReturned(letter_id=f"L-{i}", address=HOME, reason="moved"),
                              T0 + i * H, "mail"))
    assert customer_flags(client, "c-1") == []
    log.link("c-1", T0 + 5 * H, kind="loyalty_card", value="nl 123")
    [flag] = customer_flags(client, "c-1")
    assert (flag["customer_id"], flag["status"], flag["returns"]) == (card, "flagged", 2)
    log.unlink("c-1", T0 + 6 * H, kind="loyalty_card", value="NL123")
    assert customer_flags(client, "c-1") == []


def test_the_timeline_reads_the_customers_subjects_as_point_lookups(client, log):
    tweets(log, T0, "tw-1")
    log.link("c-1", T0 + H)
    plan = "\n".join(r[0] for r in client.query(
        f"EXPLAIN indexes = 1 SELECT * FROM timeline FINAL WHERE customer_id IN ({SUBJECTS})",
        parameters={"customer": "c-1"}).result_rows)
    assert "Condition: (customer_id in 2-element set)" in plan


class Counting:
    """A client that counts the statements a read sends."""

    def __init__(self, client):
        self.client, self.statements = client, 0

    def query(self, *args, **kwargs):
        self.statements += 1
        return self.client.query(*args, **kwargs)


def resolved_in_one_query(client, table: str, columns: str, order: str, customer: str, limit: int = 10_000) -> list:
    """The rows as one query that resolves the subjects itself gives them."""
    return client.query(f"SELECT {columns} FROM {table} FINAL WHERE customer_id IN ({SUBJECTS}) ORDER BY {order} "
                        "LIMIT {limit:UInt32}", parameters={"customer": customer, "limit": limit}).result_rows


def test_reads_answer_as_one_query_resolving_the_subjects_and_check_identifiers_only_when_rows_were_under_one(
        client, log):
    # c-1's handle @jan, then relinked to c-2: c-1 once had it (its rows are read) but no longer does
    tweets(log, T0, "tw-1")
    log.link("c-1", T0 + H)
    log.publish(*[log.event("c-1", ev.CallStarted(call_id=f"k-{i}"), T0 + (2 + i) * H, "phone") for i in range(3)])
    log.publish(log.event("whatsapp:+31600000001", ev.MessageReceived(conversation_id="w", text="hi"),
                          T0 + 5 * H, "whatsapp"))
    log.link("c-1", T0 + 6 * H, kind="whatsapp", value="+31 6 0000 0001")  # c-1 keeps this one
    log.link("c-2", T0 + 7 * H, value="jan")
    log.publish(log.event("c-3", ev.MailSent(letter_id="L-1", address=HOME), T0, "mail"))  # a link, no rows under it
    statements = {}  # (customer, limit) -> statements the timeline read sent
    for customer in ("c-1", "c-2", "c-3", "twitter:@jan", "nobody"):
        for limit in (1, 2, 3, 4, 5, 6, 7, 10_000):
            counting = Counting(client)
            got = [(r["event_id"], r["customer_id"]) for r in customer_timeline(counting, customer, limit=limit)]
            statements[customer, limit] = counting.statements
            assert got == [(r[0], r[1]) for r in resolved_in_one_query(
                client, "timeline", "event_id, customer_id", "time, source, event_id", customer, limit)]
        assert [j["journey_id"] for j in customer_journeys(client, customer)] == [r[0] for r in resolved_in_one_query(
            client, "journeys", "journey_id", "started_at, journey_id", customer)]
        assert [f["address_hash"] for f in customer_flags(client, customer)] == [r[0] for r in resolved_in_one_query(
            client, "address_flags", "address_hash", "updated_at, address_hash", customer)]
    # no rows under an identifier: one statement; rows under identifiers the customer has now: their check too;
    # rows under one it no longer has, left out (2) or, when the limit cut the rows short, read again (3)
    assert statements["c-3", 10_000] == statements["nobody", 10_000] == 1
    assert statements["c-2", 10_000] == statements["c-1", 10_000] == 2
    assert statements["c-1", 1] == 3


def by_customer(client, customer: str) -> list[str]:
    """The customer and its identifiers (EVER), refused unless the store reads them from the by_customer projection."""
    return [r[0] for r in client.query(f"SELECT * FROM ({EVER}) SETTINGS force_optimize_projection_name = "
                                       "'by_customer'", parameters={"customer": customer}).result_rows]


def other_links(client, n: int = 20_000) -> None:
    """Links of other customers, merged with the rest into one part: on a few rows in small parts the store rightly
    reads the table instead of the projection."""
    client.command(f"INSERT INTO identity_links (identifier, customer_id, action, time, type, channel, source, "
                   f"event_id, topic, partition, offset) SELECT concat('email:u', toString(number), '@example.com'), "
                   f"concat('other-', toString(number % 5000)), 'link', now64(3), 'omnitrail.IdentityLinked.v1', "
                   f"'web', '/test', concat('o', toString(number)), 'omnitrail.web', 0, number FROM numbers({n})")
    client.command("OPTIMIZE TABLE identity_links FINAL")


def test_a_customers_identifiers_are_a_primary_key_lookup_of_the_by_customer_projection(client, log):
    log.link("c-1", T0)
    log.link("c-2", T0 + H, kind="email", value="x@example.com")
    other_links(client)
    assert by_customer(client, "c-1") == ["c-1", "twitter:@jan"]


def projected(client) -> int:
    """Rows in the by_customer projection of the active parts."""
    return client.query("SELECT sum(rows) FROM system.projection_parts WHERE active AND table = 'identity_links' "
                        "AND database = currentDatabase() AND name = 'by_customer'").result_rows[0][0]


def test_a_store_written_before_the_projection_reads_alike_after_it_and_merges_keep_it(bare_client):
    before = [m for m in discover() if (m.projection, m.version) != ("identities", 2)]
    migrate(bare_client, before)
    log = Log(bare_client)
    tweets(log, T0, "tw-1")
    log.link("c-1", T0 + H)
    relinked = log.link("c-2", T0 + 2 * H, value="jan")
    log.link("c-2", T0 + 3 * H, kind="email", value="x@example.com")
    log.unlink("c-2", T0 + 4 * H, kind="email", value="x@example.com")
    reads = {c: customer_timeline(bare_client, c) for c in ("c-1", "c-2", "twitter:@jan")}
    assert [(m.projection, m.version) for m in migrate(bare_client)] == [("identities", 2)]
    assert {c: customer_timeline(bare_client, c) for c in reads} == reads  # while the projection is being built too
    wait_until(lambda: not bare_client.query("SELECT count() FROM system.mutations WHERE table = 'identity_links' "
                                             "AND database = currentDatabase() AND NOT is_done").result_rows[0][0])
    assert projected(bare_client) == 4  # the parts stored before the migration got theirs
    other_links(bare_client)
    assert sorted(by_customer(bare_client, "c-2")) == ["c-2", "email:x@example.com", "email:x@example.com",
                                                        "twitter:@jan"]
    assert {c: customer_timeline(bare_client, c) for c in reads} == reads
    log.engine, log.states = Engine(), {}  # a duplicate delivery, merged away: the projection is rebuilt with it
    log.publish(relinked, offsets=[3])
    assert bare_client.query("SELECT count() FROM identity_links").result_rows[0][0] == 20_005
    bare_client.command("OPTIMIZE TABLE identity_links FINAL")
    assert {c: customer_timeline(bare_client, c) for c in reads} == reads
    assert bare_client.query("SELECT count() FROM identity_links").result_rows[0][0] == projected(bare_client) == 20_004
