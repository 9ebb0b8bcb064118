"""A deterministic simulator of omnichannel traffic, with known stories embedded and the ground truth alongside.

``simulate(customers, days, seed)`` generates realistic background traffic (a channel mix, working hours,
journeys of one to four contacts that cross channels, transfers, cases, feedback, letters) plus four stories,
each for its own dedicated customer:

* ``returned_mail``: letters to one address come back three times (the address is flagged after the second
  return; the third letter, sent to the flagged address, raises an alert), then the customer asks webcare on
  Twitter why. No address change follows, so the flag stays open.
* ``hotel_booking``: a discounted hotel booking moves phone -> web portal -> email -> travel agency (partner),
  all under one correlation id.
* ``transferred_call``: one call transferred three times, then resolved; a CES survey follows.
* ``price_mismatch``: a price quoted on the phone differs from the web price for the same subject a day later.

The ground truth (``Simulation.truth``) is written down while the traffic is planned, from the plan's own
bookkeeping (which contacts the customer initiated, which transfers, which step resolved the need, when the
customer asked and when an agent answered, which letters came back, which values were told), not by running the
projections' folds. It follows the rules documented in ``projections/flags/fold.py``,
``projections/consistency/fold.py`` and ``projections/journeys/fold.py`` with the default ``Rules``:

* flags: one row per (customer, address) that had returns; background letters never come back, so only the
  returned-mail story has a flag. Background traffic does not send that customer letters.
* violations: only the price-mismatch story; background prices, offers and answers are the same on every
  channel (one catalogue), and the story's subject is not in the catalogue.
* journeys: every event carries a correlation id (its journey), so assignment is unambiguous. Within a journey
  the times strictly increase, so the order of steps does not depend on arrival order.

Generation is pure: no clock, no I/O; the same arguments give the same events (ids ``sim-<seed>-<n>``) and truth.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

from projections.stateful import Rules
from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event

DEFAULT_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
WORK_START, WORK_END = 8, 20  # contact-centre hours (UTC)
STORIES = ("returned_mail", "hotel_booking", "transferred_call", "price_mismatch")

# One catalogue for every channel: background traffic never tells two channels different things.
PRICES = {"PLAN-S": Decimal("15.00"), "PLAN-M": Decimal("25.00"), "PLAN-L": Decimal("35.00"),
          "ROUTER-X2": Decimal("129.00"), "HOTEL-AMS-DBL-3N": Decimal("389.00"),
          "HOTEL-RTM-SGL-2N": Decimal("198.00")}
OFFERS = {"LOYALTY-10": "10% off the next booking", "WINTER-2FOR1": "second night free on winter stays"}
ANSWERS = {"opening-hours": "Mon-Sat 08:00-20:00", "cancellation": "Free cancellation up to 48 hours before",
           "invoice": "Invoices are in the portal under My account"}
STORY_PRICE_SUBJECT = "PLAN-UNLIMITED-24M"  # not in the catalogue: only the story quotes it
STORY_PHONE_PRICE, STORY_WEB_PRICE = Decimal("45.00"), Decimal("49.50")
HOTEL_SUBJECT, HOTEL_PRICE = "HOTEL-AMS-DBL-3N", PRICES["HOTEL-AMS-DBL-3N"]

# Where customers start or continue a need (weights); mail and survey come as letters and feedback, not contacts.
CONTACT_MIX = {Channel.PHONE: 32, Channel.EMAIL: 18, Channel.WEBCHAT: 13, Channel.WHATSAPP: 10, Channel.WEB: 11,
               Channel.TWITTER: 5, Channel.FACEBOOK: 4, Channel.STORE: 6, Channel.PARTNER: 1}
MESSAGING = (Channel.WEBCHAT, Channel.WHATSAPP, Channel.TWITTER, Channel.FACEBOOK)
DIGITAL = (*MESSAGING, Channel.WEB, Channel.EMAIL)
REPLY_SECONDS = {Channel.WEBCHAT: (15, 180), Channel.WHATSAPP: (60, 1800), Channel.TWITTER: (300, 7200),
                 Channel.FACEBOOK: (300, 7200)}
INTENTS = ("billing-question", "booking-change", "complaint", "technical-issue", "moving", "cancellation",
           "product-info")
QUEUES = ("general", "billing", "sales", "tech-support", "retention", "bookings")
STREETS = ("Kerkstraat", "Dorpsstraat", "Stationsweg", "Molenweg", "Schoolstraat", "Nieuwstraat", "Julianastraat",
           "Prinsengracht", "Beukenlaan", "Havenweg")
CITIES = (("Amsterdam", "10"), ("Rotterdam", "30"), ("Utrecht", "35"), ("Den Haag", "25"), ("Eindhoven", "56"),
          ("Groningen", "97"), ("Zwolle", "80"))
PAGES = ("/", "/plans", "/hotels/ams", "/hotels/rtm", "/support/faq", "/account/invoices", "/account/bookings",
         "/contact")


@dataclass(frozen=True)
class Simulation:
    seed: int
    customers: int
    days: int
    start: datetime
    events: list[Event]
    truth: dict


@dataclass(frozen=True)
class Step:
    """One planned event with what it means for the journey (the plan's bookkeeping, not a fold's inference)."""

    time: datetime
    channel: Channel
    payload: ev.Payload
    contact: str | None = None        # the customer-initiated contact this step starts (a distinct identity)
    transfer: bool = False            # a call handed to another queue
    resolves: bool = False            # the need was resolved here
    ask: str | None = None            # the customer now waits for an answer on this thread (email / conversation)
    answers: tuple[str, ...] = ()     # the threads an agent answers here
    feedback: bool = False            # measures the journey; not a contact step


@dataclass
class Journey:
    id: str
    customer: str
    steps: list[tuple[Step, str]] = field(default_factory=list)  # (step, event id)
    contacts: list[str] = field(default_factory=list)
    transfers: int = 0
    resolved_at: datetime | None = None
    waiting: dict[str, tuple[str, datetime]] = field(default_factory=dict)  # thread -> (channel, first ask)
    first_response: dict[str, float] = field(default_factory=dict)

    @property
    def last_time(self) -> datetime | None:
        return self.steps[-1][0].time if self.steps else None

    def truth(self) -> dict:
        times = [s.time for s, _ in self.steps]
        path = [s.channel.value for s, _ in self.steps if not s.feedback]  # steps are in time order
        channels = list(dict.fromkeys(path))
        started = min(times)
        return {
            "journey_id": self.id, "customer_id": self.customer, "started_at": started.isoformat(),
            "last_at": max(times).isoformat(), "channels": channels,
            "channel_switches": sum(1 for a, b in zip(path, path[1:]) if a != b),
            "contacts": len(self.contacts), "transfers": self.transfers,
            "repeat_contacts": max(0, len(self.contacts) - 1),
            "resolved": self.resolved_at is not None,
            "resolved_at": self.resolved_at.isoformat() if self.resolved_at else None,
            "resolution_seconds": (self.resolved_at - started).total_seconds() if self.resolved_at else None,
            "first_contact_resolution": self.resolved_at is not None and len(self.contacts) <= 1
                                        and self.transfers == 0,
            "first_response_seconds": dict(sorted(self.first_response.items())),
            "first_channel": path[0] if path else self.steps[0][0].channel.value,
            "version": len(self.steps),  # every event of the journey is one snapshot
        }


class _Generator:
    def __init__(self, customers: int, days: int, seed: int, start: datetime):
        self.customers, self.days, self.seed = customers, days, seed
        self.start = start.astimezone(UTC)
        self.end = self.start + timedelta(days=days)
        self.rng = random.Random(seed)
        self.rules = Rules()
        self.prefix = f"sim-{seed}"
        self.n = 0          # event counter: ids sim-<seed>-<n>
        self.ref = 0        # counter for calls, messages, conversations, letters, cases ...
        self.events: list[Event] = []
        self.journeys: dict[str, Journey] = {}
        self.addresses: dict[str, ev.PostalAddress] = {}
        self.flags: dict[str, list[dict]] = {}
        self.violations: list[dict] = []

    # --- identities and time ---------------------------------------------------------------------------------------
    def next_ref(self, kind: str) -> str:
        self.ref += 1
        return f"{self.prefix}-{kind}{self.ref}"

    def customer_id(self, i: int) -> str:
        return f"{self.prefix}-c{i:04d}"

    def address(self, customer: str) -> ev.PostalAddress:
        if customer not in self.addresses:
            city, pc = self.rng.choice(CITIES)
            self.addresses[customer] = ev.PostalAddress(
                street=self.rng.choice(STREETS), house_number=str(self.rng.randint(1, 180)),
                postcode=f"{pc}{self.rng.randint(10, 99)} {self.rng.choice('ABCDEGHJKLMNPRSTVWXZ')}"
                         f"{self.rng.choice('ABCDEGHJKLMNPRSTVWXZ')}", city=city)
        return self.addresses[customer]

    def seconds(self, low: int, high: int) -> timedelta:
        return timedelta(seconds=self.rng.randint(low, high))

    def in_hours(self, t: datetime) -> datetime:
        """``t``, or the next opening (08:00-08:59) when it falls outside working hours."""
        t = t.replace(microsecond=0)
        if WORK_START <= t.hour < WORK_END:
            return t
        day = t.date() if t.hour < WORK_START else t.date() + timedelta(days=1)
        return datetime(day.year, day.month, day.day, WORK_START, tzinfo=UTC) + self.seconds(0, 3599)

    def contact_time(self, day: int, channel: Channel) -> datetime:
        base = self.start + timedelta(days=day)
        if channel in DIGITAL and self.rng.random() < 0.08:  # digital channels get some evening traffic
            return base + timedelta(hours=WORK_END) + self.seconds(0, 3 * 3600 - 1)
        return base + timedelta(hours=WORK_START) + self.seconds(0, (WORK_END - WORK_START) * 3600 - 3 * 3600)

    # --- committing planned steps ----------------------------------------------------------------------------------
    def journey(self, customer: str, name: str | None = None) -> Journey:
        j = Journey(f"{self.prefix}-{name or 'j'}-{len(self.journeys) + 1}", customer)
        self.journeys[j.id] = j
        return j

    def commit(self, j: Journey, step: Step) -> Event:
        if j.last_time is not None and step.time <= j.last_time:
            raise AssertionError(f"journey {j.id}: steps must strictly follow each other in time")
        if not self.start <= step.time < self.end:
            raise AssertionError(f"journey {j.id}: {step.time} is outside the simulated days")
        self.n += 1
        event = Event.of(step.payload, customer=j.customer, channel=step.channel, source=f"/simulator/{step.channel}",
                         id=f"{self.prefix}-{self.n}", time=step.time, correlationid=j.id)
        self.events.append(event)
        j.steps.append((step, event.id))
        if step.contact is not None and step.contact not in j.contacts:
            j.contacts.append(step.contact)
        j.transfers += step.transfer
        if step.resolves and j.resolved_at is None:
            j.resolved_at = step.time
        # First response per channel: the first ask of a thread, answered by the first later answer on it.
        if step.ask is not None and step.channel.value not in j.first_response and step.ask not in j.waiting:
            j.waiting[step.ask] = (step.channel.value, step.time)
        for thread in step.answers:
            if thread in j.waiting:
                channel, asked = j.waiting[thread]
                j.first_response.setdefault(channel, (step.time - asked).total_seconds())
        j.waiting = {k: v for k, v in j.waiting.items() if v[0] not in j.first_response}
        return event

    def commit_all(self, j: Journey, steps: list[Step]) -> list[Event]:
        return [self.commit(j, s) for s in steps]

    # --- background contacts -------------------------------------------------------------------------------------
    def told(self, t: datetime, channel: Channel, subjects: tuple[str, ...] | None = None) -> Step:
        """A price, offer or answer from the one catalogue."""
        kind = self.rng.choices(("price", "offer", "answer"), (6, 2, 2))[0]
        if kind == "price":
            subject = self.rng.choice(subjects or tuple(PRICES))
            return Step(t, channel, ev.PriceQuoted(subject=subject, amount=PRICES[subject]))
        if kind == "offer":
            subject = self.rng.choice(tuple(OFFERS))
            return Step(t, channel, ev.OfferMade(subject=subject, terms=OFFERS[subject]))
        subject = self.rng.choice(tuple(ANSWERS))
        return Step(t, channel, ev.AnswerGiven(subject=subject, answer=ANSWERS[subject]))

    def contact(self, channel: Channel, t: datetime, *, case: tuple[str, str] | None, open_case: bool,
                resolve: bool, followup: bool) -> list[Step]:
        """The steps of one contact on ``channel`` starting at ``t``; ``case`` = (case id, intent)."""
        rng, steps = self.rng, []

        def add(step: Step) -> datetime:
            steps.append(step)
            return step.time

        def opened(at: datetime) -> datetime:
            if open_case and case is not None:
                return add(Step(at, channel, ev.CaseOpened(case_id=case[0], intent=case[1])))
            return at

        def resolved(at: datetime) -> None:
            if resolve:
                add(Step(at, channel, ev.CaseResolved(case_id=case[0], resolution="solved"), resolves=True))

        def quote_then_maybe_book(at: datetime, subjects: tuple[str, ...], p_book: float,
                                  booking_after: tuple[int, int]) -> datetime:
            """Something is told at ``at``; a quoted price is booked with probability ``p_book``."""
            at = add(self.told(at, channel, subjects))
            if isinstance(steps[-1].payload, ev.PriceQuoted) and rng.random() < p_book:
                quote = steps[-1].payload
                at = add(Step(at + self.seconds(*booking_after), channel, ev.BookingMade(
                    booking_id=self.next_ref("bk"), product=quote.subject, amount=quote.amount)))
            return at

        if channel == Channel.PHONE:
            call = self.next_ref("call")
            outbound = followup and rng.random() < 0.15  # an agent calls back: a step, not a customer contact
            t = add(Step(t, channel, ev.CallStarted(call_id=call, direction="outbound" if outbound else "inbound",
                                                    queue=rng.choice(QUEUES), agent=f"agent-{rng.randint(1, 60)}"),
                         contact=None if outbound else f"call:{call}"))
            t = opened(t + self.seconds(20, 90))
            if rng.random() < 0.35:
                t = add(self.told(t + self.seconds(60, 300), channel))
            queue = None
            if not outbound and rng.random() < 0.15:
                for _ in range(rng.choice((1, 1, 2))):
                    kind = rng.choices(("queue", "agent", "external"), (8, 2, 1))[0]
                    to = {"queue": rng.choice([q for q in QUEUES if q != queue]),
                          "agent": f"agent-{rng.randint(1, 60)}", "external": "back-office"}[kind]
                    t = add(Step(t + self.seconds(120, 480), channel,
                                 ev.CallTransferredV2(call_id=call, from_target=queue or "general", to_target=to,
                                                      target_kind=kind, reason="needs a specialist"),
                                 transfer=True))
                    queue = to
            end = t + self.seconds(60, 600)
            started = steps[0].time
            add(Step(end, channel, ev.CallEnded(call_id=call, duration_seconds=int((end - started).total_seconds()),
                                                resolved=resolve), resolves=resolve))
            if resolve and case is not None:
                add(Step(end + self.seconds(10, 120), channel,
                         ev.CaseResolved(case_id=case[0], resolution="solved on the phone"), resolves=True))
        elif channel == Channel.EMAIL:
            mid = self.next_ref("mail")
            t = add(Step(t, channel, ev.EmailReceived(message_id=mid, subject=f"Question about {case[1] if case else 'my account'}"),
                         contact=f"email:{mid}", ask="email"))
            t = opened(t + self.seconds(30, 600))
            if resolve or rng.random() < 0.9:
                t = add(Step(self.in_hours(t + self.seconds(1800, 20 * 3600)), channel,
                             ev.EmailSent(message_id=self.next_ref("mail"), in_reply_to=mid, subject="Re: your question"),
                             answers=("email",)))
                if rng.random() < 0.3:
                    t = add(self.told(t + self.seconds(1, 5), channel))
                resolved(t + self.seconds(30, 300))
        elif channel in MESSAGING:
            conv = self.next_ref("conv")
            thread = f"{channel.value}:{conv}"
            handle = f"@user{rng.randint(100, 9999)}" if channel in (Channel.TWITTER, Channel.FACEBOOK) else ""
            low, high = REPLY_SECONDS[channel]
            t = add(Step(t, channel, ev.MessageReceived(conversation_id=conv, text="Hi, I have a question",
                                                        handle=handle), contact=f"conversation:{thread}", ask=thread))
            t = opened(t + self.seconds(5, 60))
            for exchange in range(rng.choice((1, 1, 2))):
                if exchange:
                    t = add(Step(t + self.seconds(30, 300), channel,
                                 ev.MessageReceived(conversation_id=conv, text="And one more thing", handle=handle),
                                 contact=f"conversation:{thread}", ask=thread))
                if not (resolve or rng.random() < 0.95):
                    break
                t = add(Step(t + self.seconds(low, high), channel,
                             ev.MessageSent(conversation_id=conv, text="Happy to help!",
                                            agent=f"agent-{rng.randint(1, 60)}"), answers=(thread,)))
                if rng.random() < 0.25:
                    t = add(self.told(t + self.seconds(1, 30), channel))
            resolved(t + self.seconds(30, 300))
        elif channel == Channel.STORE:
            t = add(Step(t, channel, ev.StoreVisited(store_id=f"store-{rng.randint(1, 25)}", purpose="advice"),
                         contact=f"visit:{self.next_ref('visit')}"))
            t = opened(t + self.seconds(60, 300))
            if rng.random() < 0.5:
                t = quote_then_maybe_book(t + self.seconds(120, 600), ("PLAN-S", "PLAN-M", "PLAN-L", "ROUTER-X2"),
                                          0.5, (60, 600))
            resolved(t + self.seconds(60, 600))
        elif channel == Channel.WEB:
            session = self.next_ref("web")
            for _ in range(rng.randint(1, 3)):
                t = add(Step(t, channel, ev.WebPageViewed(session_id=session,
                                                         url=f"https://portal.example{rng.choice(PAGES)}")))
                t += self.seconds(10, 240)
            t = opened(t)
            if rng.random() < 0.45:
                t = quote_then_maybe_book(t + self.seconds(5, 60), ("PLAN-S", "PLAN-M", "PLAN-L",
                                                                     "HOTEL-AMS-DBL-3N", "HOTEL-RTM-SGL-2N"),
                                          0.4, (30, 400))
            resolved(t + self.seconds(5, 120))
        elif channel == Channel.PARTNER:
            subject = self.rng.choice(("HOTEL-AMS-DBL-3N", "HOTEL-RTM-SGL-2N"))
            t = add(Step(t, channel, ev.BookingMade(booking_id=self.next_ref("bk"), product=subject,
                                                    amount=PRICES[subject])))
            t = opened(t + self.seconds(30, 300))
            resolved(t + self.seconds(60, 900))
        else:
            raise ValueError(f"no contact on {channel}")
        return steps

    def fits(self, steps: list[Step]) -> bool:
        return all(s.time < self.end for s in steps)

    def background_journey(self, customer: str, *, mail: bool) -> None:
        rng = self.rng
        n_contacts = rng.choices((1, 2, 3, 4), (45, 30, 15, 10))[0]
        channels = [rng.choices(list(CONTACT_MIX), list(CONTACT_MIX.values()))[0]]
        while len(channels) < n_contacts:
            c = rng.choices(list(CONTACT_MIX), list(CONTACT_MIX.values()))[0]
            if c == channels[-1] and rng.random() < 0.65:  # most follow-ups move to another channel
                continue
            channels.append(c)
        resolve = rng.random() < 0.7
        with_case = rng.random() < 0.45 or (resolve and channels[-1] != Channel.PHONE)
        case = (self.next_ref("case"), rng.choice(INTENTS)) if with_case else None
        for _attempt in range(30):  # a start whose first contact runs past the simulated days is drawn again
            t = self.contact_time(rng.randrange(self.days), channels[0])
            planned: list[list[Step]] = []
            for i, channel in enumerate(channels):
                if i:
                    t = self.in_hours(planned[-1][-1].time + self.seconds(1800, 30 * 3600))
                last = i == len(channels) - 1
                steps = self.contact(channel, t, case=case, open_case=i == 0, resolve=resolve and last,
                                     followup=i > 0)
                if not self.fits(steps):
                    break
                planned.append(steps)
            if planned:
                break
        else:
            return  # cannot fit (not reachable with days >= 1, kept as a guard)
        j = self.journey(customer)
        for steps in planned:
            self.commit_all(j, steps)
        if rng.random() < 0.4:  # a survey about the channel of the last contact step
            about = j.steps[-1][0].channel
            score_good = j.resolved_at is not None and len(j.contacts) <= 1 and j.transfers == 0
            metric = rng.choice(list(ev.FeedbackMetric))
            low, high = ev.FEEDBACK_SCALE[metric]
            if metric == ev.FeedbackMetric.CES:  # effort: low is good
                score = rng.randint(low, low + 2) if score_good else rng.randint(low + 2, high)
            else:
                score = rng.randint(high - 2, high) if score_good else rng.randint(low, high - 1)
            survey = Step(j.last_time + self.seconds(1800, 6 * 3600), Channel.SURVEY,
                          ev.FeedbackGiven(survey_id=self.next_ref("S"), metric=metric, score=score,
                                           about_channel=about.value), feedback=True)
            if self.fits([survey]):
                self.commit(j, survey)
        if mail and j.resolved_at is not None and rng.random() < 0.25:  # a confirmation letter
            letter = Step(self.in_hours(j.last_time + self.seconds(12 * 3600, 30 * 3600)), Channel.MAIL,
                          ev.MailSent(letter_id=self.next_ref("L"), address=self.address(customer),
                                      subject="Confirmation of your request"))
            if self.fits([letter]):
                self.commit(j, letter)

    # --- stories ---------------------------------------------------------------------------------------------------
    def episodes(self, ideal: list[tuple[float, list[tuple[timedelta, Channel, ev.Payload, dict]]]]
                 ) -> list[Step]:
        """Place a story's episodes: ideal day offsets are compressed to fit the simulated days, each episode
        starts in working hours after the previous one ended, and its steps keep their offsets."""
        longest = max(day for day, _ in ideal) or 1.0
        scale = min(1.0, (self.days - 1) / longest)
        jitter = self.seconds(0, 40 * 60)
        steps: list[Step] = []
        for day, items in ideal:
            scaled = day * scale
            whole = int(scaled)
            t = self.start + timedelta(days=whole, hours=9) + jitter + timedelta(seconds=round((scaled - whole) * 8 * 3600))
            if steps:
                t = max(t, steps[-1].time + timedelta(minutes=10))
            t = t.replace(microsecond=0)
            steps += [Step(t + offset, channel, payload, **meaning) for offset, channel, payload, meaning in items]
        return steps

    def story_returned_mail(self, customer: str) -> None:
        address, m, h = self.address(customer), timedelta(minutes=1), timedelta(hours=1)
        conv = self.next_ref("conv")
        ideal = []
        for i, day in enumerate((0, 7, 14), 1):
            letter = f"{self.prefix}-L-story-{i}"
            ideal += [(day, [(0 * m, Channel.MAIL, ev.MailSent(letter_id=letter, address=address,
                                                               subject=f"Annual statement reminder {i}"), {})]),
                      (day + 3, [(0 * m, Channel.MAIL, ev.MailReturned(
                          letter_id=letter, address=address, reason=ev.ReturnReason.ADDRESSEE_UNKNOWN), {})])]
        ideal.append((20, [
            (0 * m, Channel.TWITTER, ev.MessageReceived(
                conversation_id=conv, handle="@moved_customer",
                text="Your letters keep going to my old address although I moved months ago. Why?"),
             {"contact": f"conversation:twitter:{conv}", "ask": f"twitter:{conv}"}),
            (2 * h, Channel.TWITTER, ev.MessageSent(conversation_id=conv, agent="webcare-anna",
                                                    text="Sorry! Please DM us your new address."),
             {"answers": (f"twitter:{conv}",)})]))
        j = self.journey(customer, "returned-mail")
        events = self.commit_all(j, self.episodes(ideal))
        # The flag, as the plan has it: each return counts; the threshold-th return within the window flags the
        # address (no address change, so the flag stays open); a letter to the flagged address raises an alert.
        returns, actions, version, flagged = [], [], 0, False
        for e in events:
            if isinstance(e.data, ev.MailReturned):
                returns.append(e.time)
                version += 1
                window = [r for r in returns if r >= max(returns) - timedelta(days=self.rules.flag_window_days)]
                if not flagged and len(window) >= self.rules.flag_threshold:
                    flagged = True
                    actions.append("flagged")
            elif isinstance(e.data, ev.MailSent) and flagged:
                version += 1
                actions.append("mail_sent_alert")
        assert flagged and len(returns) == 3 and actions == ["flagged", "mail_sent_alert"]
        self.flags.setdefault(customer, []).append({
            "customer_id": customer, "address": address.one_line(), "status": "flagged", "returns": len(returns),
            "first_return": min(returns).isoformat(), "last_return": max(returns).isoformat(),
            "actions": actions, "version": version})

    def story_hotel_booking(self, customer: str) -> None:
        m = timedelta(minutes=1)
        call, mid, case, booking = (self.next_ref("call"), self.next_ref("mail"), self.next_ref("case"),
                                    self.next_ref("bk"))
        ideal = [
            (0.2, [(0 * m, Channel.PHONE, ev.CallStarted(call_id=call, queue="reservations", agent="agent-7"),
                    {"contact": f"call:{call}"}),
                   (3 * m, Channel.PHONE, ev.PriceQuoted(subject=HOTEL_SUBJECT, amount=HOTEL_PRICE), {}),
                   (6 * m, Channel.PHONE, ev.CallEnded(call_id=call, duration_seconds=360, resolved=False), {})]),
            (0.3, [(0 * m, Channel.WEB, ev.WebPageViewed(session_id=self.next_ref("web"),
                                                         url="https://portal.example/hotels/ams"), {}),
                   (5 * m, Channel.WEB, ev.PriceQuoted(subject=HOTEL_SUBJECT, amount=HOTEL_PRICE), {}),
                   (10 * m, Channel.WEB, ev.BookingMade(booking_id=booking, product=HOTEL_SUBJECT,
                                                        amount=HOTEL_PRICE, discount_code="AUTUMN15"), {})]),
            (1.2, [(0 * m, Channel.EMAIL, ev.EmailReceived(message_id=mid, subject="Discount AUTUMN15 not applied"),
                    {"contact": f"email:{mid}", "ask": "email"}),
                   (4 * m, Channel.EMAIL, ev.CaseOpened(case_id=case, intent="booking-change"), {})]),
            (2.1, [(0 * m, Channel.EMAIL, ev.EmailSent(message_id=self.next_ref("mail"), in_reply_to=mid,
                                                       subject="Re: Discount AUTUMN15 not applied"),
                    {"answers": ("email",)})]),
            (3.3, [(0 * m, Channel.PARTNER, ev.BookingChanged(
                       booking_id=booking, change="rebooked by travel agency with discount applied"), {}),
                   (5 * m, Channel.PARTNER, ev.CaseResolved(case_id=case, resolution="discount applied"),
                    {"resolves": True})]),
        ]
        self.commit_all(self.journey(customer, "hotel"), self.episodes(ideal))

    def story_transferred_call(self, customer: str) -> None:
        m, h = timedelta(minutes=1), timedelta(hours=1)
        call, case = self.next_ref("call"), self.next_ref("case")
        queues = ("general", "billing", "payments", "billing-2")
        ideal = [(1.5, [
            (0 * m, Channel.PHONE, ev.CallStarted(call_id=call, queue="general"), {"contact": f"call:{call}"}),
            (1 * m, Channel.PHONE, ev.CaseOpened(case_id=case, intent="billing-dispute"), {}),
            *[((4 + 5 * i) * m, Channel.PHONE, ev.CallTransferredV2(
                call_id=call, from_target=queues[i], to_target=queues[i + 1], target_kind="queue",
                reason="wrong queue"), {"transfer": True}) for i in range(3)],
            (22 * m, Channel.PHONE, ev.CallEnded(call_id=call, duration_seconds=22 * 60, resolved=True),
             {"resolves": True}),
            (23 * m, Channel.PHONE, ev.CaseResolved(case_id=case, resolution="credit note issued"),
             {"resolves": True})]),
            (1.6, [(2 * h, Channel.SURVEY, ev.FeedbackGiven(
                survey_id=self.next_ref("S"), metric=ev.FeedbackMetric.CES, score=6, about_channel="phone",
                comment="Had to tell my story three times"), {"feedback": True})])]
        self.commit_all(self.journey(customer, "transferred"), self.episodes(ideal))

    def story_price_mismatch(self, customer: str) -> None:
        m = timedelta(minutes=1)
        call, conv = self.next_ref("call"), self.next_ref("conv")
        ideal = [
            (0.5, [(0 * m, Channel.PHONE, ev.CallStarted(call_id=call, queue="sales"), {"contact": f"call:{call}"}),
                   (4 * m, Channel.PHONE, ev.PriceQuoted(subject=STORY_PRICE_SUBJECT, amount=STORY_PHONE_PRICE), {}),
                   (8 * m, Channel.PHONE, ev.CallEnded(call_id=call, duration_seconds=480), {})]),
            (1.5, [(0 * m, Channel.WEB, ev.WebPageViewed(session_id=self.next_ref("web"),
                                                         url="https://portal.example/plans/unlimited"), {}),
                   (1 * m, Channel.WEB, ev.PriceQuoted(subject=STORY_PRICE_SUBJECT, amount=STORY_WEB_PRICE), {})]),
            (1.6, [(0 * m, Channel.WEBCHAT, ev.MessageReceived(
                       conversation_id=conv, text="On the phone you said 45.00, the website says 49.50?"),
                    {"contact": f"conversation:webchat:{conv}", "ask": f"webchat:{conv}"}),
                   (3 * m, Channel.WEBCHAT, ev.MessageSent(conversation_id=conv, agent="agent-12",
                                                           text="Let me check that for you."),
                    {"answers": (f"webchat:{conv}",)})]),
        ]
        events = self.commit_all(self.journey(customer, "price"), self.episodes(ideal))
        phone, web = [e for e in events if isinstance(e.data, ev.PriceQuoted)]
        # Phone told one value, the web (later, within the window) another: one violation, found at the web quote.
        assert web.time - phone.time <= timedelta(days=self.rules.consistency_window_days)
        self.violations.append({
            "violation_id": f"violation-{web.id}", "customer_id": customer, "kind": "price",
            "subject": STORY_PRICE_SUBJECT, "channels": ["phone", "web"],
            "values": [f"{STORY_PHONE_PRICE:.2f} EUR", f"{STORY_WEB_PRICE:.2f} EUR"],
            "event_ids": [phone.id, web.id], "detected_at": web.time.isoformat()})

    # --- everything ------------------------------------------------------------------------------------------------
    def run(self) -> Simulation:
        story_customers = {name: self.customer_id(i + 1) for i, name in enumerate(STORIES)}
        self.story_returned_mail(story_customers["returned_mail"])
        self.story_hotel_booking(story_customers["hotel_booking"])
        self.story_transferred_call(story_customers["transferred_call"])
        self.story_price_mismatch(story_customers["price_mismatch"])
        all_customers = [self.customer_id(i + 1) for i in range(self.customers)]
        for customer in all_customers:
            story = customer in story_customers.values()
            n = self.rng.randint(0 if story else 1, max(1, min(4, 1 + self.days // 3)))
            for _ in range(n):
                # The returned-mail customer gets no other letters: the story's flag stays exactly as told.
                self.background_journey(customer, mail=customer != story_customers["returned_mail"])
        events = sorted(self.events, key=lambda e: (e.time, e.subject, int(e.id.rsplit("-", 1)[1])))
        return Simulation(self.seed, self.customers, self.days, self.start, events,
                          self.truth(events, all_customers, story_customers))

    def truth(self, events: list[Event], customers: list[str], stories: dict[str, str]) -> dict:
        per_customer = Counter(e.subject for e in events)
        derived = Counter()
        for customer, flags in self.flags.items():
            derived[customer] += sum(a in ("flagged", "mail_sent_alert") for f in flags for a in f["actions"])
        for v in self.violations:
            derived[v["customer_id"]] += 1
        journeys: dict[str, list[dict]] = {c: [] for c in customers}
        for j in self.journeys.values():
            journeys[j.customer].append(j.truth())
        for rows in journeys.values():
            rows.sort(key=lambda r: (r["started_at"], r["journey_id"]))
        return {
            "seed": self.seed, "customers": self.customers, "days": self.days, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "rules": asdict(self.rules), "stories": stories,
            "events": len(events),
            "per_channel": dict(sorted(Counter(e.channel.value for e in events).items())),
            "per_type": dict(sorted(Counter(e.name for e in events).items())),
            "per_customer": {c: per_customer.get(c, 0) for c in customers},
            # Timeline rows per customer once projected: its events plus the derived events the projections add.
            "timeline": {c: per_customer.get(c, 0) + derived.get(c, 0) for c in customers},
            "flags": {c: self.flags.get(c, []) for c in customers if c in self.flags},
            "violations": sorted(self.violations, key=lambda v: (v["detected_at"], v["customer_id"])),
            "journeys": journeys,
            "journey_metrics": {
                "journeys": len(self.journeys),
                "cross_channel": sum(len(j["channels"]) > 1 for rows in journeys.values() for j in rows),
                "with_transfers": sum(j["transfers"] > 0 for rows in journeys.values() for j in rows),
                "resolved": sum(j["resolved"] for rows in journeys.values() for j in rows),
                "first_contact_resolution": sum(j["first_contact_resolution"] for rows in journeys.values()
                                                for j in rows),
                "repeat_contacts": sum(j["repeat_contacts"] for rows in journeys.values() for j in rows),
            },
        }


def simulate(customers: int, days: int, seed: int, start: datetime = DEFAULT_START) -> Simulation:
    """Deterministic omnichannel traffic for ``customers`` customers over ``days`` days, with the ground truth."""
    if customers < len(STORIES):
        raise ValueError(f"at least {len(STORIES)} customers are needed: each story has its own customer")
    if days < 1:
        raise ValueError("days must be at least 1")
    if start.tzinfo is None:
        raise ValueError("start must have a time zone")
    return _Generator(customers, days, seed, start).run()


def write_simulation(sim: Simulation, directory: Path | str) -> tuple[Path, Path]:
    """Write ``events.jsonl`` (one event per line, for ``omnitrail emit --file``) and ``truth.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    events_path, truth_path = directory / "events.jsonl", directory / "truth.json"
    events_path.write_text("".join(e.model_dump_json() + "\n" for e in sim.events))
    truth_path.write_bytes(orjson.dumps(sim.truth, option=orjson.OPT_INDENT_2) + b"\n")
    return events_path, truth_path
