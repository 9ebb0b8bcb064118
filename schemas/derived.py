"""Derived events: what the projections conclude from the interaction events, published on the derived topic.

They use the same envelope, versioning and codec as interaction events. Their ``channel`` names the team that
should act (the mail room for a flagged address, the channel that gave a different answer for a violation), and
their ids are deterministic (derived from the events that caused them), so a replayed or redelivered cause yields
the same derived event, which readers collapse.
"""

from __future__ import annotations

from datetime import datetime
from pydantic import BaseModel, ConfigDict, Field

from schemas.events import Payload, PostalAddress


class AddressFlagged(Payload):
    """Letters to this address keep coming back: it is flagged undeliverable and mailings to it must stop."""

    address: PostalAddress
    address_hash: str = Field(min_length=1, max_length=64)
    returns: int = Field(ge=1)
    first_return: datetime
    last_return: datetime
    return_event_ids: list[str]


class AddressFlagCleared(Payload):
    """A flagged address was changed or confirmed, so the flag no longer holds."""

    address_hash: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=500)


class MailToFlaggedAddress(Payload):
    """A letter was sent to an address flagged undeliverable: the mail producers must stop."""

    letter_id: str = Field(min_length=1, max_length=200)
    address_hash: str = Field(min_length=1, max_length=64)


class ToldValue(BaseModel):
    """One value given to the customer on one channel."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    channel: str
    value: str
    event_id: str
    time: datetime


class ConsistencyViolated(Payload):
    """The same customer was told different values for one subject on different channels within the window."""

    kind: str = Field(description="price, offer or answer")
    subject: str
    told: list[ToldValue] = Field(min_length=2)


DERIVED: tuple[type[Payload], ...] = (AddressFlagged, AddressFlagCleared, MailToFlaggedAddress, ConsistencyViolated)

