"""Two workers share the partitions; one is killed mid-stream and the other takes its partitions and states over.

Each worker writes its own embedded store (one process owns a chdb directory); the test unions the two stores and
collapses them by event key, as one shared ClickHouse server would. The union must equal the ground truth.

Apache Kafka ends a dead member's session after ``session.timeout.ms`` and hands its partitions to the others.
noida-db never does (measured: neither for static nor for dynamic members; it only forgets every member when it
restarts), so here the broker is restarted gracefully after the kill to end the dead worker's session.
"""

from __future__ import annotations

import signal

import pytest

from services.publisher import Publisher
from services.settings import Settings
from services.simulate import simulate
from services.stack import LocalBroker, free_port
from services.topics import ensure_topics
from tests.support.brokers import clickhouse_url
from tests.support.scenario import api_query, caught_up, cli_query, stored
from tests.support.truth import differences, exact
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, restart_broker

pytestmark = pytest.mark.integration


def test_a_killed_worker_hands_its_partitions_and_states_to_the_other(tmp_path):
    broker = LocalBroker(tmp_path / "broker", free_port())
    broker.start()
    a = Settings(state_dir=tmp_path / "state-a", kafka_bootstrap=broker.bootstrap, api_port=free_port(),
                 clickhouse_url=clickhouse_url(tmp_path / "a"), session_timeout_ms=6000, partitions=3,
                 worker_instance_id="worker-a")
    b = a.model_copy(update={"state_dir": tmp_path / "state-b", "clickhouse_url": clickhouse_url(tmp_path / "b"),
                             "api_port": free_port(), "worker_instance_id": "worker-b"})
    ensure_topics(a)
    sim = simulate(1500, 20, seed=5)
    expected = sum(sim.truth["timeline"].values())
    first = WorkerProcess(a, tmp_path / "worker-a.log").start(timeout=120)
    second = WorkerProcess(b, tmp_path / "worker-b.log").start(timeout=120)
    try:
        with Publisher(a) as publisher:
            publisher.publish_many(sim.events)
        wait_until(lambda: stored(a) >= expected // 4 and stored(b) > 0, timeout=120, interval=0.2)
        first.stop(signal.SIGKILL)
        restart_broker(broker, second)  # ends the dead worker's session (see the module docstring)
        wait_until(lambda: caught_up(b, 0), timeout=240, interval=1)
        partitions = api_query(b)("SELECT DISTINCT partition FROM timeline")
        assert {r["partition"] for r in partitions} == set(range(a.partitions))  # b took a's over
        diffs = differences(sim.truth, [cli_query(a), api_query(b)])
        assert exact(diffs), diffs
    finally:
        second.stop()
        first.stop()
        broker.stop()
