"""The one codec: Kafka record bytes <-> ``Event``. Nothing else in omnitrail touches raw event bytes.

Both CloudEvents Kafka protocol binding modes are decoded:

* **binary**: the value is the JSON ``data``; every other attribute is a ``ce_<name>`` header (UTF-8) and the
  ``content-type`` header carries ``datacontenttype``.
* **structured**: the value is the whole event as JSON; the ``content-type`` header is
  ``application/cloudevents+json``. As the binding says, that content-type decides the mode; a record with
  neither it nor ``ce_`` headers is read as structured too.

Decoding upcasts old versions of a type to the latest (``schemas.upcasters``). Encoding uses orjson; the key is
always the customer id (``subject``).

``from_http`` reads the CloudEvents HTTP binding (structured, binary and batch modes) for the ingest service; it
validates without upcasting, so the log keeps each event as its producer sent it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Annotated, Literal, NamedTuple, Union
from urllib.parse import unquote

import msgspec
import orjson
from pydantic import Field, TypeAdapter, ValidationError

from schemas.envelope import Event, InvalidEvent, parse_event, typed_event
from schemas.registry import BY_TYPE
from schemas.upcasters import upcast

Mode = Literal["binary", "structured"]
Headers = list[tuple[str, bytes]]
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_STRUCTURED_HEADER = ("content-type", STRUCTURED_CONTENT_TYPE.encode())
MAX_RECORD_BYTES = 1_000_000  # an interaction event is small; anything bigger is a producer bug, not data


class DecodeError(ValueError):
    """A record that is not a valid event. ``reason`` says why, for the dead-letter topic."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class Record(NamedTuple):
    """What goes onto a Kafka topic for one event. (A named tuple, not a frozen dataclass: HTTP ingest makes one per
    event, and a frozen dataclass costs four times as much to build.)"""

    key: bytes
    value: bytes
    headers: Headers


# The envelope attributes that travel as ce_ headers in binary mode, in the model's order.
_HEADERS = tuple((name, f"ce_{name}") for name in ("specversion", "id", "source", "type", "subject", "time",
                                                   "dataschema", "channel", "correlationid", "causationid"))


def _text(value) -> str:
    if isinstance(value, str):  # Channel is a StrEnum: its value
        return value
    return value.isoformat().replace("+00:00", "Z")  # time, always UTC: the same text pydantic's JSON mode gives


def encode(event: Event, mode: Mode = "binary") -> Record:
    """The Kafka record for ``event`` in the given CloudEvents mode."""
    # pydantic-core's serializer writes the JSON in Rust: several times cheaper than model_dump and orjson, which
    # matters to HTTP ingest, where encoding was a quarter of a request's time.
    key = event.subject.encode()
    if mode == "structured":
        return Record(key, event.__pydantic_serializer__.to_json(event, exclude_none=True),
                      [_STRUCTURED_HEADER])
    headers = [(header, _text(value).encode()) for name, header in _HEADERS if (value := getattr(event, name)) is not None]
    headers.append(("content-type", event.datacontenttype.encode()))
    return Record(key, event.data.__pydantic_serializer__.to_json(event.data), headers)


def as_sent(event: Event, raw: bytes) -> Record:
    """The structured-mode record of ``event`` from the JSON its producer sent (``raw``, already validated as
    ``event``): the log keeps the event as it was sent, and nothing is serialised again."""
    return Record(event.subject.encode(), raw, [_STRUCTURED_HEADER])


def split_batch(body: bytes) -> list[bytes]:
    """The JSON text of each event of a batch body (a JSON array), without parsing the events."""
    return [bytes(raw) for raw in _RAW_LIST.decode(body)]


def _header_dict(headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, str] = {}
    for name, raw in items:
        name = name.lower()
        try:
            out[name] = (raw or b"").decode() if isinstance(raw, (bytes, bytearray)) else str(raw or "")
        except UnicodeDecodeError:
            if name.startswith("ce_") or name == "content-type":
                raise DecodeError(f"header {name!r} is not valid UTF-8") from None
            # another system's binary header (tracing, say) is none of the event's business
    return out


def decode(value: bytes | None,
           headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None = None) -> Event:
    """The event in a Kafka record (either mode), or ``DecodeError`` with the reason."""
    if value is None:
        raise DecodeError("record has no value (tombstone)")
    if len(value) > MAX_RECORD_BYTES:
        raise DecodeError(f"record value is {len(value)} bytes, over the {MAX_RECORD_BYTES} byte limit")
    hdrs = _header_dict(headers)
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"value is not valid UTF-8 JSON: {exc}") from None
    ctype = hdrs.get("content-type", "").split(";")[0].strip()
    if ctype.startswith("application/cloudevents") or (not ctype and "ce_specversion" not in hdrs):
        if ctype not in ("", STRUCTURED_CONTENT_TYPE):
            raise DecodeError(f"structured-mode content-type must be {STRUCTURED_CONTENT_TYPE}, got {ctype!r}")
        obj = body
    elif "ce_specversion" in hdrs:
        if ctype not in ("", "application/json"):
            raise DecodeError(f"binary-mode content-type must be application/json, got {ctype!r}")
        obj = {name[3:]: text for name, text in hdrs.items() if name.startswith("ce_")}
        obj["datacontenttype"] = ctype or "application/json"
        obj["data"] = body
    else:
        raise DecodeError(f"record has no ce_specversion header and content-type {ctype!r} "
                          f"is not {STRUCTURED_CONTENT_TYPE}")
    try:
        return upcast(parse_event(obj))
    except InvalidEvent as exc:
        raise DecodeError(f"invalid event: {exc}") from None


@cache
def _batch_adapter() -> TypeAdapter:
    """A whole batch in one validation: the envelope models of every registered type, told apart by ``type``."""
    models = tuple(typed_event(name) for name in BY_TYPE)
    return TypeAdapter(list[Annotated[Union[models], Field(discriminator="type")]])  # noqa: UP007


def http_content_type(headers: Mapping[str, str]) -> str:
    """The media type of an HTTP request's content-type (lower case, without parameters), whatever the header
    name's case."""
    content_type = next((value for name, value in headers.items() if name.lower() == "content-type"), "")
    return content_type.split(";")[0].strip().lower()


def from_http(body: bytes, headers: Mapping[str, str]) -> list[Event | DecodeError]:
    """The events of one HTTP request in any CloudEvents HTTP mode, each validated on its own (a batch answers per
    event). Raises ``DecodeError`` when the request as a whole is not CloudEvents (its content-type, its JSON)."""
    hdrs = {name.lower(): value for name, value in headers.items()}
    ctype = http_content_type(hdrs)
    if ctype == BATCH_CONTENT_TYPE:
        try:  # the common case, a valid batch, in one pass; any problem: per event below, for per-event reasons
            return list(_batch_adapter().validate_json(body))
        except (ValidationError, OverflowError):
            pass
    try:
        body_json = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not valid UTF-8 JSON: {exc}") from None
    if ctype == BATCH_CONTENT_TYPE:
        if not isinstance(body_json, list):
            raise DecodeError(f"a {BATCH_CONTENT_TYPE} body must be a JSON array of events")
        objects = body_json
    elif ctype == STRUCTURED_CONTENT_TYPE:
        objects = [body_json]
    elif "ce-specversion" in hdrs:
        if ctype not in ("", "application/json"):
            raise DecodeError(f"binary-mode content-type must be application/json, got {ctype!r}")
        # The binding percent-encodes header values (space, '"', '%' and non-ASCII).
        obj: dict = {name[3:]: unquote(value) for name, value in hdrs.items() if name.startswith("ce-")}
        obj["datacontenttype"] = ctype or "application/json"
        obj["data"] = body_json
        objects = [obj]
    else:
        raise DecodeError(f"content-type must be {STRUCTURED_CONTENT_TYPE} (one event), {BATCH_CONTENT_TYPE} "
                          f"(a batch) or application/json with ce-* headers (binary mode), not {ctype or 'none'!r}")
    out: list[Event | DecodeError] = []
    for obj in objects:
        try:
            out.append(parse_event(obj))
        except InvalidEvent as exc:
            out.append(DecodeError(f"invalid event: {exc}"))
    return out
