"""Versioned payload models for the interaction events the channels emit.

Each model is the ``data`` of one CloudEvents type ``omnitrail.<Name>.v<version>``. Names are in the past tense:
an event records something that happened and is never changed. A published version is frozen: a breaking change
is a new model with a higher ``version`` plus a pure upcaster, and the JSON Schema in ``schemas/json/`` of the
old version stays as it is (``tests/schemas/test_published_schemas.py`` fails on drift).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Id = Field(min_length=1, max_length=200)
Text = Field(default="", max_length=10_000)


class Payload(BaseModel):
    """Base of every event payload: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: ClassVar[str]
    version: ClassVar[int] = 1

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if "name" not in cls.__dict__:  # a later version sets the name it shares with the first one
            cls.name = cls.__name__

    @classmethod
    def type_name(cls) -> str:
        """The CloudEvents ``type`` of this payload, e.g. ``omnitrail.MailReturned.v1``."""
        return f"omnitrail.{cls.name}.v{cls.version}"


class PostalAddress(BaseModel):
    """A postal address as the mail producers know it."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    street: str = Field(min_length=1, max_length=200)
    house_number: str = Field(min_length=1, max_length=20)
    postcode: str = Field(min_length=1, max_length=20)
    city: str = Field(min_length=1, max_length=100)
    country: str = Field(default="NL", min_length=2, max_length=2, description="ISO 3166-1 alpha-2")

    def one_line(self) -> str:
        return f"{self.street} {self.house_number}, {self.postcode} {self.city}, {self.country}"


class ReturnReason(StrEnum):
    """Why the post office returned a letter."""

    ADDRESSEE_UNKNOWN = "addressee_unknown"
    MOVED = "moved"
    ADDRESS_INCOMPLETE = "address_incomplete"
    REFUSED = "refused"
    DECEASED = "deceased"
    OTHER = "other"


class FeedbackMetric(StrEnum):
    NPS = "nps"    # 0..10, "would you recommend us"
    CES = "ces"    # 1..7, customer effort
    CSAT = "csat"  # 1..5, satisfaction


FEEDBACK_SCALE: dict[FeedbackMetric, tuple[int, int]] = {
    FeedbackMetric.NPS: (0, 10), FeedbackMetric.CES: (1, 7), FeedbackMetric.CSAT: (1, 5)}


# --- mail -------------------------------------------------------------------------------------------------------
class MailSent(Payload):
    """A letter was sent to the customer's postal address."""

    letter_id: str = Id
    address: PostalAddress
    subject: str = Text


class MailReturned(Payload):
    """A letter came back undeliverable."""

    letter_id: str = Id
    address: PostalAddress
    reason: ReturnReason
    note: str = Text


# --- phone ------------------------------------------------------------------------------------------------------
class CallStarted(Payload):
    """A phone call began (inbound: the customer called; outbound: we called)."""

    call_id: str = Id
    direction: Literal["inbound", "outbound"] = "inbound"
    queue: str = ""
    agent: str = ""


class CallTransferred(Payload):
    """A call was handed to another queue or agent: the customer may have to repeat the story."""

    call_id: str = Id
    from_queue: str = ""
    to_queue: str = Field(min_length=1, max_length=200)
    reason: str = Text


class CallTransferredV2(Payload):
    """A call was handed on: to a queue, an agent, or outside (a partner, a back office).

    Version 2 of ``CallTransferred``: v1 could only name queues (``from_queue``/``to_queue``); v2 names the
    targets and says what kind of target received the call. ``schemas.upcasters`` turns v1 into v2.
    """

    name: ClassVar[str] = "CallTransferred"
    version: ClassVar[int] = 2
    call_id: str = Id
    from_target: str = Field(default="", max_length=200)
    to_target: str = Field(min_length=1, max_length=200)
    target_kind: Literal["queue", "agent", "external"]
    reason: str = Text


class CallEnded(Payload):
    """A phone call ended."""

    call_id: str = Id
    duration_seconds: int = Field(ge=0)
    resolved: bool = False


# --- email ------------------------------------------------------------------------------------------------------
class EmailReceived(Payload):
    """The customer sent an email."""

    message_id: str = Id
    subject: str = Text
    body: str = Text


class EmailSent(Payload):
    """We sent the customer an email, possibly in reply to one of theirs."""

    message_id: str = Id
    in_reply_to: str | None = None
    subject: str = Text
    body: str = Text


# --- messaging: web chat, WhatsApp, Twitter/X and Facebook webcare ----------------------------------------------
class MessageReceived(Payload):
    """The customer wrote in a conversation on a messaging or webcare channel (the envelope says which)."""

    conversation_id: str = Id
    text: str = Text
    handle: str = Field(default="", max_length=200, description="The customer's handle on the platform, if any.")


class MessageSent(Payload):
    """An agent or bot answered in a conversation on a messaging or webcare channel."""

    conversation_id: str = Id
    text: str = Text
    agent: str = ""


# --- store and web ----------------------------------------------------------------------------------------------
class StoreVisited(Payload):
    """The customer visited a shop or branch."""

    store_id: str = Id
    purpose: str = Text


class WebPageViewed(Payload):
    """The customer viewed a page of the website or a portal."""

    session_id: str = Id
    url: str = Field(min_length=1, max_length=2_000)


class BookingMade(Payload):
    """The customer booked or bought something (a hotel room, a product)."""

    booking_id: str = Id
    product: str = Id
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    discount_code: str = ""


class BookingChanged(Payload):
    """A booking was changed (dates, discount, cancellation)."""

    booking_id: str = Id
    change: str = Field(min_length=1, max_length=2_000)


# --- feedback -----------------------------------------------------------------------------------------------------
class FeedbackGiven(Payload):
    """The customer answered a survey about a contact on some channel."""

    survey_id: str = Id
    metric: FeedbackMetric
    score: int = Field(description="On the metric's scale: NPS 0..10, CES 1..7, CSAT 1..5.")
    about_channel: str | None = Field(default=None, description="The channel the feedback is about, if known.")
    comment: str = Text

    @field_validator("score")
    @classmethod
    def _score_on_scale(cls, score: int, info: ValidationInfo) -> int:
        metric = info.data.get("metric")  # absent when the metric itself was invalid
        if metric is not None:
            low, high = FEEDBACK_SCALE[metric]
            if not low <= score <= high:
                raise ValueError(f"score {score} is outside the {metric.value} scale {low}..{high}")
        return score


# --- what the customer was told -----------------------------------------------------------------------------------
class PriceQuoted(Payload):
    """A price for a product or offer was quoted to the customer."""

    subject: str = Field(min_length=1, max_length=200, description="Product or offer code the price is for.")
    amount: Decimal = Field(ge=0, max_digits=14, decimal_places=2)
    currency: str = Field(default="EUR", min_length=3, max_length=3)


class OfferMade(Payload):
    """An offer (discount, deal) was made to the customer."""

    subject: str = Field(min_length=1, max_length=200, description="Offer code.")
    terms: str = Field(min_length=1, max_length=2_000)


class AnswerGiven(Payload):
    """An answer to a question was given to the customer."""

    subject: str = Field(min_length=1, max_length=200, description="Question topic.")
    answer: str = Field(min_length=1, max_length=10_000)


# --- cases and identity -------------------------------------------------------------------------------------------
class CaseOpened(Payload):
    """A case (a customer need to handle) was opened."""

    case_id: str = Id
    intent: str = Field(min_length=1, max_length=200)
    description: str = Text


class CaseResolved(Payload):
    """A case was resolved."""

    case_id: str = Id
    resolution: str = Text


class AddressChanged(Payload):
    """The customer's postal address was changed, or confirmed when ``address`` equals the previous one."""

    address: PostalAddress
    previous: PostalAddress | None = None


IdentityKind = Literal["phone", "email", "twitter", "facebook", "whatsapp", "loyalty_card", "other"]


class IdentityLinked(Payload):
    """An identifier on some channel (phone number, e-mail, handle) was linked to the customer."""

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=500)


class IdentityUnlinked(Payload):
    """An identifier was unlinked from the customer: it no longer identifies them (a wrong link, a number that
    changed hands). Linking it to another customer needs no unlink first: the newest link wins."""

    kind: IdentityKind
    value: str = Field(min_length=1, max_length=500)


PAYLOADS: tuple[type[Payload], ...] = (
    MailSent, MailReturned, CallStarted, CallTransferred, CallTransferredV2, CallEnded, EmailReceived, EmailSent,
    MessageReceived, MessageSent, StoreVisited, WebPageViewed, BookingMade, BookingChanged, FeedbackGiven,
    PriceQuoted, OfferMade, AnswerGiven, CaseOpened, CaseResolved, AddressChanged, IdentityLinked,
    IdentityUnlinked,
)
