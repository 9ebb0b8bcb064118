"""`omnitrail status`: per-partition lag of the worker group and the freshness of the projections."""

from __future__ import annotations

import orjson
import pytest

from services.publisher import Publisher
from tests.support.events import journey
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, run_cli

pytestmark = pytest.mark.integration


def status(settings) -> dict:
    result = run_cli(settings, "status", "--json")
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_lag_shows_what_the_worker_has_not_read_and_drops_to_zero(settings, tmp_path):
    before = status(settings)
    assert before["total_lag"] == 0 and before["projections"]["rows"] == 0
    events = journey("st-1")
    with Publisher(settings) as publisher:
        publisher.publish_many(events)
    waiting = status(settings)  # no worker yet: everything is lag, and nothing was ever projected
    assert waiting["total_lag"] == len(events) and waiting["stalled"]
    assert {p["topic"] for p in waiting["partitions"] if p["lag"]} == {
        settings.channel_topic(c) for c in ("mail", "phone", "web", "email", "whatsapp", "survey")}

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        # the derived violation (phone and web prices differ) goes through the derived topic too
        caught_up = wait_until(lambda: (s := status(settings))["total_lag"] == 0
                               and s["projections"]["rows"] == len(events) + 1 and s, timeout=30)
        table = run_cli(settings, "status")
    finally:
        worker.stop()
    assert caught_up["projections"]["newest_event"].startswith(events[-1].time.isoformat()[:19])
    assert 0 <= caught_up["projections"]["age_seconds"] < 60 and not caught_up["stalled"]
    assert "total lag: 0 record(s)" in table.stdout and "timeline: 11 rows" in table.stdout
