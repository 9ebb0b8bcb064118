"""omnitrail's topics, created explicitly: broker auto-create would pick its own partition count and retention.
Topics made by hand or altered later are checked: ``dropping_topics`` names those whose retention would drop events.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import ConfigResource, ResourceType

from consumers.kafka import KEEP_FOREVER, admin, ensure_topics
from schemas.topics import Topics

DEADLETTER_MAX_BYTES = 16 * 1024 * 1024  # a dead letter keeps the original record, even an oversized one


def create_topics(bootstrap: str, topics: Topics, partitions: int, replication_factor: int = 1) -> list[str]:
    """Every topic the worker reads or writes, each with the same partition count (see ``consumers.kafka``); the
    log's topics and the dead letters keep their data forever. Returns the names created."""
    configs = {name: dict(KEEP_FOREVER) for name in [*topics.log, topics.repartition]}
    configs[topics.deadletter] = {**KEEP_FOREVER, "max.message.bytes": str(DEADLETTER_MAX_BYTES)}
    configs[topics.discarded] = {**KEEP_FOREVER, "max.message.bytes": str(DEADLETTER_MAX_BYTES)}
    configs[topics.changelog] = {"cleanup.policy": "compact"}
    return ensure_topics(bootstrap, configs, partitions, replication_factor)


# Kafka's topic defaults, assumed for a setting the broker leaves out of DescribeConfigs (Apache Kafka reports
# every setting; Tansu only those a topic was created with). Unknown is treated as Kafka's 7 days, not as safe.
KAFKA_DEFAULTS = {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"}


@dataclass(frozen=True)
class DroppingTopic:
    """A topic whose settings let the broker delete events: ``settings`` are the ones that do (name -> value)."""

    topic: str
    settings: dict[str, str]


def drops_events(config: dict[str, str]) -> dict[str, str]:
    """The settings of ``config`` (a topic's effective configuration) that would drop events: a finite
    ``retention.ms`` / ``retention.bytes`` under the delete policy, or compaction (which keeps only the newest
    record per key, and the key is the customer id)."""
    config = {**KAFKA_DEFAULTS, **config}
    policy = config["cleanup.policy"].replace(" ", "").split(",")
    found = {"cleanup.policy": config["cleanup.policy"]} if "compact" in policy else {}
    if "delete" in policy:
        found |= {k: config[k] for k in ("retention.ms", "retention.bytes") if int(config[k]) >= 0}  # -1: no limit
    return found


def dropping_topics(bootstrap: str, names: list[str], timeout: float = 10.0) -> list[DroppingTopic]:
    """Those of the existing topics ``names`` whose retention would drop events (a missing topic holds nothing).

    Raises ``ConnectionError`` naming the bootstrap if Kafka is unreachable.
    """
    client = admin(bootstrap)
    try:
        existing = client.list_topics(timeout=timeout).topics
        resources = [ConfigResource(ResourceType.TOPIC, name) for name in names if name in existing]
        if not resources:
            return []
        described = client.describe_configs(resources, request_timeout=timeout)
        configs = {r.name: {k: e.value for k, e in f.result().items() if e.value is not None}
                   for r, f in described.items()}
    except KafkaException as exc:
        raise ConnectionError(f"cannot read topic settings from Kafka at {bootstrap}: {exc}") from None
    return [DroppingTopic(name, found) for name in names if name in configs and (found := drops_events(configs[name]))]
