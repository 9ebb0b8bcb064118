"""The faust application: one agent per projection over all channel topics.

The agent only decodes (through the codec), dead-letters what cannot be decoded, and hands the batch to the
``ProjectionWriter`` (in a thread: ClickHouse calls block). faust acknowledges a batch's offsets after the loop
body returned, i.e. after the rows were stored: at-least-once delivery into idempotent tables.
"""

from __future__ import annotations

import asyncio
import logging

import faust

from projections.origin import Origin
from projections.writer import ProjectionWriter
from schemas.codec import DecodeError, decode
from services.settings import Settings
from consumers.deadletter import deadletter_headers

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
        datadir=str(settings.state_dir / "faust"),
        store="memory://",
    )
    channels = app.topic(*settings.channel_topics, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(settings.deadletter_topic, key_serializer="raw", value_serializer="raw")

    @app.agent(channels, name="timeline")
    async def project_events(stream):
        loop = asyncio.get_running_loop()
        async for records in stream.take_events(settings.batch_size, within=settings.batch_seconds):
            batch, messages = [], []
            for record in records:
                msg = record.message
                origin = Origin(msg.topic, msg.partition, msg.offset)
                try:
                    batch.append((decode(msg.value, msg.headers), origin))
                    messages.append(msg)
                except DecodeError as exc:
                    await dead_letter(msg, origin, exc.reason)
            if batch:
                failed = await loop.run_in_executor(None, writer.write, batch)
                for i, reason in failed.items():
                    await dead_letter(messages[i], batch[i][1], reason)

    async def dead_letter(msg, origin: Origin, reason: str) -> None:
        log.warning("dead-lettering %s: %s", origin, reason)
        sent = await deadletter.send(key=msg.key, value=msg.value,
                                     headers=deadletter_headers(msg.headers, reason, origin))
        await sent  # delivered before the offset can be committed

    return app
