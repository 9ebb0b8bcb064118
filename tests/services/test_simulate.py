"""The simulator: deterministic, realistic, stories embedded, rich (returned mail, violations, transfers, duplicates,
late arrivals), and its ground truth is exactly what the projections make of its events (flags, consistency
violations, journeys, timeline, quotes, feedback), in publishing order and in any order the worker may see."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from projections.consistency import fold as consistency
from projections.feedback import fold as feedback
from projections.flags import fold as flags
from projections.engine import Engine, Record
from projections.journeys import fold as journeys
from projections.migrate import migrate
from projections.origin import Origin
from projections.quotes import fold as quotes
from projections.sink import Sink
from projections.rules import Rules
from projections.store import connect
from tests.support.brokers import running_clickhouse
from tests.support.events import latest
from tests.support.folds import fold_all
from tests.support.truth import resolved_journeys
from projections.timeline import fold as timeline
from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event, parse_event
from schemas.identifiers import identifier, parse
from services.emit import events_from_jsonl
from services.queries import run_query
from services.simulate import ANONYMOUS, DEFAULT_START, STORIES, simulate, write_simulation

JOURNEY_FIELDS = ("journey_id", "customer_id", "started_at", "last_at", "channels", "channel_switches", "contacts",
                  "transfers", "repeat_contacts", "resolved", "resolved_at", "resolution_seconds",
                  "first_contact_resolution", "first_response_seconds", "first_channel", "version")
FLAG_FIELDS = ("customer_id", "address", "status", "returns", "first_return", "last_return", "actions", "version")
VIOLATION_FIELDS = ("violation_id", "customer_id", "kind", "subject", "channels", "values", "event_ids",
                    "detected_at")
# What the simulator may publish late: survey answers, the travel agency's feed, returned letters.
LATE_KINDS = ("FeedbackGiven", "MailReturned")


@pytest.fixture(scope="module")
def sim():
    return simulate(60, 7, seed=11)


@pytest.fixture(scope="module")
def big():
    """The crash test's traffic: over 100,000 events."""
    return simulate(6000, 33, seed=11)


def iso(text: str | None) -> str | None:
    return None if text is None else datetime.fromisoformat(text).isoformat()


def newest(rows: list[dict], key) -> dict:
    """What the store keeps: per key the row with the highest version (ReplacingMergeTree(version), FINAL)."""
    out: dict = {}
    for row in rows:
        if key(row) not in out or row["version"] > out[key(row)]["version"]:
            out[key(row)] = row
    return out


def fold(projection, events: list[Event]) -> tuple[list[dict], list[Event]]:
    """Fold the events in the order given, as the worker does (a repeated (source, id) is ignored); the rows as
    JSON (times as ISO 8601 text) and the derived events."""
    _, rows, derived = fold_all(projection, [(e, Origin(f"omnitrail.{e.channel}", 0, i))
                                             for i, e in enumerate(events)], Rules())
    return orjson.loads(orjson.dumps(rows)), derived


def project(events: list[Event]) -> dict:
    """Every projection of the events in the order given, as the store would hold them, in the truth's terms."""
    flag_rows, flag_derived = fold(flags.PROJECTION, events)
    got_flags: dict[str, list[dict]] = {}
    for row in sorted(newest(flag_rows, lambda r: (r["customer_id"], r["address_hash"])).values(),
                      key=lambda r: (r["customer_id"], r["updated_at"], r["address_hash"])):
        got_flags.setdefault(row["customer_id"], []).append(
            {**{k: row[k] for k in FLAG_FIELDS}, **{k: iso(row[k]) for k in ("first_return", "last_return")}})

    violation_rows, violation_derived = fold(consistency.PROJECTION, events)
    violations = sorted(({**{k: row[k] for k in VIOLATION_FIELDS}, "detected_at": iso(row["detected_at"])}
                         for row in violation_rows), key=lambda v: (v["detected_at"], v["customer_id"]))

    journey_rows, _ = fold(journeys.PROJECTION, events)
    got_journeys: dict[str, list[dict]] = {}
    for row in sorted(newest(journey_rows, lambda r: r["journey_id"]).values(),
                      key=lambda r: (iso(r["started_at"]), r["journey_id"])):
        row = {**row, "first_response_seconds": dict(zip(row["first_response_channels"],
                                                         row["first_response_seconds"]))}
        got_journeys.setdefault(row["customer_id"], []).append(
            {k: iso(row[k]) if k in ("started_at", "last_at", "resolved_at") else row[k] for k in JOURNEY_FIELDS})

    # Stateless projections; tables collapse on their sort keys. Derived events reach the timeline too.
    def collapsed(rows: list[dict], key: tuple[str, ...]) -> list[dict]:
        return list({tuple(r[k] for k in key): r for r in rows}.values())

    origin = Origin("omnitrail.test", 0, 0)
    line = collapsed([r for e in [*events, *flag_derived, *violation_derived] for r in timeline.project(e, origin)],
                     ("customer_id", "time", "source", "event_id"))
    told = collapsed([r for e in events for r in quotes.project(e, origin)],
                     ("kind", "subject", "channel", "customer_id", "source", "event_id"))
    answers = collapsed([r for e in events for r in feedback.project(e, origin)], ("customer_id", "source", "event_id"))
    return {"flags": got_flags, "violations": violations, "journeys": got_journeys,
            "timeline": Counter(r["customer_id"] for r in line), "quotes": len(told), "feedback": len(answers)}


def assert_exactly_the_truth(got: dict, truth: dict, *, detection_in_time_order: bool = True) -> None:
    assert got["flags"] == truth["flags"]
    if detection_in_time_order:
        assert got["violations"] == truth["violations"]
    else:  # which of the two conflicting values was folded second names the violation: either may
        same = [k for k in VIOLATION_FIELDS if k not in ("violation_id", "detected_at")]
        key = lambda v: tuple(str(v[k]) for k in same)  # noqa: E731
        assert sorted(map(key, got["violations"])) == sorted(map(key, truth["violations"]))
        for v in got["violations"]:
            assert v["violation_id"] in {f"violation-{i}" for i in v["event_ids"]}
    assert {c: rows for c, rows in truth["journeys"].items() if rows} == got["journeys"]
    assert got["timeline"] == Counter({c: n for c, n in truth["timeline"].items() if n})
    told = sum(truth["per_type"].get(t, 0) for t in ("PriceQuoted", "OfferMade", "AnswerGiven"))
    assert (got["quotes"], got["feedback"]) == (told, truth["per_type"].get("FeedbackGiven", 0))


def first_publications(events: list[Event]) -> list[Event]:
    seen, out = set(), []
    for e in events:
        if (e.source, e.id) not in seen:
            seen.add((e.source, e.id))
            out.append(e)
    return out


def late_arrivals(events: list[Event]) -> list[Event]:
    """Events published after a later event of the same customer."""
    latest: dict[str, datetime] = {}
    late = []
    for e in first_publications(events):
        if e.subject in latest and latest[e.subject] > e.time:
            late.append(e)
        latest[e.subject] = max(latest.get(e.subject, e.time), e.time)
    return late


def may_be_late(e: Event) -> bool:
    return e.name in LATE_KINDS or e.channel == Channel.PARTNER


# --- generation ---------------------------------------------------------------------------------------------------

def test_same_seed_same_simulation_other_seed_other_traffic():
    a, b, c = simulate(20, 5, seed=3), simulate(20, 5, seed=3), simulate(20, 5, seed=4)
    assert [e.model_dump_json() for e in a.events] == [e.model_dump_json() for e in b.events]
    assert a.truth == b.truth
    assert [e.data for e in a.events] != [e.data for e in c.events]
    assert {e.id for e in a.events}.isdisjoint(e.id for e in c.events)
    assert a.truth["journeys"] != c.truth["journeys"]
    x, y = simulate(300, 33, seed=9), simulate(300, 33, seed=9)  # every feature on: still deterministic
    assert [e.model_dump_json() for e in x.events] == [e.model_dump_json() for e in y.events]
    assert x.truth == y.truth


def test_needs_a_customer_per_story_and_at_least_a_day():
    with pytest.raises(ValueError, match="customers"):
        simulate(3, 7, seed=1)
    with pytest.raises(ValueError, match="days"):
        simulate(10, 0, seed=1)
    assert len(STORIES) == 4
    simulate(4, 1, seed=1)  # the minimum works: stories compressed into one day


def test_every_event_is_valid_once_or_retried_mostly_sorted_and_correlated(sim):
    assert len(sim.events) == sim.truth["published"] == sim.truth["summary"]["published"]
    distinct = first_publications(sim.events)
    assert len(distinct) == sim.truth["events"] > 60 * 5
    for e in distinct:
        assert parse_event(orjson.loads(e.model_dump_json())) == e
        assert e.correlationid and e.id.startswith("sim-11-")
    assert {type(e.data) for e in sim.events} <= set(latest())  # producers emit the newest version of each type
    # In time order, apart from the kinds that may arrive late.
    on_time = [e.time for e in distinct if not may_be_late(e)]
    assert on_time == sorted(on_time)
    assert dict(Counter(e.channel.value for e in distinct)) == sim.truth["per_channel"]
    assert sum(sim.truth["per_customer"].values()) == len(distinct)


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
    kinds = Counter(e.name for e in first_publications(sim.events))
    for name in ("CallTransferred", "CaseOpened", "CaseResolved", "FeedbackGiven", "MailSent", "MailReturned",
                 "AddressChanged", "EmailSent", "MessageSent", "PriceQuoted", "WebPageViewed", "StoreVisited"):
        assert kinds[name] > 0, name
    assert kinds["MailReturned"] > 3  # not only the story's letters come back
    metrics = sim.truth["journey_metrics"]
    assert metrics["cross_channel"] > 0.3 * metrics["journeys"]
    assert 0 < metrics["first_contact_resolution"] < metrics["resolved"] < metrics["journeys"]
    feedback_given = [e.data for e in sim.events if isinstance(e.data, ev.FeedbackGiven)]
    assert {f.metric for f in feedback_given} == set(ev.FeedbackMetric) and all(f.about_channel for f in feedback_given)


def test_the_stories_are_embedded(sim):
    stories, truth = sim.truth["stories"], sim.truth
    assert len(set(stories.values())) == 4
    story_events = [e for e in sim.events if e.subject in stories.values()]
    assert len(story_events) == len({e.id for e in story_events})  # published once, in time order
    assert [e.time for e in story_events] == sorted(e.time for e in story_events)

    mail = [e for e in sim.events if e.subject == stories["returned_mail"] and e.channel in (Channel.MAIL,
                                                                                             Channel.TWITTER)]
    assert [e.name for e in mail] == ["MailSent", "MailReturned"] * 3 + ["MessageReceived", "MessageSent"]
    [flag] = truth["flags"][stories["returned_mail"]]
    assert (flag["status"], flag["returns"], flag["actions"]) == ("flagged", 3, ["flagged", "mail_sent_alert"])
    assert not any(stories[s] in truth["flags"] for s in STORIES if s != "returned_mail")

    [hotel] = [j for j in truth["journeys"][stories["hotel_booking"]] if "hotel" in j["journey_id"]]
    assert hotel["channels"] == ["phone", "web", "email", "partner"] and hotel["channel_switches"] == 3
    assert hotel["resolved"] and not hotel["first_contact_resolution"]

    [call] = [j for j in truth["journeys"][stories["transferred_call"]] if "transferred" in j["journey_id"]]
    assert (call["transfers"], call["contacts"], call["channels"]) == (3, 1, ["phone"])
    assert call["resolved"] and not call["first_contact_resolution"]

    [violation] = [v for v in truth["violations"] if v["customer_id"] == stories["price_mismatch"]]
    assert (violation["channels"], violation["values"]) == (["phone", "web"], ["45.00 EUR", "49.50 EUR"])
    assert truth["violations"][0] == violation  # the story's comes first; the others follow in customer order
    assert not any(v["customer_id"] in stories.values() for v in truth["violations"][1:])


def test_anonymous_first_contacts_are_linked_relinked_and_unlinked(sim, big):
    for s in (sim, big):
        truth = s.truth
        identities, customers = truth["identities"], set(truth["resolved_timeline"])
        owners = [i["customer_id"] for i in identities.values()]
        relinked = [i for i in identities.values() if len({x["customer_id"] for x in i["links"]}) > 1]
        assert relinked and None in owners and any(len(i["links"]) == 1 for i in identities.values())
        assert (truth["summary"]["identities"], truth["summary"]["identities_relinked"],
                truth["summary"]["identities_unlinked"]) == (len(identities), len(relinked), owners.count(None))
        assert customers == {c for c in truth["per_customer"] if c not in identities}
        assert set(owners) - {None} <= customers - set(truth["stories"].values())
        by_id = {e.id: e for e in first_publications(s.events)}
        for ident, planned in identities.items():
            assert parse(ident) == ident  # producers write an identity subject in normal form
            mine = [e for e in by_id.values() if e.subject == ident]
            assert mine and {(e.name, e.channel.value) for e in mine} <= {
                ("MessageReceived", ident.split(":")[0]), ("MessageSent", ident.split(":")[0])}
            links = [by_id[x["event_id"]] for x in planned["links"]]
            assert [e.subject for e in links] == [x["customer_id"] for x in planned["links"]]
            assert all(identifier(e.data.kind, e.data.value) == ident for e in links)
            assert min(e.time for e in mine) < links[0].time  # first contact before anyone knew who it was
    by_id = {e.id: e for e in first_publications(big.events)}
    links = [by_id[x["event_id"]] for i in big.truth["identities"].values() for x in i["links"]]
    normal = {i.split(":", 1)[1] for i in big.truth["identities"]}
    assert sum(e.data.value not in normal for e in links) > 100  # agents type identities in other spellings
    later = {e.subject for e in by_id.values() if e.subject in big.truth["identities"]
             and e.time > min(by_id[x["event_id"]].time for x in big.truth["identities"][e.subject]["links"])}
    assert len(later) > 50  # written again after being identified: still under the identity
    assert {i.split(":")[0] for i in big.truth["identities"]} == set(ANONYMOUS.values())
    assert big.truth["summary"]["identities"] >= 250 and big.truth["summary"]["identities_unlinked"] >= 20


def test_a_customers_resolved_timeline_is_its_events_and_those_of_the_identities_it_has(sim):
    truth = sim.truth
    whose = {**{c: c for c in truth["resolved_timeline"]},
             **{i: x["customer_id"] for i, x in truth["identities"].items() if x["customer_id"]}}
    events = sorted(first_publications(sim.events), key=lambda e: (e.time, e.source, e.id))
    assert truth["resolved_timeline"] == {c: [e.id for e in events if whose.get(e.subject) == c]
                                          for c in truth["resolved_timeline"]}
    shown = [i for ids in truth["resolved_timeline"].values() for i in ids]
    unowned = [e.id for e in events if e.subject in truth["identities"] and e.subject not in whose]
    assert len(shown) == len(set(shown)) == len(events) - len(unowned) and unowned  # once each, or nobody's


def test_written_files_are_emit_input_and_json_truth(sim, tmp_path):
    events_path, truth_path = write_simulation(sim, tmp_path / "out")
    events, errors = events_from_jsonl(events_path.read_text().splitlines(), "/elsewhere")
    assert errors == [] and events == sim.events
    assert orjson.loads(truth_path.read_bytes()) == orjson.loads(orjson.dumps(sim.truth))


# --- richness at 100,000 events -----------------------------------------------------------------------------------

def test_rich_ground_truth_at_100k_events(big):
    truth, summary = big.truth, big.truth["summary"]
    assert len(big.events) >= 100_000
    rows = [f for c in truth["flags"] for f in truth["flags"][c]]
    assert all(len(f) == 1 for f in truth["flags"].values())  # one address bounces per customer
    flagged = [f for f in rows if "flagged" in f["actions"]]
    assert summary["flagged_addresses"] == len(flagged) >= 200
    statuses = Counter(f["status"] for f in rows)
    assert summary["status"] == dict(sorted(statuses.items()))
    assert statuses["flagged"] > 50 and statuses["cleared"] > 50 and statuses["returned"] > 50
    single = [f for f in rows if f["returns"] == 1 and f["actions"] == []]
    assert len(single) > 50 and all(f["status"] == "returned" for f in single)
    actions = Counter(a for f in rows for a in f["actions"])
    assert actions["cleared: address changed"] > 50 and actions["cleared: address confirmed"] > 20
    assert summary["mail_to_flagged_alerts"] == actions["mail_sent_alert"] > 50
    confirmed = [f for f in rows if f["actions"][-1:] == ["cleared: address confirmed"]]
    assert confirmed and all(f["returns"] == 0 and f["first_return"] is None for f in confirmed)  # returns reset
    # a letter in the post when the change came, bouncing afterwards: counted, but alone below the threshold
    assert any(f["status"] == "returned" and f["actions"] == ["flagged", "mail_sent_alert", "cleared: address changed"]
               for f in rows)
    assert summary["reflagged"] == sum(f["actions"].count("flagged") > 1 for f in rows) > 0

    assert summary["violations"] == len(truth["violations"]) >= 200
    assert len({v["customer_id"] for v in truth["violations"]}) == len(truth["violations"])
    assert {v["kind"] for v in truth["violations"]} == {"price", "offer", "answer"}

    assert summary["duplicates"] == len(big.events) - truth["events"] >= 500
    late = late_arrivals(big.events)
    assert summary["late_arrivals"] == len(late) >= 100
    assert summary["late_by_type"] == dict(sorted(Counter(e.name for e in late).items()))
    assert all(may_be_late(e) for e in late) and sum(e.name == "MailReturned" for e in late) > 10

    assert summary["transfers"] == sum(j["transfers"] for c in truth["journeys"] for j in truth["journeys"][c]) > 0
    assert truth["journey_metrics"]["with_transfers"] == summary["journeys_with_transfers"] > 100
    print(f"\n{len(big.events)} events published: {summary}")


def test_duplicates_are_producer_retries(big):
    firsts: dict[tuple[str, str], Event] = {}
    repeats = Counter()
    for i, e in enumerate(big.events):
        key = (e.source, e.id)
        if key in firsts:
            repeats[key] += 1
            assert e.model_dump_json() == firsts[key].model_dump_json()  # identical content
        else:
            firsts[key] = e
    assert sum(repeats.values()) == big.truth["summary"]["duplicates"] and max(repeats.values()) == 1
    assert not any(e.subject in big.truth["stories"].values() for e, _ in ((firsts[k], k) for k in repeats))


# --- the truth is what the projections make of the events ---------------------------------------------------------

@pytest.mark.parametrize("customers,days,seed", [(60, 7, 11), (4, 1, 2), (25, 30, 7), (40, 5, 1), (40, 5, 7)])
def test_folding_the_events_gives_exactly_the_truth(customers, days, seed):
    sim = simulate(customers, days, seed)
    assert_exactly_the_truth(project(sim.events), sim.truth)


def test_folding_100k_events_gives_exactly_the_truth(big):
    assert_exactly_the_truth(project(big.events), big.truth)


def batches_sorted_by_time(events: list[Event], size: int) -> list[Event]:
    """What the engine does with a batch: each customer's events folded in time order (stable)."""
    out = []
    for i in range(0, len(events), size):
        out += sorted(events[i:i + size], key=lambda e: (e.subject, e.time))
    return out


def interleaved(events: list[Event], rng: random.Random, burst: int) -> list[Event]:
    """Channel topics read at their own pace: each channel's events in publishing order, channels interleaved."""
    streams = {c: [e for e in events if e.channel == c] for c in Channel}
    out = []
    while any(streams.values()):
        channel = rng.choice([c for c, s in streams.items() if s])
        n = rng.randint(1, burst)
        out += streams[channel][:n]
        streams[channel] = streams[channel][n:]
    return out


def test_the_truth_holds_in_any_arrival_order_the_worker_may_see():
    """Topics interleave arbitrarily (only each channel's publishing order holds) and batches are sorted by time:
    flags, journeys, timeline, quotes and feedback come out exactly the same; a violation has the same values and
    events, named after whichever conflicting value was folded second."""
    sim = simulate(800, 33, seed=5)
    assert sim.truth["summary"]["violations"] > 20 and sim.truth["summary"]["late_arrivals"] > 10
    rng = random.Random(1)
    by_channel = [e for c in Channel for e in sim.events if e.channel == c]  # one topic after the other
    backwards = [e for c in reversed(Channel) for e in sim.events if e.channel == c]
    for order in (batches_sorted_by_time(sim.events, 500), by_channel, backwards,
                  batches_sorted_by_time(interleaved(sim.events, rng, 400), 300)):
        assert Counter(id(e) for e in order) == Counter(id(e) for e in sim.events)
        assert_exactly_the_truth(project(order), sim.truth, detection_in_time_order=False)


@pytest.mark.integration
def test_the_stores_reads_resolve_identities_as_the_truth_says(tmp_path):
    """Through the engine into a real ClickHouse, in publishing order: each customer's timeline (its interaction
    events; the derived ones come back through the worker's derived topic), journeys, and who each identity
    belongs to, read with the named queries, are the resolved truth."""
    sim = simulate(120, 7, seed=3)
    truth = sim.truth
    with running_clickhouse(tmp_path) as url:
        client = connect(url)
        migrate(client)
        engine, states, sink, offsets = Engine(), {}, Sink(client), Counter()
        for i in range(0, len(sim.events), 500):
            records = []
            for e in sim.events[i:i + 500]:
                origin = Origin(f"omnitrail.{e.channel.value}", 0, offsets[e.channel])
                offsets[e.channel] += 1
                records.append(Record(e, origin, origin))
            sink.write(engine.tables(engine.apply(records, states)))
        for customer, expected in truth["resolved_timeline"].items():
            rows = run_query(client, "timeline", {"customer_id": customer})
            assert [r["event_id"] for r in rows] == expected, customer
            got = [{k: iso(j[k]) if k in ("started_at", "last_at", "resolved_at") else j[k] for k in JOURNEY_FIELDS}
                   for j in run_query(client, "journeys", {"customer_id": customer})]
            assert got == resolved_journeys(truth, customer), customer
        for ident, planned in truth["identities"].items():
            [who] = run_query(client, "whois", {"identifier": ident})
            assert who["customer_id"] == planned["customer_id"]
            assert [(h["action"], h["customer_id"], h["event_id"]) for h in who["history"]] == [
                (x["action"], x["customer_id"], x["event_id"]) for x in planned["links"]]
            owner = planned["customer_id"]
            assert run_query(client, "timeline", {"customer_id": ident}) == run_query(
                client, "timeline", {"customer_id": owner or ident})  # an identity reads as whoever has it
        client.close()
