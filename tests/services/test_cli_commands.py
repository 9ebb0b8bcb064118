"""Every read and operations command end to end, on the demo stories projected by a real worker."""

from __future__ import annotations

import orjson
import pytest

from services import demo
from services.publisher import Publisher
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def as_json(settings, *args: str):
    result = run_cli(settings, *args, "--json")
    assert result.returncode == 0, result.stderr
    return orjson.loads(result.stdout)


def test_migrate_and_topics_before_a_worker_then_every_read_command(settings, tmp_path):
    migrated = run_cli(settings, "migrate")
    assert migrated.returncode == 0 and "the store is up to date" in migrated.stdout
    topics = run_cli(settings, "topics")  # the fixture created them already
    assert topics.returncode == 0 and f"{settings.channel_topic('mail')}: exists" in topics.stdout
    assert f"{settings.topics.discarded}: exists" in topics.stdout

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        with Publisher(settings) as publisher:
            publisher.publish_many(sorted(demo.all_events(), key=lambda e: e.time))
        consistency = wait_until(lambda: (c := as_json(settings, "consistency")) and c["violations"] and c)
        [violation] = consistency["violations"]
        assert violation["customer_id"] == demo.HOTEL_CUSTOMER and violation["values"] == ["389.00 EUR", "429.00 EUR"]
        assert {r["channel"] for r in consistency["summary"] if r["deviates"]} == {"phone", "web"}
        assert as_json(settings, "consistency", "--customer", "nobody") == {"violations": [], "summary": []}

        flags = wait_until(lambda: as_json(settings, "flags", "--customer", demo.RETURNED_MAIL_CUSTOMER))
        assert [f["status"] for f in flags] == ["cleared"]  # flagged by the returns, cleared by the address change
        assert as_json(settings, "flags") == []  # no open flag is left

        [journey] = as_json(settings, "journeys", demo.HOTEL_CUSTOMER)
        assert journey["channels"] == ["phone", "web", "email", "partner"] and journey["channel_switches"] == 3
        [call] = as_json(settings, "journeys", demo.TRANSFERRED_CUSTOMER)
        assert call["transfers"] == 3

        metrics = as_json(settings, "metrics", "--channel", "phone")
        assert metrics and {m["channel"] for m in metrics} == {"phone"} and sum(m["volume"] for m in metrics) > 0

        who = as_json(settings, "whois", "twitter:@Jansen_M")
        assert who[0]["customer_id"] == demo.RETURNED_MAIL_CUSTOMER
    finally:
        worker.stop()


def test_simulate_writes_events_and_truth_without_publishing(settings, tmp_path):
    result = run_cli(settings, "simulate", "--customers", "8", "--days", "2", "--seed", "3", "--no-publish",
                     "--out", str(tmp_path / "sim"))
    assert result.returncode == 0, result.stderr
    events = (tmp_path / "sim" / "events.jsonl").read_text().splitlines()
    truth = orjson.loads((tmp_path / "sim" / "truth.json").read_bytes())
    assert len(events) > 50 and truth["timeline"]
