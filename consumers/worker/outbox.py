"""Everything the worker writes to Kafka goes through here: send a batch of records, return once the broker
acknowledged all of them, or raise.

When librdkafka declares a producer fatally failed, the documented remedy is a new producer. Nothing of the batch
has been acknowledged to the consumer group yet, and every record the worker writes is idempotent for its readers
(derived events keep their ids, states and forwarded records are re-read the same), so the batch is sent again
once with a new producer. A second failure stops the worker.

``give_up`` (checked twice a second while waiting) ends a wait early: a worker that is stopping does not wait
long for a broker that does not answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException, Producer

log = logging.getLogger(__name__)
DELIVERY_TIMEOUT = 60.0
PLACED_BY_KEY = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the producer's partitioner places the record


class Out(NamedTuple):  # a checkpoint sends one per changed state: cheap to build
    topic: str
    value: bytes | None
    key: bytes | None
    headers: list | None = None
    partition: int | None = None  # None: placed by the key (murmur2)


class DeliveryFailed(RuntimeError):
    def __init__(self, message: str, fatal: bool):
        super().__init__(message)
        self.fatal = fatal


class Outbox:
    def __init__(self, make_producer: Callable[[], Producer], give_up: Callable[[], bool] = lambda: False):
        self._make = make_producer
        self._give_up = give_up
        self.producer = make_producer()

    def send(self, records: list[Out]) -> dict[tuple[str, int], int]:
        """Send ``records``; return the end offset written per (topic, partition)."""
        if not records:
            return {}
        try:
            return self._send(records)
        except (DeliveryFailed, KafkaException) as exc:
            error = None if isinstance(exc, DeliveryFailed) else exc.args[0]
            fatal = exc.fatal if error is None else error.fatal() or error.code() == KafkaError._FATAL
            if not fatal:
                raise
            log.warning("the producer failed fatally (%s); sending the batch again with a new producer", exc)
            self.producer.purge()  # the failed one can deliver nothing more: drop what it holds
            self.producer = self._make()
            return self._send(records)

    def _send(self, records: list[Out]) -> dict[tuple[str, int], int]:
        ends: dict[tuple[str, int], int] = {}
        errors: list[KafkaError] = []

        def delivered(err, msg) -> None:
            if err is not None:
                errors.append(err)
            else:
                tp = (msg.topic(), msg.partition())
                ends[tp] = max(ends.get(tp, 0), msg.offset() + 1)

        produce = self.producer.produce
        for topic, value, key, headers, partition in records:
            partition = PLACED_BY_KEY if partition is None else partition
            while True:
                try:
                    produce(topic, value, key, partition, on_delivery=delivered, headers=headers)
                    break
                except BufferError:  # local queue full: let deliveries drain
                    self.producer.poll(0.1)
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while (left := self.producer.flush(0.5)) and time.monotonic() < deadline and not self._give_up():
            pass
        if left or errors:
            raise DeliveryFailed(f"the broker did not acknowledge {left or len(errors)} record(s): "
                                 f"{[e.str() for e in errors[:3]] or 'timeout'}", any(e.fatal() for e in errors))
        return ends

    def close(self) -> None:
        """Drop whatever is still queued: every ``send`` waited for its acknowledgements, so it belongs to a send
        that failed, whose records were not committed and are sent again by whoever processes them next."""
        self.producer.purge()
        self.producer.flush(0)
