"""The CloudEvents 1.0 envelope every interaction event travels in.

Attributes (all required unless noted):

* ``id``: unique per ``source``; (source, id) identifies an event, so a re-delivery or re-emission of the same
  event is recognised downstream and projected once.
* ``source``: URI-reference of the producer, e.g. ``/channels/phone/genesys``.
* ``type``: ``omnitrail.<EventName>.v<version>`` (see ``schemas.events``); decides the payload model.
* ``specversion``: always ``1.0``.
* ``time``: when it happened (RFC 3339, timezone required); the timeline is ordered by it.
* ``subject``: the customer id; also the Kafka message key, so one customer's events stay in order.
* ``datacontenttype``: always ``application/json``.
* ``dataschema`` (optional): URI of the payload's JSON Schema, ``urn:omnitrail:schema:<type>``.

Extensions (lowercase alphanumeric, as CloudEvents requires):

* ``channel``: the ``schemas.channels.Channel`` the interaction happened on; picks the Kafka topic.
* ``correlationid`` (optional): the journey or case this interaction belongs to, when the producer knows it.
* ``causationid`` (optional): the id of the event that caused this one (e.g. a reply to a message).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal

from functools import cache

from pydantic import (AwareDatetime, BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, create_model,
                      field_validator)

from schemas.channels import Channel
from schemas.events import Payload
from schemas.registry import payload_for

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"


def schema_urn(type_name: str) -> str:
    return f"urn:omnitrail:schema:{type_name}"


class Event(BaseModel):
    """One interaction event: a CloudEvents 1.0 envelope around a typed, versioned payload."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    specversion: Literal["1.0"] = SPECVERSION
    id: str = Field(min_length=1, max_length=200)
    source: str = Field(min_length=1, max_length=500)
    type: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=200, description="Customer id; the Kafka message key.")
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = CONTENT_TYPE
    dataschema: str | None = Field(default=None, max_length=500)
    channel: Channel
    correlationid: str | None = Field(default=None, min_length=1, max_length=200)
    causationid: str | None = Field(default=None, min_length=1, max_length=200)
    data: SerializeAsAny[Payload]

    @field_validator("time")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        # Stored and sent in UTC: an offset with seconds (historic zones) would not survive RFC 3339 text.
        return v.astimezone(UTC)

    @property
    def name(self) -> str:
        """The event's name without namespace and version, e.g. ``MailReturned``."""
        return type(self.data).name

    @classmethod
    def of(cls, data: Payload, *, customer: str, channel: Channel | str, source: str, id: str | None = None,
           time: datetime | None = None, correlationid: str | None = None,
           causationid: str | None = None) -> Event:
        """Build an event around a payload, filling type, dataschema, a fresh id and the current time."""
        return typed_event(data.type_name())(
                   id=id or str(uuid.uuid4()), source=source, type=data.type_name(), subject=customer,
                   time=time or datetime.now(UTC), dataschema=schema_urn(data.type_name()), channel=channel,
                   correlationid=correlationid, causationid=causationid, data=data)


class InvalidEvent(ValueError):
    """Input that is not a valid event; ``problems`` names each bad field (``data.reason: Input should be ...``)."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@cache
def typed_event(type_name: str) -> type[Event]:
    """The envelope model whose ``type`` is fixed to ``type_name`` and whose ``data`` is that type's payload."""
    payload = payload_for(type_name)
    if type_name != payload.type_name():
        raise KeyError(f"type must be a full versioned type such as {payload.type_name()!r}, not {type_name!r}")
    return create_model(f"{payload.name}V{payload.version}Event", __base__=Event,
                        type=(Literal[type_name], ...), data=(payload, ...))


def parse_event(obj: object) -> Event:
    """Validate a decoded JSON object as an event of its declared type, or raise ``InvalidEvent``."""
    if not isinstance(obj, dict):
        raise InvalidEvent([f"event: expected a JSON object, got {type(obj).__name__}"])
    type_name = obj.get("type")
    if not isinstance(type_name, str):
        raise InvalidEvent(["type: missing or not a string"])
    try:
        model = typed_event(type_name)
    except KeyError as exc:
        raise InvalidEvent([f"type: {exc.args[0]}"]) from None
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise invalid(exc) from None
    except OverflowError as exc:  # a time that leaves the calendar when converted to UTC (year 1 at +01:00)
        raise InvalidEvent([f"OverflowError: {exc}"]) from None


def invalid(exc: ValidationError) -> InvalidEvent:
    """pydantic's errors as ``InvalidEvent`` problems, each naming its field."""
    return InvalidEvent([f"{'.'.join(map(str, e['loc'])) or 'event'}: {e['msg']}" for e in exc.errors()])
