"""How far the worker is behind (per-partition consumer lag, the freshness of the projections), and whether the log
is safe: a log topic whose retention would drop events cannot be rebuilt from."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition

from consumers import kafka
from consumers.topics import dropping_topics
from services.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None  # next offset the worker will read; None: nothing committed yet
    end: int               # log end offset

    @property
    def lag(self) -> int:
        return self.end - (self.committed or 0)


def consumer_lag(settings: Settings, timeout: float = 10.0) -> list[PartitionLag]:
    """The worker group's committed offsets against the log end, for every topic it reads."""
    # Reading a group's committed offsets does not join the group, so this disturbs no running worker.
    consumer = kafka.consumer(settings.kafka_bootstrap, settings.consumer_group,
                              **{"client.id": f"omnitrail-status-{uuid.uuid4().hex[:6]}"})
    try:
        sources = settings.topics.worker_sources
        metadata = consumer.list_topics(timeout=timeout).topics
        missing = [t for t in sources if t not in metadata]
        if missing:
            raise ConnectionError(f"topics {', '.join(missing)} do not exist (run `omnitrail topics` or start a worker)")
        partitions = [TopicPartition(t, p) for t in sources for p in sorted(metadata[t].partitions)]
        committed = consumer.committed(partitions, timeout=timeout)
        return [PartitionLag(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else None,
                             consumer.get_watermark_offsets(tp, timeout=timeout)[1]) for tp in committed]
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from None
    finally:
        consumer.close()


def retention_problems(settings: Settings) -> list[dict]:
    """The log's topics (channels, derived), the dead letters and their audit trail whose settings would drop events,
    each with the ``kafka-configs.sh`` command that makes it keep them (omnitrail creates them so; someone changed
    them, or created them by hand)."""
    problems = []
    for found in dropping_topics(settings.kafka_bootstrap, [*settings.topics.log, settings.deadletter_topic,
                                                            settings.topics.discarded]):
        keep = "retention.ms=-1,retention.bytes=-1"
        if "cleanup.policy" in found.settings:  # compacted: back to delete, which with no limit deletes nothing
            keep = "cleanup.policy=delete," + keep
        fix = (f"kafka-configs.sh --bootstrap-server {settings.kafka_bootstrap} --alter --entity-type topics "
               f"--entity-name {found.topic} --add-config {keep}")
        problems.append({"topic": found.topic, "settings": found.settings, "fix": fix})
    return problems


def retention_warning(problem: dict) -> str:
    """One line for ``problem`` (from ``retention_problems``): the topic, what drops events, the fix."""
    settings = ", ".join(f"{k}={v}" for k, v in problem["settings"].items())
    return (f"topic {problem['topic']} would delete events ({settings}): rebuilds and dead-letter replays need "
            f"every one. Fix: {problem['fix']}")


def dead_letter_count(settings: Settings, timeout: float = 5.0) -> int:
    """Records on the dead-letter topic (all that were ever set aside; the topic keeps them all)."""
    consumer = kafka.consumer(settings.kafka_bootstrap, f"omnitrail-status-{uuid.uuid4().hex[:6]}")
    try:
        partitions = kafka.partitions_of(consumer, settings.topics.deadletter, timeout)
        if partitions is None:
            return 0
        marks = [consumer.get_watermark_offsets(TopicPartition(settings.topics.deadletter, p), timeout=timeout)
                 for p in partitions]
        return sum(high - low for low, high in marks)
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from None
    finally:
        consumer.close()


def pipeline_health(settings: Settings, timeout: float = 3.0) -> dict:
    """Lag and dead letters for the analyst page; ``error`` says why a figure is unknown."""
    try:
        return {"lag": sum(p.lag for p in consumer_lag(settings, timeout)),
                "deadletters": dead_letter_count(settings, timeout), "error": None}
    except ConnectionError as exc:
        return {"lag": None, "deadletters": None, "error": str(exc)}
