"""The pure batch engine: redelivery, repeated ids, time order within a batch, batch-size invariance."""

from __future__ import annotations

import orjson
from hypothesis import given, settings, strategies as st

from projections.engine import IDS_KEPT, Engine, Record, content_digest, identity
from projections.origin import Origin
from projections.registry import PROJECTIONS, STATEFUL
from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event
from tests.support.events import ADDRESS, T0, journey

from datetime import timedelta


def records(events, topic="t", start=0):
    return [Record(e, Origin(topic, 0, start + i), Origin(topic, 0, start + i)) for i, e in enumerate(events)]


def returned(customer: str, n: int, days: int) -> Event:
    return Event.of(ev.MailReturned(letter_id=f"l-{n}", address=ADDRESS, reason="moved"), customer=customer,
                    channel=Channel.MAIL, source="/test/mail", id=f"{customer}-ret-{n}", time=T0 + timedelta(days=days))


def rows_by_table(applied) -> dict[str, int]:
    return {table: len(rows) for table, rows in applied.rows.items()}


def test_a_redelivered_batch_changes_nothing_and_emits_nothing():
    engine, states = Engine(), {}
    batch = records(journey("c-1") + [returned("c-1", 1, 1), returned("c-1", 2, 2)])
    first = engine.apply(batch, states)
    assert first.rows["timeline"] and first.derived and first.skipped == 0
    before = orjson.dumps(states)
    again = engine.apply(batch, states)  # after a crash, before the offsets were committed
    assert (again.rows, again.derived, again.skipped, orjson.dumps(states)) == ({}, [], len(batch), before)


def test_a_state_ahead_of_the_committed_offsets_skips_exactly_what_it_holds():
    engine, states = Engine(), {}
    events = journey("c-1")
    engine.apply(records(events[:6]), states)
    redo = engine.apply(records(events, start=0), states)  # offsets 0..9 again: 0..5 are in the state
    assert redo.skipped == 6 and len(redo.rows["timeline"]) == len(events) - 6


def test_the_same_event_published_twice_is_folded_once():
    engine, states = Engine(), {}
    letter = [returned("c-1", 1, 1), returned("c-1", 2, 2)]
    applied = engine.apply(records(letter + letter, start=0), states)  # four offsets, two events
    assert applied.skipped == 2 and len(applied.rows["timeline"]) == 2
    assert [d.name for d in applied.derived] == ["AddressFlagged"]


def test_remembered_ids_stay_bounded():
    engine, states = Engine([], [STATEFUL["flags"]]), {}
    many = [returned("c-1", n, 0) for n in range(3 * IDS_KEPT)]
    engine.apply(records(many), states)
    ids = states["c-1"]["ids"]
    assert IDS_KEPT // 2 <= len(ids) <= IDS_KEPT
    assert list(ids.items())[-1] == (identity(many[-1].source, many[-1].id), content_digest(many[-1]))
    assert identity(many[0].source, many[0].id) not in ids  # the oldest went first


def test_an_engine_without_folds_keeps_only_the_id_window():
    # A rebuild of the timeline reads each offset once: no watermarks, no fold states, but the same ids as live.
    states, engine = {}, Engine([PROJECTIONS["timeline"]], [])
    batch = records(journey("c-1"))
    applied = engine.apply(batch + batch, states)
    assert len(applied.rows["timeline"]) == len(batch) and applied.skipped == len(batch)
    assert states["c-1"]["w"] == {} and states["c-1"]["p"] == {} and len(states["c-1"]["ids"]) == len(batch)


def test_a_batch_out_of_time_order_is_folded_in_time_order():
    # The second return arrives first (another topic, another batch position): flagged all the same, once.
    engine = Engine()
    late_first = records([returned("c-1", 2, 20)], topic="a") + records([returned("c-1", 1, 10)], topic="b")
    applied = engine.apply(late_first, {})
    flagged = [d for d in applied.derived if d.name == "AddressFlagged"]
    assert len(flagged) == 1 and flagged[0].causationid == "c-1-ret-2"


def test_a_fold_that_raises_is_reported_and_the_rest_goes_on():
    from projections.stateful import StatefulProjection

    def fragile(state, event, origin, rules):
        if event.name == "CallEnded":
            raise ValueError("boom")
        return STATEFUL["journeys"].fold(state, event, origin, rules)

    engine = Engine([], [StatefulProjection("fragile", "journeys", STATEFUL["journeys"].schema, fragile)])
    events = journey("c-1")
    applied = engine.apply(records(events), {})
    assert list(applied.failed.values()) == ["projection fragile failed: ValueError: boom"]
    assert events[next(iter(applied.failed))].name == "CallEnded"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 12), min_size=1, max_size=8))
def test_batch_boundaries_do_not_change_the_outcome(sizes):
    # Each customer's events arrive in time order (a customer's late arrivals are the folds' business).
    events = [e for c in ("c-1", "c-2", "c-3") for e in journey(c)] + [returned("c-2", n, n) for n in range(4)]
    stream = records(sorted(events, key=lambda e: e.time))
    engine = Engine()
    whole_states = {}
    whole = engine.apply(stream, whole_states)
    split_states, rows, derived, i = {}, {}, [], 0
    for size in sizes * len(stream):
        if i >= len(stream):
            break
        applied = engine.apply(stream[i:i + size], split_states)
        for table, r in applied.rows.items():
            rows.setdefault(table, []).extend(r)
        derived += applied.derived
        i += size

    def final(rows_by):  # what a ReplacingMergeTree keeps: the newest version per key
        return {t: sorted(orjson.dumps(r, default=str) for r in rs) for t, rs in rows_by.items()}

    assert orjson.dumps(split_states, option=orjson.OPT_SORT_KEYS) == orjson.dumps(whole_states,
                                                                                    option=orjson.OPT_SORT_KEYS)
    assert final(rows) == final(whole.rows)
    assert sorted(d.id for d in derived) == sorted(d.id for d in whole.derived)


def test_a_versioned_table_stores_the_last_row_of_each_key_per_batch():
    engine = Engine([], [STATEFUL["journeys"], STATEFUL["flags"]])
    applied = engine.apply(records(journey("c-1") + [returned("c-1", 1, 1), returned("c-1", 2, 2)]), {})
    tables = engine.tables(applied)
    for table, key in (("journeys", ("customer_id", "journey_id")), ("address_flags", ("customer_id", "address_hash"))):
        rows = applied.rows[table]
        newest = {}
        for r in rows:
            k = tuple(r[c] for c in key)
            newest[k] = max(newest.get(k, 0), r["version"])
        assert len(rows) > len(newest)  # several versions folded in the batch ...
        stored = tables[table].to_pylist()  # ... only the newest of each key stored
        assert sorted((tuple(r[c] for c in key), r["version"]) for r in stored) == sorted(newest.items())


def test_the_id_window_survives_the_stores_json_round_trip():
    # The runtime keeps states as JSON between batches: the window's order (oldest first) must survive it.
    engine, many = Engine([], [STATEFUL["flags"]]), [returned("c-1", n, 0) for n in range(3 * IDS_KEPT)]
    kept, stored = {}, {}
    for i in range(0, len(many), 50):
        engine.apply(records(many[i:i + 50], start=i), kept)
        stored = orjson.loads(orjson.dumps(stored))
        engine.apply(records(many[i:i + 50], start=i), stored)
    assert list(stored["c-1"]["ids"].items()) == list(kept["c-1"]["ids"].items())


def test_a_projection_ignores_every_event_outside_what_it_handles():
    """The engine calls a projection only for the event names it ``handles``: for any other event the projection
    must do nothing at all, or skipping it would lose rows, derived events or state. Checked on every event type
    the simulator makes, and on the derived events its traffic yields."""
    from services.simulate import simulate

    events = simulate(60, 20, seed=5).events
    derived = Engine().apply(records(events), {}).derived
    everything = [*events, *derived]
    assert len({e.name for e in everything}) >= 20 and derived  # the simulator covers (nearly) the whole catalogue

    def outside(p) -> list:
        return [e for e in everything if p.handles is not None and e.name not in p.handles]

    for p in PROJECTIONS.values():
        assert all(p.project(e, Origin("t", 0, 0)) == [] for e in outside(p)), p.name
    for p in STATEFUL.values():
        for e in outside(p):
            state = {"sentinel": [1]}
            folded = p.fold(state, e, Origin("t", 0, 0), Engine().rules)
            assert (folded.state, list(folded.rows), list(folded.derived)) == ({"sentinel": [1]}, [], []), \
                (p.name, e.name)
