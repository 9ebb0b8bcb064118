"""Simulated omnichannel traffic through the Publisher and a real worker: the projections match the ground truth
the simulator wrote down while planning the traffic, exactly, with identities resolved as the reads resolve them:
each customer's timeline and journeys hold what its anonymous identities recorded, and whois names its customer."""

from __future__ import annotations

import time
import urllib.parse
from datetime import datetime

import pytest

from services.publisher import Publisher
from services.reader import api_call, read
from services.simulate import simulate
from tests.support.truth import resolved_journeys
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration

FLAG_FIELDS = ("customer_id", "address", "status", "returns", "first_return", "last_return", "actions", "version")
JOURNEY_FIELDS = ("journey_id", "customer_id", "started_at", "last_at", "channels", "channel_switches", "contacts",
                  "transfers", "repeat_contacts", "resolved", "resolved_at", "resolution_seconds",
                  "first_contact_resolution", "first_response_seconds", "first_channel", "version")


def iso(text: str | None) -> str | None:
    return None if text is None else datetime.fromisoformat(text).isoformat()


def test_projections_of_simulated_traffic_equal_the_truth(settings, worker):
    sim = simulate(40, 5, seed=7)
    truth = sim.truth
    started = time.monotonic()
    with Publisher(settings) as publisher:
        assert publisher.publish_many(sim.events) == len(sim.events)

    # Everything projected: each customer's timeline has its events and those of the identities it has now, plus
    # the derived ones (flag, alert, violation), which come back through the derived topic only after the batch
    # that caused them was stored. An identity nobody has reads as itself.
    customers, identities = truth["resolved_timeline"], truth["identities"]
    assert sum(x["customer_id"] is None for x in identities.values()) and any(
        len(x["links"]) > 1 for x in identities.values() if x["customer_id"] is not None)  # unlinked, relinked
    in_order = sorted({e.id: e for e in sim.events}.values(), key=lambda e: (e.time, e.source, e.id))
    interactions = {**customers, **{i: [e.id for e in in_order if e.subject == i]
                                    for i, x in identities.items() if x["customer_id"] is None}}
    expected = {k: len(ids) + truth["timeline"][k] - truth["per_customer"][k] for k, ids in interactions.items()}
    lagging: dict[str, tuple[int, int]] = {}

    def caught_up() -> bool:
        counts = {c: len(read(settings, "timeline", customer_id=c)) for c in expected}
        lagging.clear()
        lagging.update({c: (counts[c], n) for c, n in expected.items() if counts[c] < n})
        return not lagging

    try:
        wait_until(caught_up, timeout=60, interval=0.5)
    except AssertionError:
        pytest.fail(f"not projected within 60 s; (timeline rows, expected) of {len(lagging)} customer(s): "
                    f"{dict(list(lagging.items())[:10])}\nworker log:\n{worker.log.read_text()[-3000:]}")
    projected = time.monotonic() - started
    for customer, n in expected.items():
        rows = read(settings, "timeline", customer_id=customer)
        assert len(rows) == n, customer  # nothing twice: no extra derived events either
        assert [r["event_id"] for r in rows if not r["source"].startswith("/omnitrail/projections")] == \
            interactions[customer], customer

    for ident, planned in identities.items():  # whois, through the read API's route
        [who] = api_call(settings, "/v1/whois/" + urllib.parse.quote(ident, safe=""))["rows"]
        assert who["customer_id"] == planned["customer_id"], ident
        assert [(h["action"], h["customer_id"], h["event_id"]) for h in who["history"]] == [
            (x["action"], x["customer_id"], x["event_id"]) for x in planned["links"]], ident

    for customer in customers:
        rows = read(settings, "customer_flags", customer_id=customer)
        got = [{**{k: r[k] for k in FLAG_FIELDS}, "first_return": iso(r["first_return"]),
                "last_return": iso(r["last_return"])} for r in rows]
        assert got == truth["flags"].get(customer, []), customer

    # A violation is named after the quote that revealed it. The two quotes travel on different channel topics, so
    # which one the worker folds second depends on arrival (in time order it is the later one, as the truth says):
    # the id and detection time may name either quote; everything else is exact.
    times = {e.id: e.time.isoformat() for e in sim.events}
    violations = read(settings, "consistency")
    assert len(violations) == len(truth["violations"])
    for got, want in zip(violations, truth["violations"]):
        same = ("customer_id", "kind", "subject", "channels", "values", "event_ids")
        assert {k: got[k] for k in same} == {k: want[k] for k in same}
        assert (got["violation_id"], iso(got["detected_at"])) in {
            (f"violation-{i}", times[i]) for i in want["event_ids"]}

    for customer in expected:
        rows = read(settings, "journeys", customer_id=customer)
        got = [{k: iso(r[k]) if k in ("started_at", "last_at", "resolved_at") else r[k] for k in JOURNEY_FIELDS}
               for r in rows]
        want = resolved_journeys(truth, customer) if customer in customers else truth["journeys"][customer]
        assert got == want, customer
    print(f"{len(sim.events)} events projected in {projected:.1f}s")
