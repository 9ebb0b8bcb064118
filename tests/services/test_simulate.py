"""The simulator: deterministic, realistic, stories embedded, and its ground truth is exactly what the folds make
of its events (flags, consistency violations, journeys)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from projections.consistency import fold as consistency
from projections.flags import fold as flags
from projections.journeys import fold as journeys
from projections.origin import Origin
from projections.stateful import Rules, fold_all
from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event, parse_event
from schemas.registry import latest
from services.emit import events_from_jsonl
from services.simulate import DEFAULT_START, STORIES, simulate, write_simulation

JOURNEY_FIELDS = ("journey_id", "customer_id", "started_at", "last_at", "channels", "channel_switches", "contacts",
                  "transfers", "repeat_contacts", "resolved", "resolved_at", "resolution_seconds",
                  "first_contact_resolution", "first_response_seconds", "first_channel", "version")
FLAG_FIELDS = ("customer_id", "address", "status", "returns", "first_return", "last_return", "actions", "version")
VIOLATION_FIELDS = ("violation_id", "customer_id", "kind", "subject", "channels", "values", "event_ids",
                    "detected_at")


@pytest.fixture(scope="module")
def sim():
    return simulate(60, 7, seed=11)


def fold(projection, events: list[Event]) -> list[dict]:
    """Fold the events in time order the way the runtime does; the rows, as JSON (times as ISO 8601 text)."""
    _, rows, _ = fold_all(projection, [(e, Origin(f"omnitrail.{e.channel}", 0, i)) for i, e in enumerate(events)],
                          Rules())
    return orjson.loads(orjson.dumps(rows))


def newest(rows: list[dict], key) -> dict:
    """What the store keeps: per key the row with the highest version (ReplacingMergeTree(version), FINAL)."""
    out: dict = {}
    for row in rows:
        if key(row) not in out or row["version"] > out[key(row)]["version"]:
            out[key(row)] = row
    return out


def iso(text: str | None) -> str | None:
    return None if text is None else datetime.fromisoformat(text).isoformat()


def test_same_seed_same_simulation_other_seed_other_traffic():
    a, b, c = simulate(20, 5, seed=3), simulate(20, 5, seed=3), simulate(20, 5, seed=4)
    assert [e.model_dump_json() for e in a.events] == [e.model_dump_json() for e in b.events]
    assert a.truth == b.truth
    assert [e.data for e in a.events] != [e.data for e in c.events]
    assert {e.id for e in a.events}.isdisjoint(e.id for e in c.events)
    assert a.truth["journeys"] != c.truth["journeys"]


def test_needs_a_customer_per_story_and_at_least_a_day():
    with pytest.raises(ValueError, match="customers"):
        simulate(3, 7, seed=1)
    with pytest.raises(ValueError, match="days"):
        simulate(10, 0, seed=1)
    assert len(STORIES) == 4
    simulate(4, 1, seed=1)  # the minimum works: stories compressed into one day


def test_every_event_is_valid_unique_sorted_and_correlated(sim):
    assert len(sim.events) == sim.truth["events"] > 60 * 5
    for e in sim.events:
        assert parse_event(orjson.loads(e.model_dump_json())) == e
        assert e.correlationid and e.id.startswith("sim-11-")
    assert {type(e.data) for e in sim.events} <= set(latest())  # producers emit the newest version of each type
    assert len({(e.source, e.id) for e in sim.events}) == len(sim.events)
    assert [e.time for e in sim.events] == sorted(e.time for e in sim.events)
    assert dict(Counter(e.channel.value for e in sim.events)) == sim.truth["per_channel"]
    assert sum(sim.truth["per_customer"].values()) == len(sim.events)


def test_times_within_the_days_and_mostly_working_hours(sim):
    start, end = DEFAULT_START, DEFAULT_START + timedelta(days=7)
    assert all(start <= e.time < end for e in sim.events)
    assert all(e.time == e.time.replace(microsecond=0) for e in sim.events)  # survives millisecond storage
    working = [8 <= e.time.hour < 20 for e in sim.events]
    assert sum(working) / len(working) > 0.85
    assert len({e.time.date() for e in sim.events}) == 7
    shifted = simulate(10, 2, seed=5, start=datetime(2027, 3, 1, tzinfo=UTC))
    assert all(datetime(2027, 3, 1, tzinfo=UTC) <= e.time < datetime(2027, 3, 3, tzinfo=UTC) for e in shifted.events)


def test_realistic_mix_of_channels_and_interactions(sim):
    channels = Counter(e.channel for e in sim.events)
    assert set(channels) == set(Channel)
    assert channels.most_common(1)[0][0] == Channel.PHONE
    kinds = Counter(e.name for e in sim.events)
    for name in ("CallTransferred", "CaseOpened", "CaseResolved", "FeedbackGiven", "MailSent", "EmailSent",
                 "MessageSent", "PriceQuoted", "WebPageViewed", "StoreVisited"):
        assert kinds[name] > 0, name
    assert kinds["MailReturned"] == 3  # only the story's letters come back
    metrics = sim.truth["journey_metrics"]
    assert metrics["cross_channel"] > 0.3 * metrics["journeys"]
    assert 0 < metrics["first_contact_resolution"] < metrics["resolved"] < metrics["journeys"]
    feedback = [e.data for e in sim.events if isinstance(e.data, ev.FeedbackGiven)]
    assert {f.metric for f in feedback} == set(ev.FeedbackMetric) and all(f.about_channel for f in feedback)


def test_the_stories_are_embedded(sim):
    stories, truth = sim.truth["stories"], sim.truth
    assert len(set(stories.values())) == 4

    mail = [e for e in sim.events if e.subject == stories["returned_mail"] and e.channel in (Channel.MAIL,
                                                                                             Channel.TWITTER)]
    assert [e.name for e in mail] == ["MailSent", "MailReturned"] * 3 + ["MessageReceived", "MessageSent"]
    [flag] = truth["flags"][stories["returned_mail"]]
    assert (flag["status"], flag["returns"], flag["actions"]) == ("flagged", 3, ["flagged", "mail_sent_alert"])
    assert list(truth["flags"]) == [stories["returned_mail"]]

    [hotel] = [j for j in truth["journeys"][stories["hotel_booking"]] if "hotel" in j["journey_id"]]
    assert hotel["channels"] == ["phone", "web", "email", "partner"] and hotel["channel_switches"] == 3
    assert hotel["resolved"] and not hotel["first_contact_resolution"]

    [call] = [j for j in truth["journeys"][stories["transferred_call"]] if "transferred" in j["journey_id"]]
    assert (call["transfers"], call["contacts"], call["channels"]) == (3, 1, ["phone"])
    assert call["resolved"] and not call["first_contact_resolution"]

    [violation] = truth["violations"]
    assert violation["customer_id"] == stories["price_mismatch"]
    assert (violation["channels"], violation["values"]) == (["phone", "web"], ["45.00 EUR", "49.50 EUR"])


def test_written_files_are_emit_input_and_json_truth(sim, tmp_path):
    events_path, truth_path = write_simulation(sim, tmp_path / "out")
    events, errors = events_from_jsonl(events_path.read_text().splitlines(), "/elsewhere")
    assert errors == [] and events == sim.events
    assert orjson.loads(truth_path.read_bytes()) == orjson.loads(orjson.dumps(sim.truth))


@pytest.mark.parametrize("customers,days,seed", [(60, 7, 11), (4, 1, 2), (25, 30, 7), (40, 5, 1)])
def test_folding_the_events_gives_exactly_the_truth(customers, days, seed):
    sim = simulate(customers, days, seed)
    truth = sim.truth

    flag_rows = newest(fold(flags.PROJECTION, sim.events), lambda r: (r["customer_id"], r["address_hash"]))
    got_flags: dict[str, list[dict]] = {}
    for row in sorted(flag_rows.values(), key=lambda r: (r["customer_id"], r["updated_at"])):
        got_flags.setdefault(row["customer_id"], []).append(
            {**{k: row[k] for k in FLAG_FIELDS},
             **{k: iso(row[k]) for k in ("first_return", "last_return")}})
    assert got_flags == truth["flags"]

    violations = [{**{k: row[k] for k in VIOLATION_FIELDS}, "detected_at": iso(row["detected_at"])}
                  for row in fold(consistency.PROJECTION, sim.events)]
    assert violations == truth["violations"]

    journey_rows = newest(fold(journeys.PROJECTION, sim.events), lambda r: r["journey_id"])
    got: dict[str, list[dict]] = {c: [] for c in truth["journeys"]}
    for row in sorted(journey_rows.values(), key=lambda r: (iso(r["started_at"]), r["journey_id"])):
        row = {**row, "first_response_seconds": dict(zip(row["first_response_channels"],
                                                         row["first_response_seconds"]))}
        got[row["customer_id"]].append({k: iso(row[k]) if k in ("started_at", "last_at", "resolved_at") else row[k]
                                        for k in JOURNEY_FIELDS})
    assert got == truth["journeys"]
