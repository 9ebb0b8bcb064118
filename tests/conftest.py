"""Shared fixtures: real engines only. A fresh noida-db broker per module and a fresh chdb directory per test."""

from __future__ import annotations

import uuid

import pytest

from services.settings import Settings
from services.stack import free_port
from services.topics import ensure_topics
from tests.support.brokers import docker_enabled, running_broker, running_clickhouse
from tests.support.worker import WorkerProcess


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> str:
    """Bootstrap address of a fresh broker for this test module: noida-db, or Apache Kafka where Docker is enabled."""
    kind = "kafka-container" if docker_enabled() else "noida"
    with running_broker(kind, tmp_path_factory.mktemp("broker")) as bootstrap:
        yield bootstrap


@pytest.fixture
def settings(broker, tmp_path) -> Settings:
    """Settings for one test: own topics prefix, consumer group, state dir, API port; store per test."""
    with running_clickhouse(tmp_path) as url:
        s = Settings(state_dir=tmp_path / "state", kafka_bootstrap=broker, clickhouse_url=url,
                     topic_prefix=f"t{uuid.uuid4().hex[:8]}", consumer_group=f"g-{uuid.uuid4().hex[:8]}",
                     api_port=free_port(), session_timeout_ms=6000, batch_seconds=0.1, partitions=3,
                     stall_seconds=20)
        ensure_topics(s)
        yield s


@pytest.fixture
def worker(settings, tmp_path):
    """A running projection worker for ``settings``; stopped after the test."""
    w = WorkerProcess(settings, tmp_path / "worker.log").start()
    yield w
    w.stop()

