"""The benchmarks' traffic: realistic validated events, and who they are about.

``build_events`` makes ``n`` events of 21 types over all 11 channels (fixed seed, so every run sees the same
traffic); by default each event is about a random one of ``customers`` customers. ``who`` picks the customer of
every event instead, for the shaped workloads of ``bench.run``: every customer at least once (``cover_all``), or
a few customers with long histories mixed into normal background traffic (``long_histories``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ADDRESSES = [ev.PostalAddress(street=s, house_number=str(n), postcode=p, city=c) for s, n, p, c in [
    ("Kerkstraat", 12, "1017 GC", "Amsterdam"), ("Prinsengracht", 263, "1016 GV", "Amsterdam"),
    ("Oudegracht", 158, "3511 AZ", "Utrecht"), ("Coolsingel", 40, "3011 AD", "Rotterdam"),
    ("Grote Markt", 3, "9711 LV", "Groningen")]]
QUEUES = ("general", "billing", "payments", "reservations", "retention")
PAGES = ("hotels/ams", "account", "invoices", "faq/moving", "offers/autumn", "bookings")
MESSAGING = (Channel.WEBCHAT, Channel.WHATSAPP, Channel.TWITTER, Channel.FACEBOOK)
TEXTS = ("Where is my refund?", "My letters go to my old address.", "Can I change my booking?", "Thanks, solved!")
INTERACTIONS = [  # (weight, channel or channels to pick from, payload factory(rng, event number))
    (8, Channel.WEB, lambda r, i: ev.WebPageViewed(session_id=f"s-{i // 4}",
                                                   url=f"https://portal.example/{r.choice(PAGES)}")),
    (4, Channel.PHONE, lambda r, i: ev.CallStarted(call_id=f"C-{i}", queue=r.choice(QUEUES))),
    (2, Channel.PHONE, lambda r, i: ev.CallTransferred(call_id=f"C-{i - 1}", from_queue=r.choice(QUEUES),
                                                       to_queue=r.choice(QUEUES), reason="needs a specialist")),
    (4, Channel.PHONE, lambda r, i: ev.CallEnded(call_id=f"C-{i - 2}", duration_seconds=r.randint(20, 2400),
                                                 resolved=r.random() < 0.7)),
    (3, Channel.EMAIL, lambda r, i: ev.EmailReceived(message_id=f"E-{i}", subject=r.choice(TEXTS), body="...")),
    (3, Channel.EMAIL, lambda r, i: ev.EmailSent(message_id=f"E-{i}", in_reply_to=f"E-{i - 1}",
                                                 subject="Re: your question", body="Dear customer, ...")),
    (5, MESSAGING, lambda r, i: ev.MessageReceived(conversation_id=f"conv-{i // 6}", text=r.choice(TEXTS),
                                                   handle=f"@user{i % 997}")),
    (5, MESSAGING, lambda r, i: ev.MessageSent(conversation_id=f"conv-{i // 6}", agent="webcare-anna",
                                               text="Sorry to hear that! Could you DM us your customer number?")),
    (3, Channel.MAIL, lambda r, i: ev.MailSent(letter_id=f"L-{i}", address=r.choice(ADDRESSES),
                                               subject="Annual statement")),
    (1, Channel.MAIL, lambda r, i: ev.MailReturned(letter_id=f"L-{i - 1}", address=r.choice(ADDRESSES),
                                                   reason=r.choice(list(ev.ReturnReason)))),
    (2, Channel.STORE, lambda r, i: ev.StoreVisited(store_id=f"store-{i % 40}", purpose="new phone contract")),
    (2, Channel.WEB, lambda r, i: ev.BookingMade(booking_id=f"B-{i}", product="HOTEL-AMS-DBL-3N",
                                                 amount=Decimal(r.randint(9000, 60000)) / 100,
                                                 discount_code=r.choice(("", "", "AUTUMN15")))),
    (1, Channel.PARTNER, lambda r, i: ev.BookingChanged(booking_id=f"B-{i - 3}", change="rebooked by agency")),
    (2, Channel.SURVEY, lambda r, i: ev.FeedbackGiven(survey_id=f"S-{i}", metric=ev.FeedbackMetric.NPS,
                                                      score=r.randint(0, 10), about_channel="phone")),
    (2, Channel.PHONE, lambda r, i: ev.PriceQuoted(subject="HOTEL-AMS-DBL-3N",
                                                   amount=Decimal(r.randint(9000, 60000)) / 100)),
    (1, Channel.WEB, lambda r, i: ev.OfferMade(subject="AUTUMN15", terms="15% off stays before December")),
    (1, Channel.WEBCHAT, lambda r, i: ev.AnswerGiven(subject="moving", answer="Change it under Account.")),
    (1, Channel.PHONE, lambda r, i: ev.CaseOpened(case_id=f"K-{i}", intent="billing-dispute")),
    (1, Channel.PHONE, lambda r, i: ev.CaseResolved(case_id=f"K-{i - 5}", resolution="credit note issued")),
    (1, Channel.WEB, lambda r, i: ev.AddressChanged(address=ADDRESSES[i % 5], previous=ADDRESSES[(i + 1) % 5])),
    (1, Channel.WEB, lambda r, i: ev.IdentityLinked(kind="email", value=f"user{i}@example.com")),
]


def customer_id(n: int) -> str:
    return f"cust-{n:06d}"


def build_events(n: int, customers: int, seed: int = 7, who: Sequence[int] | None = None,
                 id_prefix: str = "bench") -> Iterator[Event]:
    """``n`` validated events, customers' clocks moving forward from ``START`` (60 s to a day between two events
    of one customer); ~30% carry a journey id. ``who[i]`` (a customer number) is the customer of event ``i``;
    without it, a random one of ``customers``."""
    r = random.Random(seed)
    clock = [START + timedelta(minutes=r.randrange(60 * 24 * 7)) for _ in range(customers)]
    extra: dict[int, datetime] = {}  # customers of `who` beyond `customers`
    weights = [w for w, _, _ in INTERACTIONS]
    for i in range(n):
        c = r.randrange(customers) if who is None else who[i]
        if c < customers:
            clock[c] += timedelta(seconds=r.randint(60, 86_400))
            at = clock[c]
        else:
            at = extra[c] = extra.get(c, START) + timedelta(seconds=r.randint(60, 86_400))
        _, channels, make = r.choices(INTERACTIONS, weights)[0]
        channel = channels if isinstance(channels, Channel) else r.choice(channels)
        yield Event.of(make(r, i), customer=customer_id(c), channel=channel, source=f"/bench/{channel.value}",
                       id=f"{id_prefix}-{i}", time=at,
                       correlationid=f"journey-{c}-{i // 200}" if r.random() < 0.3 else None)


def cover_all(n: int, customers: int, seed: int = 11) -> list[int]:
    """Customer numbers for ``n >= customers`` events: every customer once (in random order), then random ones."""
    r = random.Random(seed)
    who = list(range(customers))
    r.shuffle(who)
    return who + [r.randrange(customers) for _ in range(n - customers)]


def long_histories(background: int, customers: int, groups: Sequence[tuple[int, int]],
                   seed: int = 13) -> tuple[list[int], list[list[int]]]:
    """Customer numbers for ``background`` events over ``customers`` customers, mixed (uniformly over the whole
    log) with ``groups`` of (customers, events each) with long histories, numbered from ``customers`` on.
    Returns the per-event customer numbers and each group's customer numbers."""
    r = random.Random(seed)
    who = [-1] * background
    members, next_id = [], customers
    for count, each in groups:
        members.append(list(range(next_id, next_id + count)))
        who += [c for c in members[-1] for _ in range(each)]
        next_id += count
    r.shuffle(who)
    return [r.randrange(customers) if c < 0 else c for c in who], members
