"""omnitrail's topics for the CLI: the worker creates them too (``consumers.topics``); ``omnitrail topics`` does it
ahead of time, so producers can start before the first worker."""

from __future__ import annotations

from consumers.topics import create_topics
from services.settings import Settings


def all_topics(settings: Settings) -> list[str]:
    """The topics of the log and the dead letters (the worker's internal topics are not listed)."""
    return [*settings.topics.log, settings.deadletter_topic, settings.topics.discarded]


def ensure_topics(settings: Settings) -> list[str]:
    """Create any missing omnitrail topic; return the names created. Existing topics are left as they are."""
    return create_topics(settings.kafka_bootstrap, settings.topics, settings.partitions, settings.replication_factor)
