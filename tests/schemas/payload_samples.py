"""One valid, fully populated example payload per event type, shared by the schema and codec tests.

Not a test module (no ``test_`` prefix); imported as ``tests.schemas.payload_samples``.
"""

from __future__ import annotations

from decimal import Decimal

from schemas import events as ev

HOME = ev.PostalAddress(street="Damrak", house_number="1a", postcode="1012 LG", city="Amsterdam")
ELSEWHERE = ev.PostalAddress(street="Coolsingel", house_number="40", postcode="3011 AD", city="Rotterdam",
                             country="NL")

SAMPLES: dict[type[ev.Payload], ev.Payload] = {
    ev.MailSent: ev.MailSent(letter_id="L-1", address=HOME, subject="Your new card"),
    ev.MailReturned: ev.MailReturned(letter_id="L-1", address=HOME, reason=ev.ReturnReason.MOVED, note="stamp"),
    ev.CallStarted: ev.CallStarted(call_id="C-1", direction="outbound", queue="billing", agent="ann"),
    ev.CallTransferred: ev.CallTransferred(call_id="C-1", from_queue="billing", to_queue="fraud", reason="odd"),
    ev.CallTransferredV2: ev.CallTransferredV2(call_id="C-1", from_target="billing", to_target="fraud-desk",
                                               target_kind="agent", reason="odd"),
    ev.CallEnded: ev.CallEnded(call_id="C-1", duration_seconds=312, resolved=True),
    ev.EmailReceived: ev.EmailReceived(message_id="<m1@x>", subject="Refund?", body="Where is my refund?"),
    ev.EmailSent: ev.EmailSent(message_id="<m2@x>", in_reply_to="<m1@x>", subject="Re: Refund?", body="Soon."),
    ev.MessageReceived: ev.MessageReceived(conversation_id="W-1", text="hi there", handle="@piet"),
    ev.MessageSent: ev.MessageSent(conversation_id="W-1", text="hello!", agent="bot"),
    ev.StoreVisited: ev.StoreVisited(store_id="S-12", purpose="return a kettle"),
    ev.WebPageViewed: ev.WebPageViewed(session_id="sess-1", url="https://example.com/help?q=refund"),
    ev.BookingMade: ev.BookingMade(booking_id="B-1", product="room-double", amount=Decimal("129.50"),
                                   currency="EUR", discount_code="SPRING"),
    ev.BookingChanged: ev.BookingChanged(booking_id="B-1", change="dates moved to 3-5 May"),
    ev.FeedbackGiven: ev.FeedbackGiven(survey_id="Q-1", metric=ev.FeedbackMetric.CES, score=6,
                                       about_channel="phone", comment="took long"),
    ev.PriceQuoted: ev.PriceQuoted(subject="room-double", amount=Decimal("139.00"), currency="USD"),
    ev.OfferMade: ev.OfferMade(subject="SPRING", terms="10% off stays in May"),
    ev.AnswerGiven: ev.AnswerGiven(subject="refunds", answer="Within 14 days."),
    ev.CaseOpened: ev.CaseOpened(case_id="K-1", intent="refund", description="customer wants money back"),
    ev.CaseResolved: ev.CaseResolved(case_id="K-1", resolution="refunded"),
    ev.AddressChanged: ev.AddressChanged(address=ELSEWHERE, previous=HOME),
    ev.IdentityLinked: ev.IdentityLinked(kind="whatsapp", value="+31612345678"),
    ev.IdentityUnlinked: ev.IdentityUnlinked(kind="twitter", value="@piet"),
}

# The channel each sample plausibly happened on (any channel is valid; this just keeps the fixtures readable).
CHANNEL_OF: dict[type[ev.Payload], str] = {
    ev.MailSent: "mail", ev.MailReturned: "mail", ev.CallStarted: "phone", ev.CallTransferred: "phone", ev.CallTransferredV2: "phone",
    ev.CallEnded: "phone", ev.EmailReceived: "email", ev.EmailSent: "email", ev.MessageReceived: "whatsapp",
    ev.MessageSent: "webchat", ev.StoreVisited: "store", ev.WebPageViewed: "web", ev.BookingMade: "web",
    ev.BookingChanged: "partner", ev.FeedbackGiven: "survey", ev.PriceQuoted: "phone", ev.OfferMade: "email",
    ev.AnswerGiven: "twitter", ev.CaseOpened: "facebook", ev.CaseResolved: "phone", ev.AddressChanged: "web",
    ev.IdentityLinked: "whatsapp", ev.IdentityUnlinked: "twitter",
}
