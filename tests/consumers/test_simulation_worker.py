"""Simulated omnichannel traffic through the Publisher and a real worker: the projections match the ground truth
the simulator wrote down while planning the traffic, exactly."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from services.publisher import Publisher
from services.reader import read
from services.simulate import simulate
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

    # Everything projected: each customer's timeline has its events plus the derived ones (flag, alert, violation),
    # which come back through the derived topic only after the batch that caused them was stored.
    lagging: dict[str, tuple[int, int]] = {}

    def caught_up() -> bool:
        counts = {c: len(read(settings, "timeline", customer_id=c)) for c in truth["timeline"]}
        lagging.clear()
        lagging.update({c: (counts[c], n) for c, n in truth["timeline"].items() if counts[c] < n})
        return not lagging

    try:
        wait_until(caught_up, timeout=60, interval=0.5)
    except AssertionError:
        pytest.fail(f"not projected within 60 s; (timeline rows, expected) of {len(lagging)} customer(s): "
                    f"{dict(list(lagging.items())[:10])}\nworker log:\n{worker.log.read_text()[-3000:]}")
    projected = time.monotonic() - started
    for customer, expected in truth["timeline"].items():
        rows = read(settings, "timeline", customer_id=customer)
        assert len(rows) == expected, customer  # nothing twice: no extra derived events either
        assert sum(not r["source"].startswith("/omnitrail/projections") for r in rows) == \
            truth["per_customer"][customer]

    for customer in truth["per_customer"]:
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

    for customer, expected in truth["journeys"].items():
        rows = read(settings, "journeys", customer_id=customer)
        got = [{k: iso(r[k]) if k in ("started_at", "last_at", "resolved_at") else r[k] for k in JOURNEY_FIELDS}
               for r in rows]
        assert got == expected, customer
    print(f"{len(sim.events)} events projected in {projected:.1f}s")
