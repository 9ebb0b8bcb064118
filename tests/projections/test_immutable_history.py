"""Immutable history in the engine: the first event with a (source, id) stands. The same event again is skipped
(whichever CloudEvents mode carries it); one with other content is a conflicting duplicate: reported in
``Applied.failed`` and projected nowhere, live or in a rebuild."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest

from projections.engine import IDS_KEPT, IDS_TRIM, UNKNOWN, Engine, content_digest, identity
from projections.registry import PROJECTIONS
from schemas import events as ev
from schemas.channels import Channel
from schemas.codec import encode
from schemas.envelope import Event
from schemas.wire import decode_fast
from tests.projections.test_engine import records, returned
from tests.support.events import T0

OTHER_ADDRESS = ev.PostalAddress(street="Stationsplein", house_number="9", postcode="3511 ED", city="Utrecht")


def quote(amount: str, channel: Channel = Channel.PHONE, id: str = "q-1", **kw) -> Event:
    return Event.of(ev.PriceQuoted(subject="hotel-ams", amount=Decimal(amount)), customer="c-1", channel=channel,
                    source=f"/test/{channel.value}", id=id, time=kw.pop("time", T0), correlationid="j-1", **kw)


def wire(event: Event, mode: str):
    record = encode(event, mode)
    return decode_fast(record.value, record.headers)


def conflict_reason(event: Event) -> str:
    return (f"conflicting duplicate: ({event.source}, {event.id}) was first published with different content; "
            "the first event stands")


def test_a_conflicting_price_changes_neither_the_timeline_nor_consistency():
    engine, states = Engine(), {}
    first = engine.apply(records([quote("389.00"), quote("429.00", Channel.WEB, "q-2")]), states)
    assert [d.name for d in first.derived] == ["ConsistencyViolated"]
    folds = orjson.dumps(states["c-1"]["p"])
    # The same ids again, same times, other amounts: the phone's price rewritten, the web's made to agree.
    forged = [quote("1.00"), quote("389.00", Channel.WEB, "q-2")]
    applied = engine.apply(records(forged, start=2), states)
    assert (applied.rows, applied.derived, applied.skipped) == ({}, [], 0)
    assert applied.failed == {0: conflict_reason(forged[0]), 1: conflict_reason(forged[1])}
    assert orjson.dumps(states["c-1"]["p"]) == folds


def test_a_rebuild_of_the_timeline_keeps_the_first_version_too():
    # A rebuild runs the engine without folds: before, both versions were projected and the store kept the last.
    engine = Engine([PROJECTIONS["timeline"], PROJECTIONS["quotes"]], [])
    applied = engine.apply(records([quote("389.00"), quote("1.00")]), {})
    assert [r["summary"] for r in applied.rows["timeline"]] == ["price for hotel-ams: 389.00 EUR"]
    assert [r["value"] for r in applied.rows["quotes"]] == ["389.00 EUR"]
    assert applied.failed == {1: conflict_reason(quote("1.00"))}


@pytest.mark.parametrize("projection", ["timeline", "journeys"])
def test_a_rebuild_projects_what_the_worker_projected_without_telling_conflicts_apart(projection):
    # A rebuild's engine takes no digests (conflicts=False); its rows must still be the live worker's: identical
    # repeats, conflicting ones and repeats older than the id window, in several batches.
    events = [quote(f"{n}.00", id=f"q-{n}", time=T0 + timedelta(minutes=n)) for n in range(IDS_KEPT + 40)]
    events += [quote("1.00", id="q-3"), events[5], quote("7.00", id=f"q-{IDS_KEPT + 20}"), events[IDS_KEPT + 30],
               quote("2.00", id="q-0"), events[1]]  # the last two: q-0 and q-1 have left the window by now
    live = Engine([PROJECTIONS[projection]] if projection in PROJECTIONS else [],
                  [] if projection in PROJECTIONS else None)
    rebuild = Engine(live.projections, live.stateful, conflicts=False)
    if projection not in PROJECTIONS:
        live.stateful = rebuild.stateful = [s for s in live.stateful if s.name == projection]
    batches = [records(events[i:i + 97], start=i) for i in range(0, len(events), 97)]
    rows = {}
    for name, engine in (("live", live), ("rebuild", rebuild)):
        states, rows[name] = {}, []
        for batch in batches:
            applied = engine.apply(batch, states)
            rows[name] += applied.rows.get(PROJECTIONS[projection].table if projection in PROJECTIONS
                                           else live.stateful[0].table, [])
            if name == "rebuild":
                assert applied.failed == {}
            else:
                failed = applied.failed
    assert failed  # the live engine did report the conflicts in the last batch
    assert rows["rebuild"] == rows["live"] and len(rows["live"]) > IDS_KEPT


def test_a_conflicting_return_does_not_count_toward_a_flag():
    engine, states = Engine(), {}
    original = returned("c-1", 1, 1)
    # Same (source, id), another address: folded, it would be that address's first return ...
    forged = Event.of(ev.MailReturned(letter_id="l-9", address=OTHER_ADDRESS, reason="moved"), customer="c-1",
                      channel=Channel.MAIL, source=original.source, id=original.id, time=original.time)
    # ... and this genuine return its second, enough to flag it.
    second = Event.of(ev.MailReturned(letter_id="l-2", address=OTHER_ADDRESS, reason="moved"), customer="c-1",
                      channel=Channel.MAIL, source=original.source, id="c-1-ret-2", time=T0 + timedelta(days=2))
    applied = engine.apply(records([original, forged, second]), states)
    assert applied.failed == {1: conflict_reason(forged)}
    assert applied.derived == []
    assert sorted(r["returns"] for r in applied.rows["address_flags"]) == [1, 1]
    assert {r["status"] for r in applied.rows["address_flags"]} == {"returned"}


def test_within_a_batch_the_first_in_log_order_stands():
    applied = Engine().apply(records([quote("1.00"), quote("389.00")]), {})
    assert [r["summary"] for r in applied.rows["timeline"]] == ["price for hotel-ams: 1.00 EUR"]
    assert list(applied.failed) == [1]


def test_the_same_event_in_binary_and_structured_mode_is_one_event():
    event = quote("389.00")
    binary, structured = wire(event, "binary"), wire(event, "structured")
    assert content_digest(binary) == content_digest(structured) == content_digest(event)
    applied = Engine().apply(records([binary, structured, event]), {})
    assert (len(applied.rows["timeline"]), applied.skipped, applied.failed) == (1, 2, {})


CHANGES = {
    "type": lambda e: Event.of(ev.OfferMade(subject="hotel-ams", terms="389.00"), customer=e.subject,
                               channel=e.channel, source=e.source, id=e.id, time=e.time, correlationid="j-1"),
    "time": lambda e: e.model_copy(update={"time": e.time + timedelta(milliseconds=1)}),
    "channel": lambda e: e.model_copy(update={"channel": Channel.WEB}),
    "correlationid": lambda e: e.model_copy(update={"correlationid": "j-2"}),
    "causationid": lambda e: e.model_copy(update={"causationid": "q-0"}),
    "dataschema": lambda e: e.model_copy(update={"dataschema": "urn:example:elsewhere"}),
    "data": lambda e: e.model_copy(update={"data": e.data.model_copy(update={"currency": "USD"})}),
}


@pytest.mark.parametrize("attribute", CHANGES)
def test_every_attribute_of_the_content_counts(attribute):
    original = quote("389.00")
    changed = CHANGES[attribute](original)
    assert content_digest(changed) != content_digest(original)
    applied = Engine().apply(records([original, changed]), {})
    assert applied.failed == {1: conflict_reason(changed)}


def test_another_subject_is_another_customers_event():
    original, other = quote("389.00"), quote("389.00").model_copy(update={"subject": "c-2"})
    assert content_digest(other) != content_digest(original)
    assert Engine().apply(records([original, other]), {}).failed == {}


def test_a_conflict_is_recognised_while_the_original_is_among_the_newest_ids():
    engine, states = Engine(), {}
    guaranteed = IDS_KEPT - IDS_TRIM  # what a trim leaves
    engine.apply(records([quote("389.00")] + [returned("c-1", n, 1) for n in range(guaranteed - 1)]), states)
    assert engine.apply(records([quote("1.00")], start=guaranteed), states).failed == {0: conflict_reason(quote("1.00"))}


def test_a_state_from_before_digests_is_converted_and_its_events_still_recognised():
    engine, event, later = Engine(), quote("389.00"), quote("20.00", id="q-2")
    # As the previous version kept it: a list of signed 64-bit hashes of (source, id), no digests.
    earlier = int.from_bytes(hashlib.blake2b(f"{event.source}\x1f{event.id}".encode(), digest_size=8).digest(),
                             "big", signed=True)
    states = {"c-1": {"w": {}, "ids": [earlier], "p": {}}}
    applied = engine.apply(records([quote("1.00"), later]), states)
    assert (applied.skipped, applied.failed, len(applied.rows["timeline"])) == (1, {}, 1)  # its content unknown
    assert states["c-1"]["ids"] == {identity(event.source, event.id): UNKNOWN,
                                    identity(later.source, later.id): content_digest(later)}
