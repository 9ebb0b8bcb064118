"""The worker's consume loop: confluent-kafka in, the pure engine in the middle, ClickHouse and Kafka out.

Per batch, in this order (a crash anywhere replays from the last commit, and every step is idempotent):

1. read records; each partition's offsets must follow on from the committed ones (``offsets.Offsets``);
2. decode; a record that cannot be decoded, or whose event does not belong on the topic it was published to
   (``projections.admission``: a forged derived event, a channel that is not the topic's; a forwarded record is
   judged by its origin), is set aside for the dead-letter topic, one that sits on another partition than its
   customer's (a producer that does not partition like the Java client) for the repartition topic, where the
   partition that owns the customer reads it;
3. the engine folds the batch into the customers' states and returns rows and derived events, and the records
   it rejects (a conflicting duplicate, a projection that failed), which are dead-lettered too;
4. the rows are stored (retried until the store takes them);
5. dead letters, derived events and forwarded records are delivered (the broker acknowledged each);
6. the changed states are kept in memory until the next checkpoint.

Steps 4 and 5 run on a thread of their own while the loop reads, decodes and folds the next batch: the store's
insert and the broker's acknowledgements are waits outside the interpreter (chdb releases the GIL while it
inserts), about a tenth of a batch's time. One batch is in flight at most: the next one's rows are not handed over
before the previous one's were stored and delivered, so rows and derived events keep the batches' order, and a
failure surfaces at the next hand-over.

A checkpoint (every ``checkpoint_seconds`` or ``checkpoint_records``, when partitions are revoked, and at a clean
stop) first waits for the batch in flight, then writes the changed states to the changelog and the local store,
then commits the offsets read: no state is written, nor offset committed, before every effect of the records it
covers was stored and delivered. The group uses range assignment: with every topic at the same partition count,
one worker owns partition ``p`` of all of them, hence all of the customers whose key hashes to ``p``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from confluent_kafka import OFFSET_INVALID, KafkaError, KafkaException, TopicPartition

from consumers import kafka
from consumers.deadletter import deadletter_headers
from consumers.topics import DEADLETTER_MAX_BYTES
from consumers.worker.config import WorkerConfig
from consumers.worker.memory import BatchCollector
from consumers.worker.offsets import Offsets
from consumers.worker.outbox import Out, Outbox
from consumers.worker.state import StateStore
from projections.admission import Admission
from projections.engine import Engine, Record
from projections.origin import Origin
from projections.sink import Sink
from schemas.codec import DecodeError, encode
from schemas.wire import decode_fast

log = logging.getLogger(__name__)

GROUP_MOVED_ON = {KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS}
ORIGIN_HEADERS = ("omnitrail_origin_topic", "omnitrail_origin_partition", "omnitrail_origin_offset")


def forwarded_origin(headers) -> Origin | None:
    values = dict(headers or [])
    try:
        topic, partition, offset = (values[h].decode() for h in ORIGIN_HEADERS)
        return Origin(topic, int(partition), int(offset))
    except (KeyError, ValueError, AttributeError):
        return None


def fetch_settings(batch_size: int) -> dict:
    """How the worker's consumer fetches (the raw baseline in ``bench`` fetches alike).

    It prefetches about two batches (librdkafka applies the limit to the consumer's one queue) and looks again every
    20 ms once there. With librdkafka's defaults (100k records, then a 1 s pause) the client read a whole backlog
    ahead of the loop; once it has fetched to the end of every partition, a broker that answers an empty Fetch at
    once instead of holding it (noida-db; Kafka holds it for ``fetch.wait.max.ms``) keeps client and broker in a
    loop of Fetches: measured, ~1 core while the loop still had half the backlog to fold."""
    return {"max.partition.fetch.bytes": 4 * 1024 * 1024, "fetch.max.bytes": 64 * 1024 * 1024,
            "queued.min.messages": 2 * batch_size, "fetch.queue.backoff.ms": 20}


class ConsumeLoop:
    def __init__(self, config: WorkerConfig, engine: Engine, sink: Sink, on_ready: Callable[[], None] = lambda: None):
        self.config, self.engine, self.sink, self._on_ready = config, engine, sink, on_ready
        self.topics = config.topics
        self.admission = Admission(config.topics)
        self.consumer = kafka.consumer(config.bootstrap, config.group, **{
            "group.instance.id": config.instance_id,
            "partition.assignment.strategy": "range",  # partition p of every topic to one worker (see above)
            "session.timeout.ms": config.session_timeout_ms,
            **fetch_settings(config.batch_size),
        })
        # Not idempotent: every record the worker writes is idempotent for its readers (derived events keep their
        # ids, the changelog's latest state per key wins), while an idempotent producer fails fatally whenever the
        # broker forgets its sequence numbers (noida-db does on every restart). One request in flight per
        # connection keeps each partition in order across retries, as the changelog needs. Compressed: customer
        # states are JSON, ~5x smaller in lz4, and they are most of what the worker writes (every changed state per
        # checkpoint); the broker stores and replicates them compressed.
        self.outbox = Outbox(lambda: kafka.producer(config.bootstrap, **{
            "enable.idempotence": False, "max.in.flight.requests.per.connection": 1,
            "message.max.bytes": DEADLETTER_MAX_BYTES, "linger.ms": 2, "compression.type": "lz4"}),
            give_up=self.giving_up)
        self.states = StateStore(config.state_dir / "states" / config.group, self.topics.changelog)
        self.offsets = Offsets()
        self.collector = BatchCollector()
        self._storer = ThreadPoolExecutor(1, thread_name_prefix="store")
        self._in_flight: Future | None = None  # the last batch's store and delivery (see the module docstring)
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._stop_by = float("inf")
        # True while a batch or a checkpoint is under way. If one fails half-way, the states in memory may hold
        # effects that were not delivered, so nothing of them may be checkpointed or committed after it (closing
        # the consumer revokes the partitions, which would otherwise checkpoint them). A batch in flight fails at
        # the next hand-over or checkpoint, which sets this first.
        self._unfinished = False
        self.records = 0                  # records processed since start, for status and benchmarks
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

    # --- the loop ------------------------------------------------------------------------------------------------
    def run(self) -> None:
        self.consumer.subscribe(self.topics.worker_sources, on_assign=self._assigned, on_revoke=self._revoked,
                                on_lost=self._lost)
        try:
            while not self.stopping.is_set():
                messages = self.consumer.consume(self.config.batch_size, self.config.batch_seconds)
                with self.collector.batch():
                    if messages:
                        self._process(messages)
                    if self._since_checkpoint and (
                            self._since_checkpoint >= self.config.checkpoint_records
                            or time.monotonic() - self._last_checkpoint >= self.config.checkpoint_seconds):
                        self.checkpoint()
            self.checkpoint()
        except Exception as exc:
            if not self.giving_up():
                raise
            # Stopping, and the broker or the store did not answer in time. Nothing is lost: the offsets stay at
            # the last commit, and whoever owns these partitions next (this worker after a restart) processes the
            # records since then again. Waiting longer would only keep the process from stopping.
            log.warning("stopping with the last batch or checkpoint unfinished (%s): the records since the last "
                        "commit are processed again on the next start", exc)
        finally:
            if self._in_flight is not None and not self.stopping.is_set():
                self.stop()  # failing: the batch in flight waits no longer than a stop does
            self._storer.shutdown()  # before the consumer closes: its revocation must not race the batch in flight
            self.consumer.close()
            self.outbox.close()
            self.states.close()

    def stop(self) -> None:
        self._stop_by = time.monotonic() + self.config.stop_seconds
        self.stopping.set()

    def giving_up(self) -> bool:
        """Stopping for longer than ``stop_seconds``: the broker and the store are not waited for any more."""
        return self.stopping.is_set() and time.monotonic() > self._stop_by

    def _process(self, messages) -> None:
        self._unfinished = True
        records, read, dead, forward = [], [], [], []
        owners: dict[str, int] = {}
        # Bound once per batch: this loop runs per record.
        repartition, partitions, mark_read = self.topics.repartition, self.config.partitions, self.offsets.read
        refusal_of, owner_of = self.admission.refusal, kafka.partition_for
        for msg in messages:
            if msg.error() is not None:
                self._kafka_error(msg.error())
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            mark_read((topic, partition), offset)
            read_at = Origin(topic, partition, offset)
            origin = (forwarded_origin(msg.headers()) or read_at) if topic == repartition else read_at
            try:
                event = decode_fast(msg.value(), msg.headers())
            except DecodeError as exc:
                dead.append((msg, origin, exc.reason))
                continue
            refusal = refusal_of(event, origin.topic)
            if refusal is not None:
                dead.append((msg, origin, refusal))
                continue
            owner = owner_of(event.subject.encode(), partitions)
            if owner != partition:
                forward.append((msg, origin, owner))
                continue
            owners[event.subject] = partition
            records.append(Record(event, origin, read_at))
            read.append(msg)
        # A customer without a state is started afresh by the engine.
        states = {c: s for c, p in owners.items() if (s := self.states.get(p, c)) is not None}
        applied = self.engine.apply(records, states)
        tables = self.engine.tables(applied)
        dead += [(read[i], records[i].origin, reason) for i, reason in sorted(applied.failed.items())]
        self._settle()
        self._in_flight = self._storer.submit(self._store, tables, dead, applied.derived, forward)
        for customer in applied.changed:
            self.states.changed(owners[customer], customer, states[customer])
        self.records += len(messages)
        self._since_checkpoint += len(messages)
        self._unfinished = False

    def _settle(self) -> None:
        """Wait for the batch in flight to be stored and delivered; raise what it failed with."""
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            in_flight.result()

    def _store(self, tables, dead, derived, forward) -> None:
        self.sink.write(tables)
        self._deliver(dead, derived, forward)

    def _deliver(self, dead, derived, forward) -> None:
        """Send dead letters, derived events and forwarded records; return once the broker acknowledged all."""
        out = []
        for msg, origin, reason in dead:
            log.warning("dead-lettering %s:%d@%d: %s", *origin, reason)
            out.append(Out(self.topics.deadletter, msg.value(), msg.key(),
                           deadletter_headers(msg.headers(), reason, origin)))
        for event in derived:
            record = encode(event, self.config.event_mode)
            out.append(Out(self.topics.derived, record.value, record.key, record.headers))
        for msg, origin, owner in forward:
            headers = [(k, v) for k, v in (msg.headers() or []) if k not in ORIGIN_HEADERS]
            headers += [(h, str(v).encode()) for h, v in zip(ORIGIN_HEADERS, origin)]
            out.append(Out(self.topics.repartition, msg.value(), msg.key(), headers, owner))
        self.outbox.send(out)

    def _kafka_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        log.warning("kafka: %s", error.str())  # transient (a broker restarting): librdkafka retries by itself

    def lag(self) -> int:
        """Records in the assigned partitions not yet read (from the consumer's latest fetch; no broker call)."""
        total = 0
        for (topic, partition), position in self.offsets.positions().items():
            high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
            total += max(high - position, 0)
        return total

    # --- checkpoints and partition ownership ---------------------------------------------------------------------
    def checkpoint(self) -> None:
        self._unfinished = True
        self._settle()
        self.states.checkpoint_to(self.outbox)
        positions = self.offsets.to_commit()
        if positions:
            try:
                self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in positions.items()],
                                     asynchronous=False)
                self.offsets.committed(positions)
            except KafkaException as exc:
                if exc.args[0].code() not in GROUP_MOVED_ON:
                    raise
                # A rebalance overtook us (noida-db starts every group afresh when it restarts). Nothing is lost:
                # the states are in the changelog with their watermarks, and whoever owns these partitions next
                # resumes from the last commit.
                log.warning("offsets not committed, the group moved on: %s", exc.args[0].str())
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()

    def _assigned(self, consumer, partitions: list[TopicPartition]) -> None:
        owned = sorted({tp.partition for tp in partitions})
        restored = self.states.restore(owned, self.config.bootstrap, self.config.group)
        for tp in consumer.committed(partitions, timeout=30):
            offset = tp.offset
            if offset == OFFSET_INVALID or offset < 0:  # nothing committed: the partition's first record
                offset = consumer.get_watermark_offsets(tp, timeout=30)[0]
            self.offsets.seed((tp.topic, tp.partition), offset)
        log.info("assigned partitions %s of %d topics (%d state records restored)", owned,
                 len({tp.topic for tp in partitions}), restored)
        if not self.ready.is_set():
            self.ready.set()
            self._on_ready()

    def _revoked(self, consumer, partitions: list[TopicPartition]) -> None:
        if self._unfinished:  # a batch or checkpoint failed half-way: hand over only what was committed before
            self._lost(consumer, partitions)
            return
        self.checkpoint()  # hand over exactly: states in the changelog, offsets committed
        self._release(partitions)

    def _lost(self, consumer, partitions: list[TopicPartition]) -> None:
        # Another worker may own them already: commit nothing, drop what was not checkpointed; it redoes that.
        self._release(partitions)

    def _release(self, partitions: list[TopicPartition]) -> None:
        self.states.drop({tp.partition for tp in partitions})
        self.offsets.forget((tp.topic, tp.partition) for tp in partitions)
        log.info("released partitions %s", sorted({tp.partition for tp in partitions}))
