"""The pure returned-mail flags fold: threshold and window, alerts, clears, idempotency and per-customer isolation."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import orjson
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.arrow import to_arrow
from projections.flags.fold import PROJECTION, SCHEMA, SOURCE, address_hash, fold, from_micros, micros
from projections.origin import Origin
from projections.rules import Rules
from projections.stateful import Folded
from tests.support.folds import fold_all
from schemas import events as ev
from schemas.derived import AddressFlagCleared, AddressFlagged, MailToFlaggedAddress
from schemas.envelope import Event

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
HOME = ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 AB", city="Utrecht")
NEW = ev.PostalAddress(street="Kerkweg", house_number="12b", postcode="3511 XY", city="Utrecht")
OTHER = ev.PostalAddress(street="Stationsplein", house_number="3", postcode="9999 ZZ", city="Groningen")
CUSTOMER = "cust-7"


class Stream:
    """Builds one customer's events with ids and offsets in order."""

    def __init__(self, customer: str = CUSTOMER):
        self.customer, self.n, self.events = customer, 0, []

    def add(self, payload: ev.Payload, at: datetime, channel: str = "mail") -> Event:
        self.n += 1
        event = Event.of(payload, customer=self.customer, channel=channel, source=f"/test/{channel}",
                         id=f"{self.customer}-e{self.n}", time=at, correlationid=f"{self.customer}-j")
        self.events.append((event, Origin(f"omnitrail.{channel}", 0, self.n)))
        return event

    def returned(self, at: datetime, address: ev.PostalAddress = HOME) -> Event:
        return self.add(ev.MailReturned(letter_id=f"L{self.n}", address=address, reason="moved"), at)

    def sent(self, at: datetime, address: ev.PostalAddress = HOME) -> Event:
        return self.add(ev.MailSent(letter_id=f"L{self.n}", address=address), at)

    def changed(self, at: datetime, address: ev.PostalAddress, previous: ev.PostalAddress | None = None) -> Event:
        return self.add(ev.AddressChanged(address=address, previous=previous), at, "web")

    def call(self, at: datetime) -> Event:
        return self.add(ev.CallStarted(call_id=f"C{self.n}"), at, "phone")

    def fold(self, rules: Rules = Rules()):
        return fold_all(PROJECTION, self.events, rules)


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def kinds(derived: list[Event]) -> list[str]:
    return [e.name for e in derived]


# --- address hash -----------------------------------------------------------------------------------------------
def test_address_hash_is_stable_and_normalised():
    h = address_hash(HOME)
    assert len(h) == 16 and int(h, 16) >= 0
    assert h == address_hash(HOME)
    shouty = ev.PostalAddress(street="DORPSSTRAAT ", house_number=" 1", postcode="1234  ab", city="utrecht")
    assert address_hash(shouty) == h
    assert address_hash(NEW) != h
    assert h == "cd0d0baec4496f5f"  # stable across processes and releases: producers key suppression on it


# --- threshold and window ---------------------------------------------------------------------------------------
def test_one_return_is_counted_but_not_flagged():
    s = Stream()
    s.returned(T0)
    states, rows, derived = s.fold()
    assert derived == []
    [row] = rows
    assert row["status"] == "returned" and row["returns"] == 1 and row["actions"] == []
    assert row["first_return"] == row["last_return"] == T0 and row["version"] == 1
    assert states[CUSTOMER]["addresses"][address_hash(HOME)]["flagged"] is False


def test_two_returns_181_days_apart_do_not_flag():
    s = Stream()
    s.returned(T0)
    s.returned(days(181))
    states, rows, derived = s.fold()
    assert derived == []
    assert rows[-1]["status"] == "returned" and rows[-1]["returns"] == 1  # the old return left the window
    assert rows[-1]["first_return"] == days(181)


def test_two_returns_exactly_the_window_apart_flag():
    s = Stream()
    s.returned(T0)
    s.returned(days(180))
    assert kinds(s.fold()[2]) == ["AddressFlagged"]


def test_reaching_the_threshold_flags_once_and_a_third_return_does_not_reflag():
    s = Stream()
    first = s.returned(T0)
    second = s.returned(days(10))
    third = s.returned(days(20))
    states, rows, derived = s.fold()
    [flagged] = derived
    assert isinstance(flagged.data, AddressFlagged)
    assert flagged.id == f"flag-{second.id}"
    assert flagged.data.address == HOME and flagged.data.address_hash == address_hash(HOME)
    assert flagged.data.returns == 2
    assert (flagged.data.first_return, flagged.data.last_return) == (T0, days(10))
    assert flagged.data.return_event_ids == [first.id, second.id]
    assert flagged.channel == "mail" and flagged.source == SOURCE
    assert flagged.time == second.time and flagged.causationid == second.id
    assert flagged.correlationid == second.correlationid == f"{CUSTOMER}-j"
    assert flagged.subject == CUSTOMER
    assert [(r["status"], r["returns"], r["version"]) for r in rows] == [
        ("returned", 1, 1), ("flagged", 2, 2), ("flagged", 3, 3)]
    assert rows[1]["actions"] == rows[2]["actions"] == ["flagged"]
    assert rows[2]["event_id"] == third.id and rows[2]["last_return"] == days(20)
    assert (rows[2]["topic"], rows[2]["partition"], rows[2]["offset"]) == ("omnitrail.mail", 0, 3)


def test_returns_to_different_addresses_count_separately():
    s = Stream()
    s.returned(T0, HOME)
    s.returned(days(1), NEW)
    _, rows, derived = s.fold()
    assert derived == []
    assert {r["address_hash"] for r in rows} == {address_hash(HOME), address_hash(NEW)}
    assert all(r["version"] == 1 for r in rows)


def test_the_same_address_written_differently_counts_together():
    s = Stream()
    s.returned(T0, HOME)
    s.returned(days(1), ev.PostalAddress(street="dorpsstraat", house_number="1", postcode="1234 AB",
                                        city="UTRECHT"))
    assert kinds(s.fold()[2]) == ["AddressFlagged"]


def test_threshold_and_window_are_configurable():
    s = Stream()
    s.returned(T0)
    assert kinds(s.fold(Rules(flag_threshold=1))[2]) == ["AddressFlagged"]
    s.returned(days(10))
    assert s.fold(Rules(flag_threshold=3))[2] == []
    s.returned(days(20))
    assert kinds(s.fold(Rules(flag_threshold=3))[2]) == ["AddressFlagged"]
    assert s.fold(Rules(flag_threshold=3, flag_window_days=15))[2] == []
    assert kinds(s.fold(Rules(flag_threshold=2, flag_window_days=5))[2]) == []


def test_a_late_old_return_does_not_widen_the_window():
    s = Stream()
    s.returned(days(200))
    s.returned(T0)  # arrives late: 200 days before the latest return, outside the window
    _, rows, derived = s.fold()
    assert derived == []
    assert rows[-1]["returns"] == 1 and rows[-1]["first_return"] == days(200)


# --- mail to a flagged address ----------------------------------------------------------------------------------
def test_mail_to_a_flagged_address_alerts():
    s = Stream()
    s.sent(T0)  # not flagged yet: nothing
    s.returned(days(1))
    s.returned(days(2))
    letter = s.sent(days(3))
    s.sent(days(4), NEW)  # another address: nothing
    states, rows, derived = s.fold()
    assert kinds(derived) == ["AddressFlagged", "MailToFlaggedAddress"]
    alert = derived[1]
    assert isinstance(alert.data, MailToFlaggedAddress)
    assert alert.id == f"mail-to-flagged-{letter.id}"
    assert alert.data.letter_id == letter.data.letter_id and alert.data.address_hash == address_hash(HOME)
    assert alert.channel == "mail" and alert.causationid == letter.id and alert.time == letter.time
    assert rows[-1]["status"] == "flagged" and rows[-1]["actions"] == ["flagged", "mail_sent_alert"]
    assert rows[-1]["event_id"] == letter.id and rows[-1]["updated_at"] == letter.time
    assert rows[-1]["version"] == 3 and rows[-1]["returns"] == 2


def test_mail_to_an_unflagged_address_changes_nothing():
    state = {"addresses": {}}
    event = Stream().sent(T0)
    assert fold(state, event, Origin("t", 0, 0), Rules()) == Folded(state)


# --- clears -----------------------------------------------------------------------------------------------------
def test_a_new_address_clears_every_flag_of_the_customer():
    s = Stream()
    for i, address in enumerate([HOME, HOME, OTHER, OTHER]):
        s.returned(days(i), address)
    change = s.changed(days(10), NEW, previous=HOME)
    states, rows, derived = s.fold()
    cleared = [e for e in derived if e.name == "AddressFlagCleared"]
    assert {e.data.address_hash for e in cleared} == {address_hash(HOME), address_hash(OTHER)}
    assert all(isinstance(e.data, AddressFlagCleared) and e.data.reason == "address changed" for e in cleared)
    assert {e.id for e in cleared} == {f"flag-cleared-{change.id}-{address_hash(a)}" for a in (HOME, OTHER)}
    assert all(e.causationid == change.id and e.channel == "mail" and e.time == change.time for e in cleared)
    last = rows[-2:]
    assert all(r["status"] == "cleared" and r["actions"] == ["flagged", "cleared: address changed"] for r in last)
    assert all(r["returns"] == 2 for r in last)  # the returns are kept: the customer left that address
    assert not any(a["flagged"] for a in states[CUSTOMER]["addresses"].values())


def test_after_a_change_new_returns_to_the_old_address_flag_it_again():
    s = Stream()
    s.returned(T0)
    s.returned(days(1))
    s.changed(days(2), NEW)
    s.sent(days(3))  # no longer flagged: no alert
    s.returned(days(4))  # one return after the change: below the threshold
    _, _, derived = s.fold()
    assert kinds(derived) == ["AddressFlagged", "AddressFlagCleared"]
    again = s.returned(days(5))
    _, rows, derived = s.fold()
    assert kinds(derived) == ["AddressFlagged", "AddressFlagCleared", "AddressFlagged"]
    assert derived[-1].id == f"flag-{again.id}" and derived[-1].data.returns == 4
    assert rows[-1]["actions"] == ["flagged", "cleared: address changed", "flagged"]


def test_returns_from_before_an_address_change_that_arrive_after_it_do_not_flag():
    # Channels have their own topics: the post room's returns may be read after the web's address change.
    s = Stream()
    s.changed(days(10), NEW)
    s.returned(T0)
    s.returned(days(1))
    s.sent(days(2))
    _, rows, derived = s.fold()
    assert derived == [] and all(r["status"] == "returned" for r in rows)


def test_confirming_a_flagged_address_clears_it_and_resets_its_returns():
    s = Stream()
    s.returned(T0)
    s.returned(days(1))
    confirm = s.changed(days(2), ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 ab",
                                                  city="Utrecht"), previous=HOME)
    s.returned(days(3))  # one return after the confirmation does not flag again
    states, rows, derived = s.fold()
    assert kinds(derived) == ["AddressFlagged", "AddressFlagCleared"]
    cleared = derived[1]
    assert cleared.data.reason == "address confirmed" and cleared.data.address_hash == address_hash(HOME)
    assert cleared.id == f"flag-cleared-{confirm.id}-{address_hash(HOME)}"
    assert rows[2]["status"] == "cleared" and rows[2]["returns"] == 0
    assert rows[2]["first_return"] is None and rows[2]["last_return"] is None
    assert rows[2]["actions"] == ["flagged", "cleared: address confirmed"]
    assert rows[3]["status"] == "returned" and rows[3]["returns"] == 1 and rows[3]["version"] == 4


def test_confirming_one_flagged_address_clears_the_others_as_changed():
    s = Stream()
    for i, address in enumerate([HOME, HOME, OTHER, OTHER]):
        s.returned(days(i), address)
    s.changed(days(10), HOME)
    _, _, derived = s.fold()
    reasons = {e.data.address_hash: e.data.reason for e in derived if e.name == "AddressFlagCleared"}
    assert reasons == {address_hash(HOME): "address confirmed", address_hash(OTHER): "address changed"}


def test_an_address_change_without_flags_changes_nothing():
    s = Stream()
    s.returned(T0)
    s.changed(days(1), NEW)
    _, rows, derived = s.fold()
    assert derived == [] and len(rows) == 1


def test_other_events_leave_the_state_as_it_is():
    state = {"addresses": {"x": {"address": "a", "returns": [], "flagged": True, "actions": [], "version": 1}}}
    event = Stream().call(T0)
    assert fold(state, event, Origin("t", 0, 0), Rules()) == Folded(state)


def test_fold_result_depends_only_on_the_state_value_and_the_event():
    # The runtime keeps only the returned state, so the fold may update the one it is given in place (cheaply);
    # what it returns must not depend on anything but the state's value and the event.
    s = Stream()
    s.returned(T0)
    s.returned(days(1))
    states, _, _ = s.fold()
    state = states[CUSTOMER]
    for event in (s.returned(days(2)), s.sent(days(3)), s.changed(days(4), NEW)):
        twin = copy.deepcopy(state)
        result = fold(state, event, Origin("t", 0, 9), Rules())
        assert fold(twin, event, Origin("t", 0, 9), Rules()) == result
        state = result.state
    assert state == s.fold()[0][CUSTOMER]


def test_state_holds_times_as_integer_microseconds_sorted():
    s = Stream()
    late = s.returned(days(1))
    early = s.returned(T0)  # arrives late: sorted into its place
    change = s.changed(days(2), NEW)
    states, _, _ = s.fold()
    state = {k: v for k, v in states[CUSTOMER].items() if k != "_seen"}
    assert state == {
        "addresses": {address_hash(HOME): {
            "address": HOME.one_line(), "flagged": False, "actions": ["flagged", "cleared: address changed"],
            "version": 3, "returns": [[micros(T0), early.id, "/test/mail"], [micros(days(1)), late.id, "/test/mail"]]}},
        "changed_at": micros(change.time)}
    assert micros(T0) == 1_767_603_600_000_000 and from_micros(micros(T0)) == T0
    odd = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    assert micros(odd) == -1 and from_micros(-1) == odd  # exact, also before the epoch
    assert orjson.loads(orjson.dumps(states)) == states


def test_rows_fit_the_schema_and_state_is_json():
    s = Stream()
    s.returned(T0)
    s.returned(days(1))
    s.sent(days(2))
    s.changed(days(3), HOME)
    states, rows, _ = s.fold()
    table = to_arrow(rows, SCHEMA)
    assert table.num_rows == len(rows) and table.schema == SCHEMA
    assert all(set(r) == set(SCHEMA.names) for r in rows)
    assert table.column("first_return").type == pa.timestamp("ms", tz="UTC")
    assert json.loads(json.dumps(states)) == states


def test_a_long_cause_id_still_gives_a_valid_deterministic_id():
    s = Stream()
    s.returned(T0)
    long_id = "x" * 200
    event = Event.of(ev.MailReturned(letter_id="L", address=HOME, reason="moved"), customer=CUSTOMER,
                     channel="mail", source="/test/mail", id=long_id, time=days(1))
    events = [*s.events, (event, Origin("t", 0, 9))]
    _, _, derived = fold_all(PROJECTION, events)
    _, _, again = fold_all(PROJECTION, events)
    assert len(derived[0].id) <= 200 and derived[0].id == again[0].id


# --- properties -------------------------------------------------------------------------------------------------
ADDRESSES = [HOME, NEW, OTHER]
CUSTOMERS = ["c-a", "c-b", "c-c"]

step = st.tuples(st.sampled_from(["returned", "returned", "sent", "changed", "call"]),
                 st.integers(0, len(ADDRESSES) - 1), st.integers(0, 120))


def build(customer: str, steps: list[tuple[str, int, int]]) -> list[tuple[Event, Origin]]:
    s, at = Stream(customer), T0
    for kind, address, gap in steps:
        at += timedelta(days=gap)
        if kind == "call":
            s.call(at)
        else:
            getattr(s, kind)(at, ADDRESSES[address])
    return s.events


customers = st.fixed_dictionaries({c: st.lists(step, max_size=12) for c in CUSTOMERS}).map(
    lambda d: {c: build(c, steps) for c, steps in d.items()})


def final_rows(rows: list[dict]) -> dict[tuple[str, str], dict]:
    """What the table shows: the row of highest version per (customer, address)."""
    latest: dict[tuple[str, str], dict] = {}
    for row in rows:
        key = (row["customer_id"], row["address_hash"])
        if key not in latest or row["version"] > latest[key]["version"]:
            latest[key] = row
    return latest


def per_customer(rows: list[dict], derived: list[Event]) -> dict[str, tuple[list[dict], list[str]]]:
    return {c: ([r for r in rows if r["customer_id"] == c], [e.id for e in derived if e.subject == c])
            for c in CUSTOMERS}


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(customers, st.data())
def test_redelivery_changes_nothing(streams, data):
    events = [e for c in CUSTOMERS for e in streams[c]]
    rules = Rules(flag_threshold=data.draw(st.integers(1, 3)))
    states, rows, derived = fold_all(PROJECTION, events, rules)
    redelivered = list(events)
    if events:
        for i in data.draw(st.lists(st.integers(0, len(events) - 1), max_size=8)):
            original = next(n for n, item in enumerate(redelivered) if item is events[i])
            position = data.draw(st.integers(original + 1, len(redelivered)))  # anywhere after the original
            redelivered.insert(position, events[i])
    states2, rows2, derived2 = fold_all(PROJECTION, redelivered, rules)
    strip = lambda ss: {c: {k: v for k, v in s.items() if k != "_seen"} for c, s in ss.items()}  # noqa: E731
    assert strip(states2) == strip(states)
    assert final_rows(rows2) == final_rows(rows)
    assert {e.id for e in derived2} == {e.id for e in derived}
    assert json.loads(json.dumps(states2)) == states2


@PROPERTY
@given(customers, st.randoms(use_true_random=False))
def test_interleaving_customers_changes_nothing_per_customer(streams, rnd):
    ordered = [e for c in CUSTOMERS for e in streams[c]]
    queues = {c: list(streams[c]) for c in CUSTOMERS}
    mixed = []
    while any(queues.values()):
        c = rnd.choice([c for c in CUSTOMERS if queues[c]])
        mixed.append(queues[c].pop(0))
    states, rows, derived = fold_all(PROJECTION, ordered)
    states2, rows2, derived2 = fold_all(PROJECTION, mixed)
    assert states2 == states
    assert per_customer(rows2, derived2) == per_customer(rows, derived)
    for c in CUSTOMERS:  # a customer's state depends only on that customer's events
        alone, _, _ = fold_all(PROJECTION, streams[c])
        assert alone.get(c) == states.get(c)


@PROPERTY
@given(customers)
def test_versions_grow_and_the_final_row_matches_the_state(streams):
    events = [e for c in CUSTOMERS for e in streams[c]]
    states, rows, derived = fold_all(PROJECTION, events)
    seen: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["customer_id"], row["address_hash"])
        assert row["version"] == seen.get(key, 0) + 1
        seen[key] = row["version"]
    for (customer, h), row in final_rows(rows).items():
        rec = states[customer]["addresses"][h]
        assert row["version"] == rec["version"]
        assert (row["status"] == "flagged") == rec["flagged"]
        assert row["returns"] == len(rec["returns"])
    flags = [e for e in derived if e.name == "AddressFlagged"]
    assert len({e.id for e in derived}) == len(derived)  # derived ids are unique
    assert all(e.source == SOURCE and e.channel == "mail" for e in derived)
    assert len(flags) == sum(r["actions"].count("flagged") for r in final_rows(rows).values())
