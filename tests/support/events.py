"""Realistic events for tests: several customers, many channels, times in order per customer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event
from schemas.registry import BY_TYPE

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
ADDRESS = ev.PostalAddress(street="Dorpsstraat", house_number="1", postcode="1234 AB", city="Utrecht")


def journey(customer: str, start: datetime = T0) -> list[Event]:
    """Ten interactions of one customer on six channels."""
    steps = [
        (Channel.MAIL, ev.MailSent(letter_id=f"{customer}-L1", address=ADDRESS)),
        (Channel.MAIL, ev.MailReturned(letter_id=f"{customer}-L1", address=ADDRESS, reason="moved")),
        (Channel.PHONE, ev.CallStarted(call_id=f"{customer}-C1", queue="general")),
        (Channel.PHONE, ev.PriceQuoted(subject="PLAN-M", amount=Decimal("20.00"))),
        (Channel.PHONE, ev.CallEnded(call_id=f"{customer}-C1", duration_seconds=300)),
        (Channel.WEB, ev.PriceQuoted(subject="PLAN-M", amount=Decimal("25.00"))),
        (Channel.EMAIL, ev.EmailReceived(message_id=f"{customer}-E1", subject="Which price is right?")),
        (Channel.WHATSAPP, ev.MessageReceived(conversation_id=f"{customer}-W1", text="Still waiting")),
        (Channel.WHATSAPP, ev.MessageSent(conversation_id=f"{customer}-W1", text="It is 20.00")),
        (Channel.SURVEY, ev.FeedbackGiven(survey_id=f"{customer}-S1", metric="csat", score=2)),
    ]
    return [Event.of(p, customer=customer, channel=c, source=f"/test/{c.value}", id=f"{customer}-{i}",
                     time=start + timedelta(minutes=7 * i), correlationid=f"{customer}-j1")
            for i, (c, p) in enumerate(steps)]


def latest() -> list[type[ev.Payload]]:
    """The newest version of every event type: what projections see (the codec upcasts older ones)."""
    newest: dict[str, type[ev.Payload]] = {}
    for p in BY_TYPE.values():
        if p.name not in newest or p.version > newest[p.name].version:
            newest[p.name] = p
    return list(newest.values())
