"""Creates omnitrail's Kafka topics explicitly: broker auto-create would pick its own partition count.

Every topic has the same partition count, and producers partition by customer id with the Java-compatible murmur2
hash, so one customer's events, derived events and table state all live in the same partition number.
"""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from services.settings import DEADLETTER_MAX_BYTES, Settings


def all_topics(settings: Settings) -> list[str]:
    return [*settings.channel_topics, settings.derived_topic, settings.deadletter_topic]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create any missing omnitrail topic; return the names created. Existing topics are left as they are."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}") from None
    config = {settings.state_changelog_topic: {"cleanup.policy": "compact"},
              settings.deadletter_topic: {"max.message.bytes": str(DEADLETTER_MAX_BYTES)}}
    missing = [t for t in all_topics(settings) + [settings.state_changelog_topic] if t not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(t, settings.partitions, settings.replication_factor,
                  config=config.get(t, {})) for t in missing],
        request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # a concurrent creator won the race: fine
                raise
    return missing
