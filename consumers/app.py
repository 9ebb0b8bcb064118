"""The faust application: one agent runs every projection over the channel topics and the derived topic.

The agent only decodes (through the codec), dead-letters what cannot be decoded, and hands the batch and the
customers' states to the ``ProjectionWriter`` (in a thread: ClickHouse calls block). After the rows are stored it
publishes the derived events, then saves the new states in a faust table (changelogged), and only then does
faust acknowledge the batch's offsets. A crash at any point replays the batch: rows collapse on their keys,
derived events keep their deterministic ids, and a state that already holds an event ignores it.
"""

from __future__ import annotations

import asyncio
import logging
import os

import faust

from consumers.deadletter import deadletter_headers
from projections.origin import Origin
from projections.writer import ProjectionWriter
from schemas.codec import DecodeError, decode, encode
from services.settings import DEADLETTER_MAX_BYTES, STATE_TABLE, Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings, writer: ProjectionWriter) -> faust.App:
    app = faust.App(
        settings.consumer_group,
        broker=f"kafka://{settings.kafka_bootstrap}",
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,              # the read API is our own; faust's web would bind 0.0.0.0:6066
        topic_disable_leader=True,      # no extra leader topic: we create every topic explicitly
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_ms / 1000,
        # Static membership: a restarted worker (even after kill -9) gets its partitions back at once.
        consumer_group_instance_id=settings.group_instance_id,
        datadir=str(settings.state_dir / "faust"),
        store="memory://",              # table state is rebuilt from its changelog topic at start
        # Dead letters carry the original bytes, even of a record rejected for being over the codec's limit.
        producer_max_request_size=DEADLETTER_MAX_BYTES,
    )
    sources = app.topic(*settings.channel_topics, settings.derived_topic, key_serializer="raw",
                        value_serializer="raw")
    derived_topic = app.topic(settings.derived_topic, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(settings.deadletter_topic, key_serializer="raw", value_serializer="raw")
    # One table for all stateful projections: {projection: state} per customer. A changelog message per customer
    # and batch, rather than one per projection, is most of the worker's cost.
    # key_type=bytes: faust derives the changelog serializers from the types (raw keys, JSON values); a schema
    # would set the live writes' serializers but not those recovery reads with.
    states_table = app.Table(STATE_TABLE, default=dict, partitions=settings.partitions, use_partitioner=True,
                             key_type=bytes)

    @app.agent(sources, name="projections")
    async def project_events(stream):
        try:
            await project(stream)
        except Exception:
            # Failing to dead-letter or to derive means a batch cannot be finished: stop the whole process rather
            # than leave it alive and idle. Offsets were not committed, so a restart resumes exactly there.
            log.exception("projection agent failed; the worker stops so that a restart resumes from the log")
            os._exit(70)

    # Next offset expected per partition. Our topics are neither compacted nor transactional, so consecutive
    # records of a partition have consecutive offsets; a jump means the consumer skipped records (measured with
    # faust after a kill -9 restart with a large backlog). Then the worker exits before acknowledging anything:
    # a restart resumes from the last committed offset and reads the skipped records.
    expected: dict[tuple[str, int], int] = {}

    @app.on_partitions_assigned.connect
    async def forget_positions(app, assigned, **kwargs):  # noqa: ARG001 (faust signal signature)
        expected.clear()  # a new assignment starts wherever the group's committed offsets are

    async def project(stream):
        loop = asyncio.get_running_loop()
        async for records in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            batch, messages, pending = [], [], []
            for record in records:
                msg = record.message
                origin = Origin(msg.topic, msg.partition, msg.offset)
                tp = (msg.topic, msg.partition)
                if msg.offset > expected.get(tp, msg.offset):
                    log.error("records %s:%d offsets %d..%d were skipped by the consumer; stopping so that a "
                              "restart reads them", msg.topic, msg.partition, expected[tp], msg.offset - 1)
                    os._exit(75)
                expected[tp] = max(expected.get(tp, 0), msg.offset + 1)
                try:
                    batch.append((decode(msg.value, msg.headers), origin))
                    messages.append(msg)
                except DecodeError as exc:
                    pending.append(await dead_letter(msg, origin, exc.reason))
            if batch:
                keys = {event.subject.encode() for event, _ in batch}
                before = {key: states_table[key] for key in keys if key in states_table}
                states = {p.name: {key.decode(): s[p.name] for key, s in before.items() if p.name in s}
                          for p in writer.stateful}
                written = await loop.run_in_executor(None, writer.write, batch, states)
                for i, reason in written.failed.items():
                    pending.append(await dead_letter(messages[i], batch[i][1], reason))
                for event in written.derived:
                    record = encode(event, settings.event_mode)
                    pending.append(await derived_topic.send(key=record.key, value=record.value,
                                                            headers=record.headers))
            # Dead letters and derived events are delivered before the states are saved and the offsets acked.
            await asyncio.gather(*pending)
            if batch:
                for key in keys:
                    customer = key.decode()
                    states_table[key] = {**before.get(key, {}), **{
                        name: by_customer[customer] for name, by_customer in written.states.items()
                        if customer in by_customer}}

    async def dead_letter(msg, origin: Origin, reason: str):
        """Send the record to the dead-letter topic; returns the delivery future to await."""
        log.warning("dead-lettering %s: %s", origin, reason)
        return await deadletter.send(key=msg.key, value=msg.value,
                                     headers=deadletter_headers(msg.headers, reason, origin))

    return app


class ProjectionWorker(faust.Worker):
    """A faust worker that calls ``on_ready`` once it consumes: after table recovery, when reads can be trusted."""

    def __init__(self, app: faust.App, on_ready, **kwargs):
        super().__init__(app, **kwargs)
        self._on_ready = on_ready

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        self._on_ready()
