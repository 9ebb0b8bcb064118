"""omnitrail's topics, created explicitly: broker auto-create would pick its own partition count and retention."""

from __future__ import annotations

from consumers.kafka import KEEP_FOREVER, ensure_topics
from schemas.topics import Topics

DEADLETTER_MAX_BYTES = 16 * 1024 * 1024  # a dead letter keeps the original record, even an oversized one


def create_topics(bootstrap: str, topics: Topics, partitions: int, replication_factor: int = 1) -> list[str]:
    """Every topic the worker reads or writes, each with the same partition count (see ``consumers.kafka``); the
    log's topics and the dead letters keep their data forever. Returns the names created."""
    configs = {name: dict(KEEP_FOREVER) for name in [*topics.log, topics.repartition]}
    configs[topics.deadletter] = {**KEEP_FOREVER, "max.message.bytes": str(DEADLETTER_MAX_BYTES)}
    configs[topics.changelog] = {"cleanup.policy": "compact"}
    return ensure_topics(bootstrap, configs, partitions, replication_factor)
