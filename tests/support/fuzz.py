"""Deterministic generators of bad input: event objects and Kafka records that are NOT valid events.

Everything starts from valid events (``tests.support.events.journey``) and mutates them with a seeded
``random.Random``, so a seed always gives the same cases. Every case is checked while it is generated: an object
must make ``parse_event`` raise ``InvalidEvent`` and a record must make ``decode`` raise ``DecodeError``; a mutation
that happens to stay valid (pydantic's lax mode turns ``"12"`` into ``12``, a header name is matched
case-insensitively, an optional attribute may be dropped, ...) is thrown away and another one drawn.

* ``bad_objects(seed, n)``: decoded JSON values (what a JSONL line or a structured-mode record holds), each with
  its ``kind`` and the ``field`` the error must name (``data.letter_id``, ``time``; ``event`` for a non-object).
* ``bad_records(seed, n)``: Kafka records (key, value, headers) in both CloudEvents modes, each with its ``kind``:
  the object kinds encoded as records plus record-only damage (truncation, invalid UTF-8, missing, renamed or
  non-UTF-8 ``ce_`` headers, wrong content-type, tombstones, non-JSON, oversized values).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import orjson

from schemas.channels import Channel
from schemas.codec import MAX_RECORD_BYTES, STRUCTURED_CONTENT_TYPE, DecodeError, decode, encode
from schemas.envelope import Event, InvalidEvent, parse_event
from schemas.registry import BY_TYPE
from tests.support.events import T0, journey

# Object-level kinds (bad_objects); bad_records uses these too, plus RECORD_KINDS.
OBJECT_KINDS = ("wrong_type", "wrong_value", "unknown_type", "unknown_version", "missing_field", "extra_field",
                "bad_time", "empty_subject", "bad_channel", "bad_specversion", "non_object")
RECORD_KINDS = ("truncated", "bad_utf8_value", "bad_utf8_header", "missing_header", "renamed_header",
                "wrong_content_type", "tombstone", "not_json")
OVERSIZED = "oversized"
# Envelope attributes ``omnitrail emit`` fills in when they are missing: dropping one is not an error there.
EMIT_DEFAULTS = frozenset({"id", "time", "source", "specversion", "dataschema"})
REQUIRED_HEADERS = ("ce_specversion", "ce_id", "ce_source", "ce_type", "ce_subject", "ce_time", "ce_channel")

_WRONG_TYPES = ([], [1, 2], {}, {"a": 1}, True, False, 1.5, -7, 1e300, 2**63 - 1, "not-a-number", None, "")
_WRONG_VALUES = ("", " ", "x" * 201, "x" * 2_001, -1, 99, 10**18, "12.345", "-5.00", "gone", "FAX", "1e999",
                 "\u0000", "0" * 30)
_BAD_TIMES = ("2026-11-01T09:00:00", "2026-11-01", "yesterday", "", "2026-13-01T00:00:00Z",
              "2026-11-31T10:00:00+01:00", "2026-11-01T25:00:00Z", "01/11/2026 09:00", "2026-11-01T09:00:00+25:00",
              "NaN", "2026-11-01 09:00:00 CET")
_UNKNOWN_TYPES = ("omnitrail.Nope.v1", "omnitrail.MailLost.v1", "omnitrail..v1", "omnitrail.MailSent",
                  "omnitrail.MailSent.v", "omnitrail.mailsent.v1", "MailSent.v1", "com.example.MailSent.v1", "",
                  " ", "omnitrail.MailSent.v1 ", "omnitrail.MailSent.V1", "x" * 300)
_BAD_CHANNELS = ("fax", "MAIL", "Mail", "", "pigeon", "sms", "phone ", "tiktok")
_BAD_SPECVERSIONS = ("0.3", "2.0", "1", "1.0.0", "", "v1.0")
_NON_OBJECTS = ([], [{"type": "omnitrail.MailSent.v1"}], 42, 0, -1.5, "event", "", None, True, False)
_INVALID_UTF8 = (b"\xff", b"\xfe", b"\xc3\x28", b"\xa0\xa1", b"\xe2\x28\xa1", b"\xed\xa0\x80", b"\xf0\x28\x8c\xbc",
                 b"\xc0\xaf", b"\xf8\x88\x80\x80\x80", b"\x80")
_RENAMES = ("ce-{}", "ce{}", "ce_{}x", "x_{}", "ce__{}", "{}", "ce.{}", "ce_{}_")


@dataclass(frozen=True, slots=True)
class BadObject:
    """A decoded JSON value that is not a valid event; ``field`` is the path an error message must name."""

    kind: str
    field: str
    obj: object
    emit_rejects: bool = True  # False where ``omnitrail emit``'s defaults make the object valid again

    @property
    def line(self) -> bytes:
        return orjson.dumps(self.obj)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A Kafka record that must be dead-lettered; ``channel`` picks the topic it is produced to."""

    kind: str
    mode: str
    channel: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@cache
def base_events() -> tuple[Event, ...]:
    """Valid events to mutate: two customers' journeys (nine event types, six channels)."""
    return tuple(journey("fuzz-a") + journey("fuzz-b", T0 + timedelta(days=3)))


def _leaves(obj: dict, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for name, value in obj.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            out += _leaves(value, path + ".")
        else:
            out.append((path, value))
    return out


def _set(obj: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for name in parents:
        obj = obj[name]
    obj[last] = value


def _del(obj: dict, path: str) -> None:
    *parents, last = path.split(".")
    for name in parents:
        obj = obj[name]
    del obj[last]


def is_invalid_object(obj: object) -> bool:
    try:
        parse_event(obj)
    except InvalidEvent:
        return True
    return False


def is_invalid_record(value: bytes | None, headers) -> bool:
    try:
        decode(value, headers)
    except DecodeError:
        return True
    return False


def _event_dict(event: Event) -> dict:
    return event.model_dump(mode="json", exclude_none=True)


def _mutate_object(rng: random.Random, kind: str, obj: dict) -> BadObject:
    """One mutation of ``kind`` of a valid event dict (a copy); may still be valid: the caller checks."""
    obj = copy.deepcopy(obj)
    if kind == "wrong_type":
        path, _ = rng.choice([(p, v) for p, v in _leaves(obj) if p != "datacontenttype"] + [("data", None)])
        _set(obj, path, rng.choice(_WRONG_TYPES))
        return BadObject(kind, path, obj)
    if kind == "wrong_value":
        path, _ = rng.choice([(p, v) for p, v in _leaves(obj) if p.startswith("data.")])
        _set(obj, path, rng.choice(_WRONG_VALUES))
        return BadObject(kind, path, obj)
    if kind == "unknown_type":
        obj["type"] = rng.choice(_UNKNOWN_TYPES + (obj["type"].split(".")[1],))  # the short name: emit accepts it
        return BadObject(kind, "type", obj, emit_rejects="." in obj["type"] or obj["type"] not in
                         {p.name for p in BY_TYPE.values()})
    if kind == "unknown_version":
        name = obj["type"].split(".")[1]
        obj["type"] = f"omnitrail.{name}.v{rng.choice((0, 2, 9, 10, 99, -1))}"
        return BadObject(kind, "type", obj)
    if kind == "missing_field":
        path, _ = rng.choice([(p, v) for p, v in _leaves(obj) if p != "datacontenttype"] + [("data", None)])
        _del(obj, path)
        return BadObject(kind, path, obj, emit_rejects=path not in EMIT_DEFAULTS)
    if kind == "extra_field":
        where = rng.choice(("", "data."))
        if where == "data." and "address" in obj["data"] and rng.random() < 0.3:
            where = "data.address."
        path = f"{where}zz{rng.randrange(10_000)}"
        _set(obj, path, rng.choice(("x", 1, None, [], {"a": 1}, True)))
        return BadObject(kind, path, obj)
    if kind == "bad_time":
        obj["time"] = rng.choice(_BAD_TIMES)
        return BadObject(kind, "time", obj)
    if kind == "empty_subject":
        obj["subject"] = ""
        return BadObject(kind, "subject", obj)
    if kind == "bad_channel":
        obj["channel"] = rng.choice(_BAD_CHANNELS)
        return BadObject(kind, "channel", obj)
    if kind == "bad_specversion":
        obj["specversion"] = rng.choice(_BAD_SPECVERSIONS)
        return BadObject(kind, "specversion", obj)
    if kind == "non_object":
        return BadObject(kind, "event", copy.deepcopy(rng.choice(_NON_OBJECTS)))
    if kind == OVERSIZED:  # a string field blown up past the codec's record limit
        path, _ = rng.choice([(p, v) for p, v in _leaves(obj) if p.startswith("data.") and isinstance(v, str)])
        _set(obj, path, "x" * rng.randrange(MAX_RECORD_BYTES + 100, MAX_RECORD_BYTES + 30_000))
        return BadObject(kind, path, obj)
    raise ValueError(f"unknown object kind {kind!r}")


def bad_objects(seed: int, n: int, kinds: tuple[str, ...] = OBJECT_KINDS) -> list[BadObject]:
    """``n`` invalid event objects, kinds in rotation (so every kind occurs), each checked with ``parse_event``."""
    rng = random.Random(seed)
    bases = [_event_dict(e) for e in base_events()]
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        for _ in range(1000):
            case = _mutate_object(rng, kind, rng.choice(bases))
            if is_invalid_object(case.obj):
                out.append(case)
                break
        else:
            raise AssertionError(f"no invalid {kind} mutation found")
    return out


def _header_value(value) -> bytes:
    return value.encode() if isinstance(value, str) else orjson.dumps(value)


def _as_record(bad: BadObject, mode: str, key: bytes | None) -> tuple[str, bytes | None, bytes, list]:
    """Encode a (bad) event object the way a producer would in ``mode`` (a non-object: structured only)."""
    if mode == "structured" or not isinstance(bad.obj, dict):
        return "structured", key, orjson.dumps(bad.obj), [("content-type", STRUCTURED_CONTENT_TYPE.encode())]
    obj = bad.obj
    headers = [(f"ce_{name}", _header_value(value)) for name, value in obj.items()
               if name not in ("data", "datacontenttype")]
    headers.append(("content-type", _header_value(obj.get("datacontenttype", "application/json"))))
    return mode, key, orjson.dumps(obj.get("data")), headers


def _insert(value: bytes, at: int, piece: bytes) -> bytes:
    return value[:at] + piece + value[at:]


def _damage_record(rng: random.Random, kind: str, event: Event, mode: str) -> tuple[bytes | None, bytes | None, list]:
    record = encode(event, mode)
    key, value, headers = record.key, record.value, list(record.headers)
    if kind == "truncated":
        return key, value[:rng.randrange(len(value))], headers
    if kind == "bad_utf8_value":
        for _ in range(rng.randint(1, 3)):
            value = _insert(value, rng.randrange(len(value) + 1), rng.choice(_INVALID_UTF8))
        return key, value, headers
    if kind == "bad_utf8_header":
        i = rng.randrange(len(headers))
        name, raw = headers[i]
        headers[i] = (name, _insert(raw, rng.randrange(len(raw) + 1), rng.choice(_INVALID_UTF8)))
        return key, value, headers
    if kind == "missing_header":
        if rng.random() < 0.15:
            return key, value, []  # no headers at all
        drop = rng.choice(REQUIRED_HEADERS + ("content-type",))
        return key, value, [(n, v) for n, v in headers if n != drop]
    if kind == "renamed_header":
        i = rng.randrange(len(headers))
        name, raw = headers[i]
        base = name[3:] if name.startswith("ce_") else name
        headers[i] = (rng.choice(_RENAMES).format(base), raw)
        return key, value, headers
    if kind == "wrong_content_type":
        ctype = rng.choice((b"text/plain", b"application/xml", b"application/cloudevents-batch+json",
                            b"application/cloudevents+xml", b"application/octet-stream", b"json", b"text/json",
                            b"application/avro", STRUCTURED_CONTENT_TYPE.encode(), b"application/json"))
        return key, value, [(n, ctype if n == "content-type" else v) for n, v in headers]
    if kind == "tombstone":
        return key, None, headers if rng.random() < 0.5 else []
    if kind == "not_json":
        garbage = rng.choice((b"", b" ", b"\x00\x01\x02", b"hello", b"<event/>", b"{'a': 1}", b"{a:1}", b"[1,]",
                              b"NaN", b"{\"a\":1}{\"b\":2}", rng.randbytes(rng.randint(1, 64))))
        return key, garbage, headers
    raise ValueError(f"unknown record kind {kind!r}")


def bad_records(seed: int, n: int, oversized: int = 5) -> list[BadRecord]:
    """``n`` records that ``decode`` rejects, about half in each CloudEvents mode; ``oversized`` of them are over
    ``MAX_RECORD_BYTES`` (kept few: each is ~1 MB). Kinds are drawn at random (every kind occurs for n >= ~200)."""
    rng = random.Random(seed)
    events = base_events()
    kinds = list(OBJECT_KINDS + RECORD_KINDS)
    big = set(rng.sample(range(n), min(oversized, n)))
    out = []
    for i in range(n):
        kind = OVERSIZED if i in big else kinds[i % len(kinds)] if i < len(kinds) else rng.choice(kinds)
        for _ in range(1000):
            event, mode = rng.choice(events), rng.choice(("binary", "structured"))
            key = event.subject.encode() if rng.random() < 0.9 else None
            if kind in RECORD_KINDS:
                key, value, headers = _damage_record(rng, kind, event, mode)
            else:
                mode, key, value, headers = _as_record(_mutate_object(rng, kind, _event_dict(event)), mode, key)
            if is_invalid_record(value, headers):
                channel = event.channel.value if rng.random() < 0.8 else rng.choice(list(Channel)).value
                out.append(BadRecord(kind, mode, channel, key, value, headers))
                break
        else:
            raise AssertionError(f"no invalid {kind} record found")
    return out
