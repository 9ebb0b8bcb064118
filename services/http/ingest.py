"""``POST /v1/events``: the CloudEvents HTTP binding (structured, binary and batch modes) onto the channel topics.

A request is all or nothing: every event is validated with the same models the worker uses and checked against
the caller's write key before any is published; a request with one bad event publishes none and answers per event
(422 invalid, 403 not allowed by the key). 202 comes only after the broker acknowledged every event.

Validation has a fast path: msgspec structs generated from those models (``schemas.wire``) vouch for a structured
or batch request whose events are all valid; anything they cannot vouch for goes to pydantic, which decides and
words the refusals. tests/services/test_ingest_fast_path.py holds the two to the same answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Mapping
from functools import partial
from typing import Literal

import msgspec
import orjson
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel

from consumers import kafka
from schemas import wire
from schemas.codec import (BATCH_CONTENT_TYPE, MAX_RECORD_BYTES, STRUCTURED_CONTENT_TYPE, DecodeError, Record, as_sent,
                           encode, from_http, http_content_type, split_batch)
from schemas.channels import Channel
from schemas.derived import DERIVED
from schemas.envelope import Event
from services.credentials import WriteKey
from services.settings import Settings

MAX_BATCH_EVENTS = 1000
MAX_REQUEST_BYTES = 5 * MAX_RECORD_BYTES
DERIVED_TYPES = {p.type_name() for p in DERIVED}


class EventResult(BaseModel):
    index: int
    id: str | None = None
    status: Literal["accepted", "invalid", "forbidden", "not delivered"]
    error: str | None = None


class IngestResult(BaseModel):
    accepted: int
    events: list[EventResult]


class IngestRefused(HTTPException):
    def __init__(self, status: int, message: str, events: list[dict]):
        super().__init__(status, message)
        self.events = events


class Ingest:
    """Publishes validated events to their channel topics and resolves each request when the broker acknowledged it.

    One producer for the whole service (it is thread-safe); a thread serves its delivery reports."""

    def __init__(self, settings: Settings, delivery_seconds: float = 10.0):
        self._bootstrap, self._mode = settings.kafka_bootstrap, settings.event_mode
        self._topic = {c: settings.topics.channel(c) for c in Channel}
        self._delivery_ms = int(delivery_seconds * 1000)
        self._producer = None  # connected on the first request: a service that only reads never talks to Kafka
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    def _connected(self):
        with self._lock:
            if self._producer is None:
                # linger.ms stays at the producer's 5 ms: librdkafka sends one partition per produce request, and a
                # request's events spread over most partitions, so lingering is what batches concurrent requests'
                # records per partition (16 clients on the ingest bench: 44-53k events/s at 2 ms, 52-61k at 5 ms).
                self._producer = kafka.producer(self._bootstrap, **{"delivery.timeout.ms": self._delivery_ms})
                self._poller = threading.Thread(target=self._poll, name="ingest-deliveries", daemon=True)
                self._poller.start()
            return self._producer

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def records(self, events: list[Event | wire.WireEvent], texts: list[bytes] | None) -> list[tuple[str, Record]]:
        """The records to publish: events that came as JSON (structured, batch) go on as they were sent (``texts``);
        binary-mode ones (always pydantic events) are encoded in the configured mode."""
        if texts is not None:
            return [(self._topic[e.channel], as_sent(e, text)) for e, text in zip(events, texts)]
        return [(self._topic[e.channel], encode(e, self._mode)) for e in events]

    async def publish(self, records: list[tuple[str, Record]]) -> list[str | None]:
        """Publish (topic, record) pairs; per record, None when the broker acknowledged it or the broker's error."""
        producer = self._connected()
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        errors: list[str | None] = [None] * len(records)
        pending = len(records)

        def report(i: int, err, _msg) -> None:  # on the poller thread; wakes the request once, when all are in
            nonlocal pending
            if err is not None:
                errors[i] = err.str()
            pending -= 1
            if pending == 0:
                loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

        for i, (topic, record) in enumerate(records):
            while True:
                try:
                    producer.produce(topic, record.value, record.key, headers=record.headers,
                                     on_delivery=partial(report, i))  # (a partial: one Python call, not two)
                    break
                except BufferError:  # the local queue is full: let deliveries drain
                    await asyncio.sleep(0.01)
        await done
        return errors

    def close(self) -> None:
        self._stop.set()
        if self._producer is not None:
            self._poller.join()
            self._producer.flush(10)


def _verdict(index: int, status: str, id: str | None = None, error: str | None = None) -> dict:
    # Plain dicts, not EventResult models (which document the shape): a model per event cost ~15% of a request.
    verdict = {"index": index, "status": status}
    if id is not None:
        verdict["id"] = id
    if error is not None:
        verdict["error"] = error
    return verdict


def admit(results: list[Event | wire.WireEvent | DecodeError], key: WriteKey) -> list[dict]:
    """Per event (an ``EventResult``): valid, not derived, and within the key's binding (channels, source prefix)."""
    out = []
    # A batch comes from one producer, so it repeats a few (channel, source) pairs: each is checked once.
    refusals: dict[tuple[Channel, str], str | None] = {}
    for i, item in enumerate(results):
        if isinstance(item, DecodeError):
            out.append(_verdict(i, "invalid", error=item.reason))
        elif item.type in DERIVED_TYPES:
            out.append(_verdict(i, "forbidden", item.id,
                                f"{item.type} is derived by omnitrail's projections and cannot be published"))
        else:
            where = (item.channel, item.source)
            if where not in refusals:
                refusals[where] = key.refusal(item.channel.value, item.source)
            if refusal := refusals[where]:
                out.append(_verdict(i, "forbidden", item.id, refusal))
            else:
                out.append(_verdict(i, "accepted", item.id))
    return out


def read_events(body: bytes, headers: Mapping[str, str]) -> tuple[list[Event | wire.WireEvent | DecodeError],
                                                                  list[bytes] | None]:
    """The request's events, each validated, and in the JSON modes (structured, batch) each event's JSON text as
    sent (None in binary mode). Raises ``DecodeError`` when the request as a whole is not CloudEvents.

    msgspec (``wire.decode_http``) vouches for a request whose events are all valid, the common case, at a fraction
    of pydantic's cost; at the first doubt pydantic (``codec.from_http``) decides, and words every refusal."""
    ctype = http_content_type(headers)
    texts = None
    if ctype == BATCH_CONTENT_TYPE:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):  # not an array: from_http says so
            texts = split_batch(body)
    elif ctype == STRUCTURED_CONTENT_TYPE:
        texts = [body]
    events = wire.decode_http(texts) if texts is not None else None
    if events is None:
        events = from_http(body, headers)
        if ctype == BATCH_CONTENT_TYPE and texts is None:
            texts = split_batch(body)  # (from_http read the body as a JSON array, so msgspec splits it too)
    return events, texts  # type: ignore[return-value]


async def read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_REQUEST_BYTES:
        raise HTTPException(413, f"request body is {declared} bytes; the limit is {MAX_REQUEST_BYTES}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_REQUEST_BYTES:
            raise HTTPException(413, f"request body is over the {MAX_REQUEST_BYTES} byte limit")
    return bytes(body)


EVENT_SCHEMA = {"$ref": "#/components/schemas/CloudEvent"}
BODY_DOC = {"requestBody": {"required": True, "content": {
    STRUCTURED_CONTENT_TYPE: {"schema": EVENT_SCHEMA},
    BATCH_CONTENT_TYPE: {"schema": {"type": "array", "items": EVENT_SCHEMA, "maxItems": MAX_BATCH_EVENTS}},
    "application/json": {"schema": {"type": "object", "description": "binary mode: the event's data; its "
                                    "attributes are ce-* headers (ce-specversion, ce-id, ce-source, ce-type, ...)"}},
}}}


def router(ingest: Ingest, write_key) -> APIRouter:
    api = APIRouter(tags=["ingest"])

    @api.post("/v1/events", status_code=202, response_model=IngestResult, response_model_exclude_none=True,
              openapi_extra=BODY_DOC,
              summary="Publish CloudEvents (structured, binary or batch mode)")
    async def post_events(request: Request, key: WriteKey = Depends(write_key)):
        body = await read_body(request)
        try:
            results, texts = read_events(body, request.headers)
        except DecodeError as exc:
            status = 415 if exc.reason.startswith("content-type") else 422
            raise HTTPException(status, exc.reason) from None
        if not results:
            raise HTTPException(422, "the batch holds no events")
        if len(results) > MAX_BATCH_EVENTS:
            raise HTTPException(422, f"a batch holds at most {MAX_BATCH_EVENTS} events, not {len(results)}")
        verdicts = admit(results, key)
        refused = [v for v in verdicts if v["status"] != "accepted"]
        if refused:
            invalid = any(v["status"] == "invalid" for v in refused)
            raise IngestRefused(422 if invalid else 403,
                                f"{len(refused)} of {len(verdicts)} event(s) refused, none published: "
                                f"{refused[0]['error']}", verdicts)
        records = ingest.records(results, texts)  # type: ignore[arg-type]
        too_big = [i for i, (_, r) in enumerate(records) if len(r.value) > MAX_RECORD_BYTES]
        if too_big:
            raise HTTPException(413, f"event(s) {too_big[:10]} exceed the {MAX_RECORD_BYTES} byte limit per event")
        errors = await ingest.publish(records)
        if any(errors):
            events = [_verdict(v["index"], "not delivered" if e else "accepted", v["id"], e)
                      for v, e in zip(verdicts, errors)]
            failed = sum(1 for e in errors if e)
            raise IngestRefused(503, f"the broker did not acknowledge {failed} of {len(events)} event(s); retry "
                                     "them (the same id is a no-op downstream)", events)
        return Response(orjson.dumps({"accepted": len(verdicts), "events": verdicts}), 202,
                        media_type="application/json")

    return api
