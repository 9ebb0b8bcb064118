"""The pure quotes projection and the stateful consistency fold: values told on different channels that differ."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.arrow import to_arrow
from projections.consistency.fold import PROJECTION, SCHEMA, SOURCE, TABLE, fold, micros
from projections.origin import Origin
from projections.quotes import fold as quotes
from projections.rules import Rules
from projections.stateful import Folded
from tests.support.folds import fold_all
from schemas import events as ev
from schemas.derived import ConsistencyViolated, ToldValue
from schemas.envelope import Event

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RULES = Rules()
ORIGIN = Origin("omnitrail.web", 1, 77)


def told_event(payload: ev.Payload, channel: str, id: str, at: timedelta = timedelta(0), customer: str = "cust-1",
               **kw) -> Event:
    return Event.of(payload, customer=customer, channel=channel, source=f"/channels/{channel}", id=id,
                    time=T0 + at, **kw)


def price(amount: str, subject: str = "room-double", currency: str = "EUR") -> ev.PriceQuoted:
    return ev.PriceQuoted(subject=subject, amount=Decimal(amount), currency=currency)


def run(events: list[Event], rules: Rules = RULES) -> tuple[dict, list[dict], list[Event]]:
    states, rows, derived = fold_all(PROJECTION, [(e, Origin(f"omnitrail.{e.channel.value}", 0, i))
                                                  for i, e in enumerate(events)], rules)
    return states, rows, derived


# --- quotes: what was told ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("payload", "expected"), [
    (price("389"), ("price", "room-double", "389.00 EUR")),
    (price("389.5", currency="usd"), ("price", "room-double", "389.50 USD")),
    (price("0"), ("price", "room-double", "0.00 EUR")),
    (ev.OfferMade(subject="SPRING", terms="  10% off stays in May \n"), ("offer", "SPRING", "10% off stays in May")),
    (ev.AnswerGiven(subject="refunds", answer="  Within\n14   DAYS. "), ("answer", "refunds", "within 14 days.")),
])
def test_told_normalises_the_value(payload, expected):
    assert quotes.told(told_event(payload, "phone", "e1")) == expected


@pytest.mark.parametrize("payload", [ev.CallStarted(call_id="C-1"), ev.MessageSent(conversation_id="W", text="389"),
                                     ev.BookingMade(booking_id="B", product="p", amount=Decimal("389"))])
def test_other_events_tell_nothing(payload):
    event = told_event(payload, "phone", "e1")
    assert quotes.told(event) is None
    assert quotes.project(event, ORIGIN) == []


def test_quotes_row_carries_value_id_and_origin():
    event = told_event(price("389"), "phone", "e1", at=timedelta(hours=2))
    [row] = quotes.project(event, Origin("omnitrail.phone", 3, 2**40))
    assert set(row) == set(quotes.SCHEMA.names)
    assert row == {"customer_id": "cust-1", "kind": "price", "subject": "room-double", "channel": "phone",
                   "value": "389.00 EUR", "time": T0 + timedelta(hours=2), "event_id": "e1",
                   "source": "/channels/phone", "topic": "omnitrail.phone", "partition": 3, "offset": 2**40}
    table = to_arrow([row], quotes.SCHEMA)
    assert table.schema == quotes.SCHEMA and table.num_rows == 1
    assert quotes.TABLE == "quotes"


# --- consistency: violations ----------------------------------------------------------------------------------------
def test_phone_and_web_quoting_different_prices_within_the_window_is_one_violation():
    phone = told_event(price("389.00"), "phone", "p1", correlationid="journey-1")
    web = told_event(price("429.00"), "web", "w1", at=timedelta(days=3), correlationid="journey-1")
    states, rows, derived = run([phone, web])
    assert len(rows) == 1 and len(derived) == 1
    [row], [violation] = rows, derived
    assert set(row) == set(SCHEMA.names)
    assert row["violation_id"] == "violation-w1" and row["customer_id"] == "cust-1"
    assert (row["kind"], row["subject"]) == ("price", "room-double")
    assert row["channels"] == ["phone", "web"]
    assert row["values"] == ["389.00 EUR", "429.00 EUR"]
    assert row["event_ids"] == ["p1", "w1"]
    assert row["detected_at"] == web.time and row["event_id"] == "w1"
    assert (row["topic"], row["partition"], row["offset"]) == ("omnitrail.web", 0, 1)

    assert isinstance(violation.data, ConsistencyViolated)
    assert violation.id == "violation-w1" and violation.source == SOURCE
    assert violation.channel == "web" and violation.subject == "cust-1"
    assert violation.time == web.time
    assert (violation.causationid, violation.correlationid) == ("w1", "journey-1")
    assert violation.type == ConsistencyViolated.type_name()
    assert violation.data.told == [
        ToldValue(channel="phone", value="389.00 EUR", event_id="p1", time=phone.time),
        ToldValue(channel="web", value="429.00 EUR", event_id="w1", time=web.time)]
    assert json.loads(json.dumps(states)) == states  # the runtime keeps state as JSON


def test_rows_convert_to_arrow():
    _, rows, _ = run([told_event(price("389"), "phone", "p1"), told_event(price("429"), "web", "w1")])
    table = to_arrow(rows, SCHEMA)
    assert table.schema == SCHEMA and table.num_rows == 1
    assert table.column("channels").to_pylist() == [["phone", "web"]]
    assert TABLE == "consistency_violations" and PROJECTION.table == TABLE and PROJECTION.schema == SCHEMA


def test_outside_the_window_is_no_violation():
    _, rows, derived = run([told_event(price("389"), "phone", "p1"),
                            told_event(price("429"), "web", "w1", at=timedelta(days=30, milliseconds=1))])
    assert rows == [] and derived == []


def test_the_window_bound_is_inclusive_and_follows_the_rules():
    events = [told_event(price("389"), "phone", "p1"), told_event(price("429"), "web", "w1", at=timedelta(days=30))]
    assert len(run(events)[1]) == 1
    assert run(events, Rules(consistency_window_days=29))[1] == []


def test_old_values_are_pruned_from_state():
    states, _, _ = run([told_event(price("389"), "phone", "p1"),
                        told_event(ev.AnswerGiven(subject="refunds", answer="14 days"), "email", "a1"),
                        told_event(price("429"), "web", "w1", at=timedelta(days=31))])
    assert [e[1] for e in states["cust-1"]["told"]["price"]["room-double"]] == ["w1"]
    assert "answer" not in states["cust-1"]["told"]
    assert states["cust-1"]["oldest"] == micros(T0 + timedelta(days=31))


def test_state_holds_told_values_in_time_order_with_integer_microseconds():
    states, _, _ = run([told_event(price("429"), "web", "w1", at=timedelta(days=2)),
                        told_event(price("389"), "phone", "p1"),  # late: sorted into its place
                        told_event(ev.AnswerGiven(subject="refunds", answer="14 days"), "email", "a1",
                                   at=timedelta(days=1))])
    t0 = micros(T0)
    assert t0 == 1_772_355_600_000_000
    assert states["cust-1"] == {
        "told": {"price": {"room-double": [[t0, "p1", "/channels/phone", "phone", "389.00 EUR", None],
                                           [t0 + 2 * 86_400_000_000, "w1", "/channels/web", "web", "429.00 EUR",
                                            None]]},
                 "answer": {"refunds": [[t0 + 86_400_000_000, "a1", "/channels/email", "email", "14 days", None]]}},
        "oldest": t0}


def test_a_new_value_on_the_same_channel_is_a_change_not_a_violation():
    _, rows, derived = run([told_event(price("389"), "phone", "p1"),
                            told_event(price("399"), "phone", "p2", at=timedelta(days=1))])
    assert rows == [] and derived == []


def test_a_channel_that_changed_to_agree_does_not_conflict():
    _, rows, _ = run([told_event(price("389"), "phone", "p1"),
                      told_event(price("429"), "phone", "p2", at=timedelta(days=1)),
                      told_event(price("429"), "web", "w1", at=timedelta(days=2))])
    assert rows == []


def test_told_names_the_latest_conflicting_value_of_each_other_channel():
    _, rows, derived = run([told_event(price("389"), "phone", "p1"),
                            told_event(price("399"), "phone", "p2", at=timedelta(hours=1)),
                            told_event(price("429"), "store", "s1", at=timedelta(hours=2)),
                            told_event(price("409"), "partner", "x1", at=timedelta(hours=3)),
                            told_event(price("429"), "web", "w1", at=timedelta(hours=4))])
    # store agreed with web, partner disagreed with the others when it quoted: a violation then, and now.
    by_id = {r["violation_id"]: r for r in rows}
    assert set(by_id) == {"violation-s1", "violation-x1", "violation-w1"}
    assert by_id["violation-s1"]["event_ids"] == ["p2", "s1"]
    assert by_id["violation-w1"]["channels"] == ["phone", "partner", "web"]
    assert by_id["violation-w1"]["values"] == ["399.00 EUR", "409.00 EUR", "429.00 EUR"]
    assert [t.event_id for t in derived[-1].data.told] == ["p2", "x1", "w1"]


def test_equal_values_in_different_formatting_are_no_violation():
    _, rows, derived = run([
        told_event(price("389"), "phone", "p1"), told_event(price("389.00"), "web", "w1"),
        told_event(price("389.0", currency="eur"), "store", "s1"),
        told_event(ev.OfferMade(subject="SPRING", terms="10% off in May"), "email", "o1"),
        told_event(ev.OfferMade(subject="SPRING", terms=" 10% off in May\n"), "webchat", "o2"),
        told_event(ev.AnswerGiven(subject="refunds", answer="Within 14 days."), "twitter", "a1"),
        told_event(ev.AnswerGiven(subject="refunds", answer="within  14\ndays. "), "phone", "a2"),
    ])
    assert rows == [] and derived == []


def test_different_answers_on_different_channels_are_a_violation():
    _, rows, derived = run([
        told_event(ev.AnswerGiven(subject="refunds", answer="Within 14 days."), "twitter", "a1"),
        told_event(ev.AnswerGiven(subject="refunds", answer="Within 30 days."), "phone", "a2",
                   at=timedelta(days=2))])
    [row] = rows
    assert (row["kind"], row["subject"], row["channels"]) == ("answer", "refunds", ["twitter", "phone"])
    assert row["values"] == ["within 14 days.", "within 30 days."]
    assert derived[0].data.kind == "answer" and derived[0].channel == "phone"


def test_different_subjects_kinds_and_customers_do_not_conflict():
    _, rows, _ = run([
        told_event(price("389", subject="room-double"), "phone", "p1"),
        told_event(price("429", subject="room-single"), "web", "w1"),
        told_event(ev.OfferMade(subject="room-double", terms="429.00 EUR"), "email", "o1"),
        told_event(price("429", subject="room-double"), "web", "w2", customer="cust-2"),
    ])
    assert rows == []


def test_events_that_tell_nothing_leave_state_alone():
    state = {"told": {"price": {"x": [[micros(T0), "p", "/s", "phone", "1.00 EUR"]]}}, "oldest": micros(T0)}
    before = copy.deepcopy(state)
    result = fold(state, told_event(ev.CallStarted(call_id="C"), "phone", "c1", at=timedelta(days=90)), ORIGIN,
                  RULES)
    assert result == Folded(before)  # not even pruned: 90 days later, but it told nothing


def test_fold_result_depends_only_on_the_state_value_and_the_event():
    # The runtime keeps only the returned state, so the fold may update the one it is given in place (cheaply);
    # what it returns must not depend on anything but the state's value and the event.
    phone = told_event(price("389"), "phone", "p1")
    first = fold({}, phone, ORIGIN, RULES)
    assert first == fold({}, phone, ORIGIN, RULES)
    web = told_event(price("429"), "web", "w1")
    twin = copy.deepcopy(first.state)
    result = fold(first.state, web, ORIGIN, RULES)
    assert len(result.rows) == 1 and result == fold(twin, web, ORIGIN, RULES)


def test_a_redelivery_the_wrapper_missed_is_still_folded_once():
    phone, web = told_event(price("389"), "phone", "p1"), told_event(price("429"), "web", "w1")
    once = fold(fold({}, phone, ORIGIN, RULES).state, web, ORIGIN, RULES)
    assert len(once.rows) == 1
    before = copy.deepcopy(once.state)
    assert fold(once.state, web, ORIGIN, RULES) == Folded(before)
    _, rows, derived = fold_all(PROJECTION, [(phone, ORIGIN), (web, ORIGIN), (web, ORIGIN)])  # the runtime's
    assert len(rows) == len(derived) == 1


def test_a_late_event_is_compared_within_the_window_around_its_time():
    _, rows, _ = run([told_event(price("429"), "web", "w1", at=timedelta(days=40)),
                      told_event(price("389"), "phone", "p1", at=timedelta(days=35)),   # late, 5 days earlier
                      told_event(price("399"), "store", "s1", at=timedelta(days=0))])   # late, 40 days earlier
    assert [(r["violation_id"], r["event_ids"]) for r in rows] == [("violation-w1", ["p1", "w1"])]  # the latest names it


# --- properties -----------------------------------------------------------------------------------------------------
CHANNELS = ("phone", "web", "store", "email")
CUSTOMERS = ("cust-a", "cust-b", "cust-c")


@st.composite
def payloads(draw) -> ev.Payload:
    subject = draw(st.sampled_from(["A", "B"]))
    return draw(st.one_of(
        st.builds(ev.PriceQuoted, subject=st.just(subject),
                  amount=st.sampled_from([Decimal("389"), Decimal("389.00"), Decimal("429")])),
        st.builds(ev.OfferMade, subject=st.just(subject), terms=st.sampled_from(["10% off", " 10% off ", "20% off"])),
        st.builds(ev.AnswerGiven, subject=st.just(subject), answer=st.sampled_from(["Yes", "yes ", "No"])),
        st.builds(ev.CallStarted, call_id=st.just("C")),
    ))


@st.composite
def customer_events(draw, customer: str) -> list[Event]:
    steps = draw(st.lists(st.tuples(payloads(), st.sampled_from(CHANNELS), st.integers(0, 20 * 24)), max_size=12))
    events, at = [], timedelta(0)
    for i, (payload, channel, gap_hours) in enumerate(steps):
        at += timedelta(hours=gap_hours)
        events.append(told_event(payload, channel, f"{customer}-{i}", at=at, customer=customer))
    return events


def with_origins(events: list[Event]) -> list[tuple[Event, Origin]]:
    return [(e, Origin(f"omnitrail.{e.channel.value}", 0, i)) for i, e in enumerate(events)]


def outcome(result) -> tuple[dict, dict, set]:
    states, rows, derived = result
    by_id = {r["violation_id"]: {k: v for k, v in r.items() if k not in ("topic", "partition", "offset")}
             for r in rows}
    return states, by_id, {d.id for d in derived}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_redelivering_any_subset_changes_nothing(data):
    events = [e for c in CUSTOMERS for e in data.draw(customer_events(c))]
    events.sort(key=lambda e: e.time)
    redelivered = data.draw(st.lists(st.integers(0, max(len(events) - 1, 0)), max_size=8)) if events else []
    stream = list(events)
    for i in redelivered:
        after = stream.index(events[i])
        stream.insert(data.draw(st.integers(after + 1, len(stream))), events[i])
    once, twice = outcome(fold_all(PROJECTION, with_origins(events))), outcome(fold_all(PROJECTION,
                                                                                         with_origins(stream)))
    assert once == twice
    assert len(fold_all(PROJECTION, with_origins(stream))[1]) == len(once[1])  # each violation emitted once


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_interleaving_of_customers_gives_the_same_result(data):
    per_customer = {c: data.draw(customer_events(c)) for c in CUSTOMERS}
    sequential = [e for c in CUSTOMERS for e in per_customer[c]]
    order = data.draw(st.permutations([c for c in CUSTOMERS for _ in per_customer[c]]))
    queues = {c: list(events) for c, events in per_customer.items()}
    interleaved = [queues[c].pop(0) for c in order]
    a, b = outcome(fold_all(PROJECTION, with_origins(sequential))), outcome(fold_all(PROJECTION,
                                                                                     with_origins(interleaved)))
    assert a == b
    assert json.loads(json.dumps(a[0])) == a[0]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_violations_only_pair_different_channels_and_values(data):
    events = data.draw(customer_events("cust-a"))
    _, rows, derived = fold_all(PROJECTION, with_origins(events))
    assert [r["violation_id"] for r in rows] == [d.id for d in derived]
    for row in rows:
        pairs = list(zip(row["channels"], row["values"]))
        this = pairs[row["event_ids"].index(row["event_id"])]
        conflicting = [p for i, p in enumerate(pairs) if row["event_ids"][i] != row["event_id"]]
        assert conflicting and all(ch != this[0] and value != this[1] for ch, value in conflicting)
        assert len({ch for ch, _ in conflicting}) == len(conflicting)  # one value per other channel


def test_a_violation_is_the_same_whichever_of_its_values_arrives_last():
    # A worker re-folding after a crash may read the phone and web topics in another order than the first time.
    phone, web = told_event(price("389"), "phone", "p1"), told_event(price("429"), "web", "w1", at=timedelta(days=1))
    (_, rows_a, derived_a), (_, rows_b, derived_b) = run([phone, web]), run([web, phone])
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("event_id", "topic", "partition", "offset")}  # noqa: E731
                          for r in rows]
    assert strip(rows_a) == strip(rows_b) and rows_a[0]["violation_id"] == "violation-w1"
    assert [d.model_dump() for d in derived_a] == [d.model_dump() for d in derived_b]
    assert derived_a[0].time == web.time and derived_a[0].channel.value == "web"
