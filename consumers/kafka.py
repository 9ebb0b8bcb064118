"""The one place that builds Kafka clients and creates topics, so every part of omnitrail talks to Kafka alike.

Partitioning: every omnitrail topic a customer's data lives in (channels, derived, repartition, state changelog)
has the same partition count, and records are placed by the Java client's default partitioner (murmur2 of the
key, which is the customer id). So one customer's events, derived events and state share one partition number:
the worker that owns partition ``p`` of every topic owns those customers. ``partition_for`` computes it.
"""

from __future__ import annotations

import logging
from functools import lru_cache

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

# An event-sourced log keeps its events: no time or size limit (Kafka's default deletes after 7 days).
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
log = logging.getLogger("librdkafka")
# Without a handler of its own, Python's last-resort handler prints every warning on stderr in processes that set up
# no logging (the CLI): a read with Kafka down printed ~80 connection lines. Records still propagate to the root
# logger where one is configured (the worker's --log-level).
log.addHandler(logging.NullHandler())


def _error(err) -> None:
    # Without an error callback confluent-kafka raises a fatal error from poll()/flush() as a bare KafkaError
    # object, which is not an exception class and escapes ``except`` clauses. Fatal errors still reach the caller
    # through produce() and the delivery reports.
    log.log(logging.ERROR if err.fatal() else logging.WARNING, "%s", err.str())


# librdkafka logs through Python logging (not raw lines on stderr): a broker that is down for a while is one
# warning per connection attempt in the worker's log, and silent in the CLI unless asked for.
_QUIET = {"log.connection.close": False, "logger": log, "error_cb": _error}


def producer(bootstrap: str, **overrides) -> Producer:
    """An idempotent producer (``acks=all``) that places keyed records like the Java client does."""
    return Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5,
                     "partitioner": "murmur2_random", **_QUIET, **overrides})


def consumer(bootstrap: str, group: str, **overrides) -> Consumer:
    """A consumer that commits only when told to and starts at the beginning of a partition it has no offset for."""
    return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                     "auto.offset.reset": "earliest", "enable.partition.eof": False, **_QUIET, **overrides})


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **_QUIET})


@lru_cache(maxsize=1 << 18)  # customers repeat: hash each key once
def partition_for(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner (and librdkafka's ``murmur2_random``) picks for ``key``."""
    from aiokafka.partitioner import murmur2  # here: aiokafka costs every CLI command ~30 ms, and few need it

    return (murmur2(key) & 0x7FFFFFFF) % partitions


def ensure_topics(bootstrap: str, topics: dict[str, dict[str, str]], partitions: int, replication_factor: int,
                  timeout: float = 30.0) -> list[str]:
    """Create the missing ones of ``topics`` (name -> topic config); return the names created.

    Existing topics are left as they are. Raises ``ConnectionError`` naming the bootstrap if Kafka is unreachable.
    """
    client = admin(bootstrap)
    try:
        existing = set(client.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ConnectionError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    missing = [t for t in topics if t not in existing]
    if not missing:
        return []
    futures = client.create_topics([NewTopic(t, partitions, replication_factor, config=topics[t]) for t in missing],
                                   request_timeout=timeout)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # a concurrent creator won the race: fine
                raise
    return missing


def partitions_of(client: Consumer, topic: str, timeout: float) -> list[int] | None:
    """The partition numbers of ``topic``, in order; None if the broker does not know the topic."""
    meta = client.list_topics(topic, timeout=timeout).topics.get(topic)
    return None if meta is None or meta.error is not None else sorted(meta.partitions)


def require(bootstrap: str, timeout: float = 5.0) -> None:
    """Raise ``ConnectionError`` naming the fix unless a broker at ``bootstrap`` answers within ``timeout``: a
    command then says so at once, instead of waiting out librdkafka's own timeouts (30 s and more)."""
    try:
        admin(bootstrap).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise ConnectionError(
            f"cannot reach Kafka at {bootstrap} within {timeout:g} s ({exc.args[0].str()}): start the local broker "
            "with `omnitrail stack up`, or point OMNITRAIL_KAFKA_BOOTSTRAP at your Kafka") from None
