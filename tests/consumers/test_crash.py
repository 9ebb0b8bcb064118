"""kill -9 of the worker in the middle of 100,000 events: after a restart every projection equals the ground
truth of the simulated traffic, 0 lost and 0 duplicated."""

from __future__ import annotations

import signal

import pytest

from services.publisher import Publisher
from services.reader import sql
from services.simulate import simulate
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.integration

JOURNEY = ("customer_id", "journey_id", "channels", "channel_switches", "contacts", "transfers", "repeat_contacts",
           "resolved", "first_contact_resolution", "version")


def rows(settings, statement: str) -> list[dict]:
    result = sql(settings, statement)
    return [dict(zip(result["columns"], row)) for row in result["rows"]]


def stored(settings) -> int:
    return rows(settings, "SELECT count() AS n FROM timeline")[0]["n"]


def test_kill_9_mid_stream_then_restart_loses_and_duplicates_nothing(settings, tmp_path):
    sim = simulate(6000, 33, seed=11)
    truth = sim.truth
    assert len(sim.events) >= 100_000
    with Publisher(settings) as publisher:
        publisher.publish_many(sim.events)

    first = WorkerProcess(settings, tmp_path / "worker-1.log").start(timeout=120)
    wait_until(lambda: stored(settings) >= 40_000, timeout=300, interval=1)
    first.stop(signal.SIGKILL)  # mid-stream, no goodbye: uncommitted offsets, half-written batches
    assert first.proc.returncode == -signal.SIGKILL

    # The supervised worker is started again when it stops itself, having caught its consumer skipping records
    # (seen after a kill -9 restart with a large backlog): as docker-compose's `restart: unless-stopped` does.
    second = WorkerProcess(settings, tmp_path / "worker-2.log").start(timeout=120)
    expected = sum(truth["timeline"].values())

    def caught_up() -> bool:
        return rows(settings, "SELECT count() AS n FROM timeline FINAL")[0]["n"] >= expected

    try:
        wait_until(caught_up, timeout=400, interval=2)
        per_customer = {r["customer_id"]: r["n"] for r in rows(
            settings, "SELECT customer_id, count() AS n FROM timeline FINAL GROUP BY customer_id")}
        assert per_customer == truth["timeline"]  # every event and every derived event, each once

        flags = rows(settings, "SELECT customer_id, address, status, returns, actions, version "
                               "FROM address_flags FINAL ORDER BY customer_id, address")
        assert flags == [{k: f[k] for k in ("customer_id", "address", "status", "returns", "actions", "version")}
                         for c in sorted(truth["flags"]) for f in truth["flags"][c]]

        violations = rows(settings, "SELECT customer_id, kind, subject, channels, values, event_ids "
                                    "FROM consistency_violations FINAL ORDER BY customer_id, subject")
        assert violations == [{k: v[k] for k in ("customer_id", "kind", "subject", "channels", "values",
                                                 "event_ids")} for v in truth["violations"]]

        journeys = rows(settings, f"SELECT {', '.join(JOURNEY)} FROM journeys FINAL ORDER BY customer_id, journey_id")
        want = sorted(({k: j[k] for k in JOURNEY} for c in truth["journeys"] for j in truth["journeys"][c]),
                      key=lambda j: (j["customer_id"], j["journey_id"]))
        assert journeys == want

        told = sum(truth["per_type"].get(t, 0) for t in ("PriceQuoted", "OfferMade", "AnswerGiven"))
        assert rows(settings, "SELECT count() AS n FROM quotes FINAL")[0]["n"] == told
        assert rows(settings, "SELECT count() AS n FROM feedback FINAL")[0]["n"] == truth["per_type"]["FeedbackGiven"]
        print(f"{len(sim.events)} events; restarts of the second worker: {second.restarts}")
    finally:
        second.stop()
