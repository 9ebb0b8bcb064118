"""The pure journeys fold: journey assignment, channel switches, contacts, transfers, FCR, first response times;
idempotent under redelivery and independent of how different customers' events interleave."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.arrow import to_arrow
from projections.journeys.fold import PROJECTION, SCHEMA, fold, micros
from projections.origin import Origin
from projections.rules import Rules
from tests.support.folds import fold_all
from schemas import derived as dv
from schemas import events as ev
from schemas.envelope import Event
from services import demo

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
M, H, D = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


def event(payload: ev.Payload, at: timedelta, channel: str, *, customer: str = "c-1", id: str,
          correlationid: str | None = None) -> Event:
    return Event.of(payload, customer=customer, channel=channel, source=f"/test/{channel}", id=id, time=T0 + at,
                    correlationid=correlationid)


def run(events: list[Event], rules: Rules = Rules()) -> tuple[dict, list[dict]]:
    states, rows, derived = fold_all(PROJECTION, [(e, Origin("omnitrail.x", 0, i)) for i, e in enumerate(events)],
                                     rules)
    assert derived == []
    return states, rows


def final(rows: list[dict]) -> dict[str, dict]:
    """The newest snapshot per journey: what the store keeps (ReplacingMergeTree(version), FINAL)."""
    out: dict[str, dict] = {}
    for row in rows:
        if row["journey_id"] not in out or row["version"] > out[row["journey_id"]]["version"]:
            out[row["journey_id"]] = row
    return out


def test_hotel_story_one_journey_over_four_channels():
    events = demo.hotel_booking()
    states, rows = run(events)
    assert len(rows) == len(events)
    assert [r["version"] for r in rows] == list(range(1, len(events) + 1))
    assert {r["journey_id"] for r in rows} == {"journey-hotel-2002"}
    j = rows[-1]
    assert j["channels"] == ["phone", "web", "email", "partner"]
    assert j["channel_switches"] == 3
    assert j["first_channel"] == "phone"
    assert j["contacts"] == 2  # the inbound call C-77 and email E-1
    assert j["repeat_contacts"] == 1
    assert j["transfers"] == 0
    assert j["first_response_channels"] == ["email"] and j["first_response_seconds"] == [86400.0]
    assert j["resolved"] is False and j["resolved_at"] is None and j["resolution_seconds"] is None
    assert j["first_contact_resolution"] is False
    assert j["started_at"] == events[0].time and j["last_at"] == events[-1].time
    assert (j["event_id"], j["source"], j["topic"], j["offset"]) == (events[-1].id, events[-1].source,
                                                                    "omnitrail.x", len(events) - 1)
    assert j["customer_id"] == demo.HOTEL_CUSTOMER
    orjson.dumps(states)  # JSON-serialisable state


def test_call_transferred_three_times_is_not_first_contact_resolution():
    events = demo.transferred_call()
    _, rows = run(events)
    j = rows[-1]
    assert j["transfers"] == 3
    assert j["contacts"] == 1 and j["repeat_contacts"] == 0
    assert j["resolved"] is True
    assert j["resolved_at"] == events[5].time  # CallEnded(resolved=True) before CaseResolved
    assert j["resolution_seconds"] == 22 * 60
    assert j["first_contact_resolution"] is False
    assert j["channels"] == ["phone"] and j["channel_switches"] == 0  # the survey measures, it is not a step
    assert j["last_at"] == events[-1].time and j["version"] == len(events)


def test_one_inbound_call_resolved_is_first_contact_resolution():
    events = [event(ev.CallStarted(call_id="C1"), 0 * M, "phone", id="e1"),
              event(ev.CallEnded(call_id="C1", duration_seconds=240, resolved=True), 4 * M, "phone", id="e2")]
    _, rows = run(events)
    first, last = rows
    assert first["resolved"] is False and first["first_contact_resolution"] is False and first["version"] == 1
    assert last["resolved"] is True and last["first_contact_resolution"] is True
    assert last["resolution_seconds"] == 240 and last["contacts"] == 1
    assert last["journey_id"] == "inferred-e1"


def test_coming_back_after_resolution_is_a_repeat_contact_not_fcr():
    events = [event(ev.CallStarted(call_id="C1"), 0 * M, "phone", id="e1"),
              event(ev.CallEnded(call_id="C1", duration_seconds=240, resolved=True), 4 * M, "phone", id="e2"),
              event(ev.CallStarted(call_id="C2"), 1 * D, "phone", id="e3")]
    j = run(events)[1][-1]
    assert (j["contacts"], j["repeat_contacts"], j["resolved"], j["first_contact_resolution"]) == (2, 1, True, False)


def test_outbound_calls_are_not_contacts_and_a_conversation_is_one_contact():
    events = [event(ev.CallStarted(call_id="C1", direction="outbound"), 0 * M, "phone", id="e1"),
              event(ev.MessageReceived(conversation_id="W1", text="a"), 1 * M, "whatsapp", id="e2"),
              event(ev.MessageReceived(conversation_id="W1", text="b"), 2 * M, "whatsapp", id="e3"),
              event(ev.MessageReceived(conversation_id="W2", text="c"), 3 * M, "whatsapp", id="e4"),
              event(ev.StoreVisited(store_id="S1"), 4 * M, "store", id="e5"),
              event(ev.StoreVisited(store_id="S1"), 5 * M, "store", id="e6")]
    j = run(events)[1][-1]
    assert j["contacts"] == 4  # W1, W2 and two store visits
    assert j["channels"] == ["phone", "whatsapp", "store"] and j["channel_switches"] == 2


def test_uncorrelated_events_split_into_journeys_by_the_gap():
    gap = Rules().journey_gap_hours * H
    events = [event(ev.CallStarted(call_id="C1"), 0 * H, "phone", id="a1"),
              event(ev.EmailReceived(message_id="E1"), gap, "email", id="a2"),                # exactly the gap: joins
              event(ev.EmailReceived(message_id="E2"), 2 * gap + M, "email", id="b1"),        # gap + 1 min: new
              event(ev.WebPageViewed(session_id="s", url="https://x"), 2 * gap + H, "web", id="b2")]
    _, rows = run(events)
    assert [r["journey_id"] for r in rows] == ["inferred-a1", "inferred-a1", "inferred-b1", "inferred-b1"]
    journeys = final(rows)
    assert journeys["inferred-a1"]["channels"] == ["phone", "email"] and journeys["inferred-a1"]["version"] == 2
    assert journeys["inferred-b1"]["channels"] == ["email", "web"]
    assert journeys["inferred-b1"]["started_at"] == T0 + 2 * gap + M
    # A shorter gap splits every step.
    _, rows = run(events, Rules(journey_gap_hours=1))
    assert [r["journey_id"] for r in rows] == ["inferred-a1", "inferred-a2", "inferred-b1", "inferred-b1"]


def test_uncorrelated_event_joins_the_most_recently_active_journey_even_a_correlated_one():
    events = [event(ev.CallStarted(call_id="C1"), 0 * H, "phone", id="e1", correlationid="case-1"),
              event(ev.CallStarted(call_id="C2"), 1 * H, "phone", id="e2", correlationid="case-2"),
              event(ev.EmailReceived(message_id="E1"), 2 * H, "email", id="e3"),
              event(ev.EmailSent(message_id="E2"), 3 * H, "email", id="e4", correlationid="case-1"),
              event(ev.EmailReceived(message_id="E3"), 4 * H, "email", id="e5")]
    _, rows = run(events)
    assert [r["journey_id"] for r in rows] == ["case-1", "case-2", "case-2", "case-1", "case-1"]


def test_first_response_seconds_for_email_and_a_whatsapp_conversation():
    c = "case-9"
    events = [
        event(ev.EmailSent(message_id="X0"), 0 * M, "email", id="e0", correlationid=c),  # before any question
        event(ev.EmailReceived(message_id="E1"), 10 * M, "email", id="e1", correlationid=c),
        event(ev.EmailReceived(message_id="E2"), 20 * M, "email", id="e2", correlationid=c),
        event(ev.MessageReceived(conversation_id="W1", text="hi"), 30 * M, "whatsapp", id="e3", correlationid=c),
        event(ev.MessageSent(conversation_id="OTHER", text="?"), 31 * M, "whatsapp", id="e4", correlationid=c),
        event(ev.MessageReceived(conversation_id="W1", text="hello?"), 33 * M, "whatsapp", id="e5",
              correlationid=c),
        event(ev.MessageSent(conversation_id="W1", text="hi!"), 35 * M, "whatsapp", id="e6", correlationid=c),
        event(ev.EmailSent(message_id="E3", in_reply_to="E2"), 2 * H + 10 * M, "email", id="e7", correlationid=c),
        event(ev.EmailSent(message_id="E4"), 3 * H, "email", id="e8", correlationid=c),
        event(ev.MessageSent(conversation_id="W1", text="more"), 4 * H, "whatsapp", id="e9", correlationid=c),
    ]
    _, rows = run(events)
    by_version = {r["version"]: dict(zip(r["first_response_channels"], r["first_response_seconds"])) for r in rows}
    assert by_version[6] == {}
    assert by_version[7] == {"whatsapp": 300.0}           # 30 min -> 35 min, the first message counts
    assert by_version[8] == {"email": 7200.0, "whatsapp": 300.0}  # first email at 10 min, first reply at 2h10
    assert by_version[10] == by_version[8]
    assert rows[-1]["contacts"] == 3  # E1, E2, W1


def test_late_event_takes_its_place_in_time_order():
    c = "case-late"
    events = [event(ev.CallStarted(call_id="C1"), 0 * H, "phone", id="e1", correlationid=c),
              event(ev.EmailReceived(message_id="E1"), 2 * H, "email", id="e2", correlationid=c),
              event(ev.WebPageViewed(session_id="s", url="https://x"), 1 * H, "web", id="e3", correlationid=c),
              event(ev.MailSent(letter_id="L", address=demo.OLD_ADDRESS), -1 * H, "mail", id="e4",
                    correlationid=c)]
    j = run(events)[1][-1]
    assert j["channels"] == ["mail", "phone", "web", "email"] and j["channel_switches"] == 3
    assert j["first_channel"] == "mail" and j["started_at"] == T0 - H and j["last_at"] == T0 + 2 * H


def test_fold_result_depends_only_on_the_state_value_and_redelivery_is_ignored():
    # The runtime keeps only the returned state, so the fold may update the one it is given in place (cheaply);
    # what it returns must not depend on anything but the state's value and the event.
    e1 = event(ev.CallStarted(call_id="C1"), 0 * M, "phone", id="e1")
    state = run([e1])[0]["c-1"]
    twin = copy.deepcopy(state)
    e2 = event(ev.CallEnded(call_id="C1", duration_seconds=1), M, "phone", id="e2")
    result = fold(state, e2, Origin("t", 0, 1), Rules())
    assert result == fold(twin, e2, Origin("t", 0, 1), Rules())
    assert result.rows[0]["version"] == 2
    assert result.state == run([e1, e2])[0]["c-1"]
    states, rows = run([e1, e1, e1])
    assert len(rows) == 1


def test_state_holds_integer_microseconds_and_running_totals():
    c = "case-s"
    events = [event(ev.EmailReceived(message_id="E1"), 2 * H, "email", id="e1", correlationid=c),
              event(ev.CallStarted(call_id="C1"), 0 * H, "phone", id="e2", correlationid=c),  # late
              event(ev.EmailSent(message_id="E2"), 3 * H, "email", id="e3", correlationid=c),
              event(ev.FeedbackGiven(survey_id="f", metric="csat", score=4), 4 * H, "survey", id="e4",
                    correlationid=c),
              event(ev.WebPageViewed(session_id="s", url="https://x"), 5 * H, "web", id="e5")]  # joins it
    states, rows = run(events)
    t = micros(T0)
    assert t == 1_772_442_000_000_000
    hour = 3_600_000_000
    assert states["c-1"] == {"clock": 5, "latest": c, "journeys": {c: {
        "journey_id": c, "customer_id": "c-1", "started_at": t, "last_at": t + 5 * hour, "touched": 5, "version": 5,
        "steps": [[t, "phone"], [t + 2 * hour, "email"], [t + 3 * hour, "email"], [t + 5 * hour, "web"]],
        "switches": 2, "first_steps": {"email": [t + 2 * hour, 1], "phone": [t, 2], "web": [t + 5 * hour, 5]},
        "first_channel": "email", "contacts": {"email:E1": True, "call:C1": True}, "transfers": 0,
        "resolved_at": None, "first_response": {"email": 3600.0}, "asked": {"email": t + 2 * hour},
        "awaiting": {}}}}
    assert rows[-1]["channels"] == ["phone", "email", "web"] and rows[-1]["first_channel"] == "phone"
    assert rows[-1]["first_channel_at"] == T0  # the late call was the first step
    assert rows[-1]["first_response_asked_at"] == [T0 + 2 * H]  # when E1, the email answered, came in
    assert orjson.loads(orjson.dumps(states)) == states


def test_a_state_from_before_response_times_were_dated_still_folds():
    """States folded before ``asked`` was kept: the row dates a response by the channel's first step, and the next
    answer is dated exactly."""
    events = demo.hotel_booking()  # ... 6: EmailReceived, 7: EmailSent (the reply), 8: BookingChanged
    for before, then in ((8, 8), (7, 7)):
        state = copy.deepcopy(run(events[:before])[0][demo.HOTEL_CUSTOMER])
        del state["journeys"]["journey-hotel-2002"]["asked"]
        [row] = fold(state, events[then], Origin("omnitrail.x", 0, then), Rules()).rows
        assert row["first_response_channels"] == ["email"] and row["first_response_asked_at"] == [events[6].time]


def test_derived_events_are_not_part_of_journeys():
    flagged = Event.of(dv.MailToFlaggedAddress(letter_id="L", address_hash="h"), customer="c-1", channel="mail",
                       source="/omnitrail/projections/flags", id="d1", time=T0)
    states, rows = run([flagged, event(ev.CallStarted(call_id="C1"), M, "phone", id="e1")])
    assert [(r["journey_id"], r["version"], r["channels"]) for r in rows] == [("inferred-e1", 1, ["phone"])]
    assert list(states["c-1"]["journeys"]) == ["inferred-e1"]


def test_rows_convert_to_arrow():
    _, rows = run(demo.all_events())
    table = to_arrow(rows, SCHEMA)
    assert table.schema == SCHEMA and table.num_rows == len(demo.all_events())
    assert set(rows[0]) == set(SCHEMA.names)


# --- properties -------------------------------------------------------------------------------------------------
CUSTOMERS = ("p-1", "p-2", "p-3")


@st.composite
def payloads(draw, n: int):
    k = draw(st.integers(0, 9))
    ref = draw(st.sampled_from("ABC"))
    return [
        (ev.CallStarted(call_id=ref, direction=draw(st.sampled_from(["inbound", "outbound"]))), "phone"),
        (ev.CallTransferredV2(call_id=ref, to_target="q", target_kind="queue"), "phone"),  # arrives upcast
        (ev.CallEnded(call_id=ref, duration_seconds=5, resolved=draw(st.booleans())), "phone"),
        (ev.EmailReceived(message_id=f"m{n}"), "email"),
        (ev.EmailSent(message_id=f"s{n}"), "email"),
        (ev.MessageReceived(conversation_id=ref, text="?"), draw(st.sampled_from(["whatsapp", "webchat"]))),
        (ev.MessageSent(conversation_id=ref, text="!"), draw(st.sampled_from(["whatsapp", "webchat"]))),
        (ev.StoreVisited(store_id=ref), "store"),
        (ev.CaseResolved(case_id=ref), "web"),
        (ev.FeedbackGiven(survey_id=f"f{n}", metric="nps", score=draw(st.integers(0, 10))), "survey"),
    ][k]


@st.composite
def customer_events(draw, customer: str):
    count = draw(st.integers(0, 12))
    out = []
    for n in range(count):
        payload, channel = draw(payloads(n))
        at = timedelta(hours=draw(st.integers(-24, 400)))
        corr = draw(st.sampled_from([None, None, "j1", "j2"]))
        out.append(Event.of(payload, customer=customer, channel=channel, source=f"/p/{channel}", id=f"{customer}-{n}",
                            time=T0 + at, correlationid=corr and f"{customer}-{corr}"))
    return out


def snapshot_state(states: dict[str, dict]) -> bytes:
    return orjson.dumps(states, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(*(customer_events(c) for c in CUSTOMERS)), st.randoms(use_true_random=False), st.data())
def test_redelivery_of_any_subset_changes_nothing(per_customer, rnd, data):
    events = [e for seq in per_customer for e in seq]
    original = [(e, Origin("t", 0, i)) for i, e in enumerate(events)]
    again = data.draw(st.lists(st.integers(0, max(len(events) - 1, 0)), max_size=10)) if events else []
    redelivered = list(original)
    for i in again:
        # A redelivery comes after the first delivery, from wherever it was read again.
        first = next(k for k, (e, _) in enumerate(redelivered) if e is events[i])
        redelivered.insert(rnd.randint(first + 1, len(redelivered)), (events[i], Origin("t", 1, 1000 + i)))
    states_a, rows_a, _ = fold_all(PROJECTION, original)
    states_b, rows_b, _ = fold_all(PROJECTION, redelivered)
    assert snapshot_state(states_a) == snapshot_state(states_b)
    assert final(rows_a) == final(rows_b)
    assert len(rows_a) == len(rows_b) == len(events)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.tuples(*(customer_events(c) for c in CUSTOMERS)), st.randoms(use_true_random=False))
def test_any_interleaving_of_customers_gives_the_same_result(per_customer, rnd):
    sequential = [e for seq in per_customer for e in seq]
    queues = [list(seq) for seq in per_customer]
    interleaved = []
    while any(queues):
        queue = rnd.choice([q for q in queues if q])
        interleaved.append(queue.pop(0))
    origin = {e.id: Origin("t", 0, i) for i, e in enumerate(sequential)}
    states_a, rows_a, _ = fold_all(PROJECTION, [(e, origin[e.id]) for e in sequential])
    states_b, rows_b, _ = fold_all(PROJECTION, [(e, origin[e.id]) for e in interleaved])
    assert snapshot_state(states_a) == snapshot_state(states_b)
    assert final(rows_a) == final(rows_b)
    assert sorted(map(orjson.dumps, rows_a)) == sorted(map(orjson.dumps, rows_b))
