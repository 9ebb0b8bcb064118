"""The demo stories from our domain, as events. Ids and times are fixed, so publishing twice changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event

START = datetime(2026, 10, 5, 9, 0, tzinfo=timezone.utc)
OLD_ADDRESS = ev.PostalAddress(street="Kerkstraat", house_number="12", postcode="1017 GC", city="Amsterdam")
NEW_ADDRESS = ev.PostalAddress(street="Prinsengracht", house_number="263", postcode="1016 GV", city="Amsterdam")
RETURNED_MAIL_CUSTOMER = "cust-1001"
HOTEL_CUSTOMER = "cust-2002"
TRANSFERRED_CUSTOMER = "cust-3003"
CUSTOMERS = (RETURNED_MAIL_CUSTOMER, HOTEL_CUSTOMER, TRANSFERRED_CUSTOMER)


def _story(customer: str, steps: list[tuple[timedelta, Channel, ev.Payload]], journey: str) -> list[Event]:
    return [Event.of(payload, customer=customer, channel=channel, source=f"/demo/{channel.value}",
                     id=f"demo-{customer}-{n}", time=START + offset, correlationid=journey)
            for n, (offset, channel, payload) in enumerate(steps, 1)]


def returned_mail() -> list[Event]:
    """Letters keep going to an old address and come back; the customer then asks webcare on Twitter."""
    d, h = timedelta(days=1), timedelta(hours=1)
    letters = []
    for i, day in enumerate((0, 14, 28), 1):
        letters += [(day * d, Channel.MAIL, ev.MailSent(letter_id=f"L-{i}", address=OLD_ADDRESS,
                                                        subject=f"Annual statement reminder {i}")),
                    ((day + 3) * d, Channel.MAIL, ev.MailReturned(letter_id=f"L-{i}", address=OLD_ADDRESS,
                                                                  reason=ev.ReturnReason.ADDRESSEE_UNKNOWN))]
    tweet = 33 * d
    return _story(RETURNED_MAIL_CUSTOMER, letters + [
        (tweet, Channel.TWITTER, ev.MessageReceived(
            conversation_id="tw-881", handle="@jansen_m",
            text="Your letters keep going to my old address although I moved months ago. Why?")),
        (tweet + 2 * h, Channel.TWITTER, ev.MessageSent(
            conversation_id="tw-881", agent="webcare-anna", text="Sorry! Please DM us your new address.")),
        # Webcare links the handle to the customer: from now on any agent finds them by it.
        (tweet + 3 * h, Channel.TWITTER, ev.IdentityLinked(kind="twitter", value="@jansen_m")),
        (tweet + 10 * h, Channel.WEB, ev.AddressChanged(address=NEW_ADDRESS, previous=OLD_ADDRESS)),
    ], journey="journey-address-1001")


def hotel_booking() -> list[Event]:
    """A hotel booking with a discount moves phone -> web portal -> email -> travel agency."""
    d, m = timedelta(days=1), timedelta(minutes=1)
    return _story(HOTEL_CUSTOMER, [
        (2 * d, Channel.PHONE, ev.CallStarted(call_id="C-77", queue="reservations")),
        (2 * d + 3 * m, Channel.PHONE, ev.PriceQuoted(subject="HOTEL-AMS-DBL-3N", amount=Decimal("389.00"))),
        (2 * d + 6 * m, Channel.PHONE, ev.CallEnded(call_id="C-77", duration_seconds=360, resolved=False)),
        (2 * d + 40 * m, Channel.WEB, ev.WebPageViewed(session_id="s-5", url="https://portal.example/hotels/ams")),
        (2 * d + 45 * m, Channel.WEB, ev.PriceQuoted(subject="HOTEL-AMS-DBL-3N", amount=Decimal("429.00"))),
        (2 * d + 50 * m, Channel.WEB, ev.BookingMade(booking_id="B-9", product="HOTEL-AMS-DBL-3N",
                                                     amount=Decimal("429.00"), discount_code="AUTUMN15")),
        (3 * d, Channel.EMAIL, ev.EmailReceived(message_id="E-1", subject="Discount AUTUMN15 not applied")),
        (4 * d, Channel.EMAIL, ev.EmailSent(message_id="E-2", in_reply_to="E-1",
                                            subject="Re: Discount AUTUMN15 not applied")),
        (5 * d, Channel.PARTNER, ev.BookingChanged(booking_id="B-9",
                                                   change="rebooked by travel agency with discount applied")),
    ], journey="journey-hotel-2002")


def transferred_call() -> list[Event]:
    """A caller transferred three times, repeating the story each time."""
    m = timedelta(minutes=1)
    t = 10 * timedelta(days=1)
    return _story(TRANSFERRED_CUSTOMER, [
        (t, Channel.PHONE, ev.CaseOpened(case_id="K-5", intent="billing-dispute")),
        (t, Channel.PHONE, ev.CallStarted(call_id="C-90", queue="general")),
        (t + 4 * m, Channel.PHONE, ev.CallTransferredV2(
            call_id="C-90", from_target="general", to_target="billing", target_kind="queue")),
        (t + 9 * m, Channel.PHONE, ev.CallTransferredV2(
            call_id="C-90", from_target="billing", to_target="payments", target_kind="queue")),
        (t + 15 * m, Channel.PHONE, ev.CallTransferredV2(
            call_id="C-90", from_target="payments", to_target="billing-2", target_kind="queue")),
        (t + 22 * m, Channel.PHONE, ev.CallEnded(call_id="C-90", duration_seconds=1320, resolved=True)),
        (t + 23 * m, Channel.PHONE, ev.CaseResolved(case_id="K-5", resolution="credit note issued")),
        (t + 2 * timedelta(hours=1), Channel.SURVEY, ev.FeedbackGiven(
            survey_id="S-1", metric=ev.FeedbackMetric.CES, score=6, about_channel="phone",
            comment="Had to tell my story three times")),
    ], journey="journey-billing-3003")


def all_events() -> list[Event]:
    return returned_mail() + hotel_booking() + transferred_call()
