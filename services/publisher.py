"""The producer SDK: publishes validated events to their channel topic, keyed by customer.

``Publisher`` is idempotent (``enable.idempotence``, ``acks=all``) and returns only once the broker confirmed
every record, or raises ``PublishError`` naming the events that failed. Events are pydantic models, so invalid
input is rejected when it is built, before anything reaches Kafka. Derived events (``schemas.derived``) are what
the projections conclude: only the projection worker publishes them, so they are refused (``DerivedEventError``)
before anything is published (the worker would dead-letter them anyway).
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaError, Producer

from schemas.codec import encode
from schemas.derived import DERIVED
from schemas.envelope import Event
from services.settings import Settings


class PublishError(RuntimeError):
    """Some events were not confirmed by the broker; ``failures`` maps event id to the broker's error."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        sample = "; ".join(f"{k}: {v}" for k, v in list(failures.items())[:5])
        super().__init__(f"{len(failures)} event(s) not delivered: {sample}")


class DerivedEventError(ValueError):
    """``publish_many`` was given derived events; nothing was published."""

    def __init__(self, events: list[Event]):
        self.events = events
        names = ", ".join(sorted({e.name for e in events}))
        super().__init__(f"refusing to publish derived event type(s) {names} ({len(events)} event(s), e.g. id "
                         f"{events[0].id}): derived events are published by the projection worker only; nothing "
                         "was published")


class Publisher:
    """Publishes events to ``<topic_prefix>.<channel>``. Use as a context manager or call ``close()``."""

    def __init__(self, settings: Settings, timeout: float = 30.0, **kafka_config):
        self._settings = settings
        self._timeout = timeout
        self._producer = Producer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            # Java-compatible hashing: faust (aiokafka) places derived events and table changelogs by the same key
            # hash, so a customer's events, derived events and state share one partition number.
            "partitioner": "murmur2_random",
            "log.connection.close": False,  # brokers close idle connections; not worth a line on stderr
            "delivery.timeout.ms": int(timeout * 1000),
            **kafka_config,
        })

    def publish(self, event: Event) -> None:
        self.publish_many([event])

    def publish_many(self, events: Iterable[Event]) -> int:
        """Publish all events, wait for every delivery report; return the count or raise ``PublishError``.
        Raises ``DerivedEventError``, having published nothing, if any of them is a derived event."""
        events = list(events)  # checked whole before the first is produced
        derived = [e for e in events if type(e.data) in DERIVED]
        if derived:
            raise DerivedEventError(derived)
        failures: dict[str, str] = {}
        pending = 0

        def report(err: KafkaError | None, msg, event_id: str) -> None:
            nonlocal pending
            pending -= 1
            if err is not None:
                failures[event_id] = err.str()

        count = 0
        for event in events:
            record = encode(event, self._settings.event_mode)
            while True:
                try:
                    self._producer.produce(self._settings.channel_topic(event.channel), record.value, record.key,
                                           headers=record.headers,
                                           on_delivery=lambda err, msg, i=event.id: report(err, msg, i))
                    break
                except BufferError:  # local queue full: let deliveries drain, then retry
                    self._producer.poll(0.1)
            pending += 1
            count += 1
            self._producer.poll(0)
        remaining = self._producer.flush(self._timeout)
        if remaining or pending:
            failures.setdefault("*", f"{max(remaining, pending)} record(s) still undelivered after {self._timeout}s")
        if failures:
            raise PublishError(failures)
        return count

    def close(self) -> None:
        self._producer.flush(self._timeout)
        self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
