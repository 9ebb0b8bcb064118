"""How far the worker is behind: per-partition consumer lag and the freshness of the projections."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition

from consumers import kafka
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
