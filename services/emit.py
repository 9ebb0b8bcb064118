"""Turns what a person or a file says into events: fills the envelope defaults, validates, names bad fields.

An input object is a CloudEvent whose envelope attributes may be left out: ``type`` may be a short name
(``MailReturned``: its latest version), ``customer`` may stand for ``subject``, and ``id`` (a new UUID),
``time`` (now), ``source`` (settings), ``dataschema`` and ``specversion`` get defaults. Derived event types
(``AddressFlagged``, ...) are refused: only the projection worker publishes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import orjson

from schemas.derived import DERIVED
from schemas.envelope import Event, InvalidEvent, parse_event, schema_urn
from schemas.registry import payload_for


def event_from_input(obj: object, source: str) -> Event:
    if not isinstance(obj, dict):
        raise InvalidEvent([f"expected a JSON object, got {type(obj).__name__}"])
    obj = dict(obj)
    if "customer" in obj:
        customer = obj.pop("customer")
        if obj.setdefault("subject", customer) != customer:
            raise InvalidEvent([f"customer: {customer!r} differs from subject {obj['subject']!r}; give one"])
    if isinstance(obj.get("type"), str):
        try:
            payload = payload_for(obj["type"])
        except KeyError as exc:
            raise InvalidEvent([f"type: {exc.args[0]}"]) from None
        if payload in DERIVED:
            raise InvalidEvent([f"type: {payload.name} is a derived event: only the projection worker publishes "
                                "it, from what the projections conclude"])
        obj["type"] = payload.type_name()
        obj.setdefault("dataschema", schema_urn(obj["type"]))
    obj.setdefault("specversion", "1.0")
    obj.setdefault("id", str(uuid.uuid4()))
    obj.setdefault("time", datetime.now(UTC).isoformat())
    obj.setdefault("source", source)
    return parse_event(obj)


def events_from_jsonl(lines: Iterable[str | bytes], source: str) -> tuple[list[Event], list[str]]:
    """All events of a JSONL text, and a message for each bad line (``line 3: data.reason: ...``)."""
    events, errors = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(event_from_input(orjson.loads(line), source))
        except orjson.JSONDecodeError as exc:
            errors.append(f"line {number}: not valid JSON: {exc}")
        except InvalidEvent as exc:
            errors.extend(f"line {number}: {problem}" for problem in exc.problems)
    return events, errors
