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

Beyond the stories the background holds, at scale, everything the projections must get exactly right:

* returned mail (``post`` journeys, mail channel): about 8% of the other customers have an address letters bounce
  from. Their statements, invoices and reminders come back days later. Variants: a single return (status
  ``returned``); returns that flag the address, with or without later letters to it (``MailToFlaggedAddress``
  alerts); a change-of-address card that clears the flag (``address changed``; returns kept); a reply card
  confirming the address (``address confirmed``; returns reset); a letter still in the post when the card came,
  bouncing afterwards (a return before the change never counts, one after it alone does not reach the threshold:
  status ``returned``); and letters an old system keeps sending to the old address, flagging it again.
* address changes on the web portal by some customers whose letters arrive (no returns: no flag rows). Letters
  follow the customer's address at the time they are sent.
* told values (``told`` journeys): about 5% of the other customers are told different values for one subject
  (not in the catalogue) on two channels within the consistency window: a plain mismatch, or one channel changed
  its value (a price change) while the other still tells the old one. Others are told a changed value on one
  channel only (a change, not a violation), the same value on two channels, or different values further apart
  than the window (no violation).
* anonymous first contacts (``anon`` journeys): about 5% of the other customers (one of each variant first)
  first write on Twitter, Facebook or WhatsApp before anyone knows who they are: those events' subject is the
  channel identity in normal form (``twitter:@jan_7_12``, ``whatsapp:+31607000012``; ``schemas.identifiers``).
  The agent asks for the customer number and links the identity (``IdentityLinked``, spelt as the agent types it:
  ``@Jan_7_12``, ``+31 6 0700 0012``), in a one-event ``link`` journey of the customer; a later conversation may
  follow under the identity. Variants: ``linked`` (it stays), ``relinked`` (a day or so later it is linked to
  another customer, who it really was) and ``unlinked`` (the customer unlinks it: ``IdentityUnlinked``).
* duplicates: about 1% of the events are published twice (a producer retry): same source, id and content, a few
  seconds apart. They are part of ``Simulation.events``; the truth counts every event once.
* late arrivals: events published well after later events of the same customer on other channels (see below).

The ground truth (``Simulation.truth``) is written down from the plan's own bookkeeping (which contacts the
customer initiated, which transfers, which step resolved the need, when the customer asked and when an agent
answered, which letters came back, which values were told), not by running the projections' folds. It follows
the rules documented in ``projections/flags/fold.py``, ``projections/consistency/fold.py`` and
``projections/journeys/fold.py`` with the default ``Rules``:

* flags: ``address_flags`` applies the documented rules to each customer's letters, returns and address changes
  in time order; one row per (customer, address) that had returns. A customer's letters bounce from one address
  only, so each customer has at most one row (readers that order a customer's rows by address and by update
  time agree).
* violations: by construction of the told values. Background catalogue values are the same on every channel, and
  every other told subject is told to a customer in one pattern only, so only the mismatch patterns (and the
  price-mismatch story) conflict: one violation each, named after the later of the two conflicting values.
* journeys: every event carries a correlation id (its journey), so assignment is unambiguous. Within a journey
  the times strictly increase, so the order of steps does not depend on arrival order.
* timeline: per subject (customer or anonymous identity) its distinct events plus the derived events: one per
  flag, alert and clear, and one per violation. ``per_customer`` and ``journeys`` are per subject too: what the
  log holds under each subject, before identities are resolved.
* identities: per channel identity, the customer it belongs to at the end (the newest link, unless that customer
  unlinked it later; ``projections/identities/queries.py``) or None, and its links and unlinks in time order.
* resolved_timeline: per customer, the ids of the interaction events its timeline shows once identities are
  resolved (its own and those of the identities it has at the end, earlier ones included), in timeline order
  (time, source, id); the derived events come on top (none is about an anonymous identity).
* summary: counts of flagged addresses (ever, and open, cleared, returned now), alerts, violations, duplicates,
  late arrivals, transfers.

Arrival order. ``events`` is the publishing order. Each channel has its own topic, keyed by customer, so the
worker sees one customer's events of one channel in publishing order, but the channels interleave arbitrarily
(it sorts each batch by time; across batches arrival order stands). The truth holds for every such interleaving:

* Letters, returns and the cards that clear flags all travel on the mail channel, in time order (except the late
  returns below): the flag rules are not order-independent across channels (an address change folded before a
  return that happened earlier makes that return history), so nothing flag-relevant of a customer with returns
  travels on another channel. Web address changes are only made by customers without returns, where they change
  no row.
* Consistency: a mismatch is two channels each telling one value, or one channel telling ``a`` then ``b`` while
  the other tells ``a``; either way the conflict is found whichever of the two is folded second, with the same
  values and event ids (only the violation id and detection time name the quote folded second; in time order that
  is the later one, as the truth says). Patterns where a channel changes its value to agree are order-dependent and
  are not generated. Pruning: every value of a mismatch is told within the last ``consistency_window_days`` of the
  simulation, so no later told value of the customer can prune it before its counterpart arrives; the
  price-mismatch story customer is told no other values at all.
* Violations are placed in disjoint time slots in customer-id order (after the story's), so listing them by
  detection time (either quote) or by customer and subject gives the same order; each customer has at most one.
* Late arrivals, each published well after its time: survey answers (the survey tool's export, up to three days
  later), the travel agency's events (its nightly feed, published at 02:00 the next day) and some returned letters
  (the post office's return scans, two to six days later). Feedback and partner events tell no values and change no
  flag, and journeys place steps by time, take the earliest resolution and count distinct contacts, so their
  arrival order does not matter. A late return is only published late when the mail events it overtakes cannot
  change its effect: none of them is an address change, and either it overtakes no mail event of its customer or
  its address was already flagged before it (then it only adds a return, and an alert is raised either way).
  Email and messaging events (first-response times depend on their order) are never late.

Generation is pure: no clock, no I/O; the same arguments give the same events (ids ``sim-<seed>-<n>``) and truth.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson

from projections.rules import Rules
from schemas import events as ev
from schemas.channels import Channel
from schemas.envelope import Event
from schemas.identifiers import identifier

DEFAULT_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday, 00:00 UTC
WORK_START, WORK_END = 8, 20  # contact-centre hours (UTC)
WORK_SECONDS = (WORK_END - WORK_START) * 3600
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

# Subjects outside the catalogue: what the told-value patterns tell (each at most once per customer).
TOLD_PRICES = ("FIBER-500", "FIBER-1000", "TV-BASIC", "TV-PLUS", "MOBILE-10GB", "MOBILE-UNLIMITED",
               "HOTEL-UTR-DBL-2N", "HOTEL-GRQ-SGL-1N")
TOLD_OFFERS = {"RETENTION-20": ("20% off for 12 months", "20% off for 6 months", "first 3 months free"),
               "SWITCH-BONUS": ("EUR 50 bonus when you switch", "EUR 25 bonus when you switch"),
               "FAMILY-PACK": ("4 SIMs for the price of 3", "5 SIMs for the price of 3")}
TOLD_ANSWERS = {"roaming-eu": ("Roaming in the EU is included", "Roaming in the EU costs 2.50 a day"),
                "contract-end": ("You can cancel any day after the first year", "Your contract ends in March"),
                "moving-fee": ("Moving your connection is free", "Moving your connection costs EUR 49"),
                "router-return": ("Return the router within 14 days", "You can keep the old router")}
TELLING = (Channel.PHONE, Channel.WEB, Channel.EMAIL, Channel.WEBCHAT, Channel.WHATSAPP, Channel.STORE)

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
LETTERS = ("Annual statement", "Invoice", "Payment reminder", "Contract renewal", "Change to your terms",
           "Final notice")

# Shares of the background customers (the stories' customers take part in none of these).
BOUNCE_SHARE = 0.08      # letters come back from their address
POST_KINDS = {"returned": 24, "flagged": 34, "changed": 16, "changed_in_post": 8, "confirmed": 10, "reflagged": 8}
WEB_MOVE_SHARE = 0.03    # change their address on the web portal (their letters arrive)
MISMATCH_SHARE = 0.05    # told different values on two channels within the window: one violation each
MISMATCH_SLOT = 45 * 60  # working seconds a mismatch needs (its two contacts and a margin)
CHANGE_SHARE, AGREE_SHARE, APART_SHARE = 0.03, 0.03, 0.02  # told values that are no violation
LATE_RETURN_SHARE = 0.35     # of the customers with returns: one return reported late (if that is order-safe)
LATE_SURVEY_SHARE = 0.12     # survey answers that come with the survey tool's export, up to three days later
DUPLICATE_SHARE = 0.01       # events a producer publishes twice
IDENTITY_SHARE = 0.05        # first write anonymously on a messaging channel, identified later
IDENTITY_VARIANTS = ("linked", "relinked", "unlinked")
ANONYMOUS = {Channel.TWITTER: "twitter", Channel.FACEBOOK: "facebook", Channel.WHATSAPP: "whatsapp"}
NAMES = ("Jan", "Piet", "Anna", "Sanne", "Daan", "Emma", "Lars", "Noor")


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


def told_value(payload: ev.Payload) -> tuple[str, str, str] | None:
    """``(kind, subject, value)`` of a told value, normalised as ``projections/quotes/fold.py`` documents: a price
    as ``"<amount, 2 decimals> <CURRENCY>"``, offer terms stripped, an answer whitespace-collapsed and casefolded."""
    if isinstance(payload, ev.PriceQuoted):
        return "price", payload.subject, f"{payload.amount:.2f} {payload.currency.upper()}"
    if isinstance(payload, ev.OfferMade):
        return "offer", payload.subject, payload.terms.strip()
    if isinstance(payload, ev.AnswerGiven):
        return "answer", payload.subject, " ".join(payload.answer.split()).casefold()
    return None


def _address_key(address: ev.PostalAddress) -> str:
    return " ".join(address.one_line().casefold().split())


def address_flags(customer: str, events: list[Event], rules: Rules) -> tuple[list[dict], dict[str, bool]]:
    """The flag rows of one customer, by the rules documented in ``projections/flags/fold.py``, applied to the
    customer's letters, returns and address changes in time order (the plan's bookkeeping, not the fold).

    Returns the rows (one per address that had returns, in the order their addresses first came back) and, per
    return's event id, whether its address was flagged just before it (what decides if it may arrive late)."""
    window = timedelta(days=rules.flag_window_days)
    records: dict[str, dict] = {}
    changed_at: datetime | None = None
    flagged_before: dict[str, bool] = {}
    for e in sorted(events, key=lambda e: e.time):
        d = e.data
        if isinstance(d, ev.MailReturned):
            rec = records.setdefault(_address_key(d.address), {
                "address": d.address.one_line(), "returns": [], "flagged": False, "actions": [], "version": 0})
            flagged_before[e.id] = rec["flagged"]
            # The window ends at the latest return (inclusive); returns before the latest change do not count.
            returns = [*rec["returns"], e.time]
            rec["returns"] = sorted(r for r in returns if r >= max(returns) - window)
            counting = [r for r in rec["returns"] if changed_at is None or r > changed_at]
            if not rec["flagged"] and len(counting) >= rules.flag_threshold:
                rec["flagged"] = True
                rec["actions"].append("flagged")
            rec["version"] += 1
            rec["status"] = "flagged" if rec["flagged"] else "returned"
        elif isinstance(d, ev.MailSent):
            rec = records.get(_address_key(d.address))
            if rec is not None and rec["flagged"] and (changed_at is None or e.time > changed_at):
                rec["actions"].append("mail_sent_alert")
                rec["version"] += 1
                rec["status"] = "flagged"
        elif isinstance(d, ev.AddressChanged):
            for key, rec in records.items():
                if rec["flagged"]:
                    confirmed = key == _address_key(d.address)
                    rec["flagged"] = False
                    rec["actions"].append("cleared: address confirmed" if confirmed else "cleared: address changed")
                    if confirmed:
                        rec["returns"] = []
                    rec["version"] += 1
                    rec["status"] = "cleared"
            changed_at = e.time if changed_at is None else max(changed_at, e.time)
    rows = [{"customer_id": customer, "address": rec["address"], "status": rec["status"],
             "returns": len(rec["returns"]),
             "first_return": rec["returns"][0].isoformat() if rec["returns"] else None,
             "last_return": rec["returns"][-1].isoformat() if rec["returns"] else None,
             "actions": rec["actions"], "version": rec["version"]} for rec in records.values()]
    return rows, flagged_before


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
        self.moves: dict[str, list[tuple[datetime, ev.PostalAddress]]] = {}  # customer -> (from, address)
        self.violations: list[dict] = []
        self.subjects: dict[str, set[str]] = {}     # customer -> told subjects outside the catalogue
        self.late_returns: dict[str, timedelta] = {}  # return event id -> delay before it is published
        self.story_told_until = self.start
        self.identity_links: dict[str, list[Event]] = {}  # anonymous identifier -> its link and unlink events

    # --- identities and time ---------------------------------------------------------------------------------------
    def next_ref(self, kind: str) -> str:
        self.ref += 1
        return f"{self.prefix}-{kind}{self.ref}"

    def customer_id(self, i: int) -> str:
        return f"{self.prefix}-c{i:04d}"

    def new_address(self) -> ev.PostalAddress:
        city, pc = self.rng.choice(CITIES)
        return ev.PostalAddress(
            street=self.rng.choice(STREETS), house_number=str(self.rng.randint(1, 180)),
            postcode=f"{pc}{self.rng.randint(10, 99)} {self.rng.choice('ABCDEGHJKLMNPRSTVWXZ')}"
                     f"{self.rng.choice('ABCDEGHJKLMNPRSTVWXZ')}", city=city)

    def address(self, customer: str) -> ev.PostalAddress:
        """The address the customer had at the start."""
        if customer not in self.addresses:
            self.addresses[customer] = self.new_address()
        return self.addresses[customer]

    def other_address(self, old: ev.PostalAddress) -> ev.PostalAddress:
        while True:
            new = self.new_address()
            if _address_key(new) != _address_key(old):
                return new

    def address_at(self, customer: str, t: datetime) -> ev.PostalAddress:
        """The customer's address at ``t`` (after any address change planned before ``t``)."""
        address = self.address(customer)
        for since, new in self.moves.get(customer, []):
            if since < t:
                address = new
        return address

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

    def to_work(self, t: datetime) -> int:
        """Working seconds (08:00-20:00 of each simulated day) from the start until ``t``."""
        since = t - self.start
        return since.days * WORK_SECONDS + min(max(since.seconds - WORK_START * 3600, 0), WORK_SECONDS)

    def from_work(self, w: int) -> datetime:
        """The moment ``w`` working seconds after the start (monotone: more working seconds, a later moment)."""
        day, second = divmod(w, WORK_SECONDS)
        return self.start + timedelta(days=day, seconds=WORK_START * 3600 + second)

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

    def commit_sorted(self, j: Journey, steps: list[Step]) -> list[Event]:
        """Commit planned steps in time order; equal times are moved apart by a second (keeping their order)."""
        ordered: list[Step] = []
        for step in sorted(steps, key=lambda s: s.time):
            if ordered and step.time <= ordered[-1].time:
                step = replace(step, time=ordered[-1].time + timedelta(seconds=1))
            if step.time >= self.end:
                break
            ordered.append(step)
        return self.commit_all(j, ordered)

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
                resolve: bool, followup: bool, tell: bool = True) -> list[Step]:
        """The steps of one contact on ``channel`` starting at ``t``; ``case`` = (case id, intent); ``tell``: whether
        the contact may tell the customer catalogue values."""
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
            if tell and rng.random() < 0.35:
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
                if tell and rng.random() < 0.3:
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
                if tell and rng.random() < 0.25:
                    t = add(self.told(t + self.seconds(1, 30), channel))
            resolved(t + self.seconds(30, 300))
        elif channel == Channel.STORE:
            t = add(Step(t, channel, ev.StoreVisited(store_id=f"store-{rng.randint(1, 25)}", purpose="advice"),
                         contact=f"visit:{self.next_ref('visit')}"))
            t = opened(t + self.seconds(60, 300))
            if tell and rng.random() < 0.5:
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
            if tell and rng.random() < 0.45:
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

    def background_journey(self, customer: str, *, mail: bool, tell: bool = True) -> None:
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
                                     followup=i > 0, tell=tell)
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
            at = self.in_hours(j.last_time + self.seconds(12 * 3600, 30 * 3600))
            letter = Step(at, Channel.MAIL, ev.MailSent(letter_id=self.next_ref("L"),
                                                        address=self.address_at(customer, at),
                                                        subject="Confirmation of your request"))
            if self.fits([letter]):
                self.commit(j, letter)

    # --- returned mail and address changes -------------------------------------------------------------------------
    def post(self, customer: str) -> None:
        """Letters to an address they bounce from (the customer moved without telling, or the address is wrong),
        in one ``post`` journey on the mail channel; the flag rows follow from the rules (``address_flags``)."""
        rng = self.rng
        kind = rng.choices(list(POST_KINDS), list(POST_KINDS.values()))[0]
        home = self.address(customer)
        gap = max(1, self.days // 6)            # days between letters
        lag = (1, max(1, min(5, self.days // 6)))  # days until a letter comes back
        steps: list[Step] = []

        def send(t: datetime, address: ev.PostalAddress, bounce: bool, reasons=(ev.ReturnReason.MOVED,
                 ev.ReturnReason.ADDRESSEE_UNKNOWN)) -> datetime:
            """A letter sent at ``t``; the time it comes back, or ``t`` when it is delivered."""
            letter = self.next_ref("L")
            steps.append(Step(t, Channel.MAIL, ev.MailSent(letter_id=letter, address=address,
                                                           subject=rng.choice(LETTERS))))
            if not bounce:
                return t
            back = self.in_hours(t + timedelta(days=rng.randint(*lag), seconds=rng.randint(0, 6 * 3600)))
            steps.append(Step(back, Channel.MAIL, ev.MailReturned(letter_id=letter, address=address,
                                                                  reason=rng.choice(reasons))))
            return back

        def later(t: datetime, low: int, high: int) -> datetime:
            return self.in_hours(t + timedelta(days=rng.randint(low, high), seconds=rng.randint(0, 4 * 3600)))

        def card(t: datetime, address: ev.PostalAddress) -> None:
            """The customer's reply card by post: a new address, or the same one confirmed."""
            steps.append(Step(t, Channel.MAIL, ev.AddressChanged(address=address, previous=home)))

        t = self.start + timedelta(days=rng.randrange(max(1, int(self.days * 0.4))), hours=WORK_START,
                                   seconds=rng.randint(0, 4 * 3600))
        if kind == "returned":  # one letter comes back, the others arrive
            n = rng.choice((1, 2, 3))
            bounced = rng.randrange(n)
            for i in range(n):
                send(t, home, i == bounced, (ev.ReturnReason.REFUSED, ev.ReturnReason.ADDRESS_INCOMPLETE,
                                             ev.ReturnReason.OTHER))
                t = later(t, gap, 2 * gap)
        elif kind == "flagged":  # every letter comes back; those sent after the second return raise alerts
            for _ in range(rng.choice((2, 3, 3, 4))):
                send(t, home, True)
                t = later(t, gap, 2 * gap)
        else:  # flagged by two returns, then a card clears the flag
            last = send(t, home, True)
            last = max(last, send(later(t, gap, 2 * gap), home, True))
            if kind == "changed_in_post":  # a letter is in the post when the card comes, and bounces afterwards
                sent = later(last, 1, 2)
                steps.append(Step(sent, Channel.MAIL, ev.MailSent(letter_id=(letter := self.next_ref("L")),
                                                                  address=home, subject="Final notice")))
                changed = later(sent, 1, 1)
                new = self.other_address(home)
                card(changed, new)
                steps.append(Step(later(changed, 1, max(1, gap)), Channel.MAIL, ev.MailReturned(
                    letter_id=letter, address=home, reason=ev.ReturnReason.MOVED)))
            else:
                changed = later(last, 1, max(1, gap))
                new = home if kind == "confirmed" else self.other_address(home)
                card(changed, new)
                if kind == "reflagged":  # an old system keeps writing to the old address: it bounces again
                    t = later(changed, 1, gap)
                    for _ in range(rng.choice((2, 3))):
                        send(t, home, True)
                        t = later(t, gap, 2 * gap)
                else:  # letters to the address on the card arrive
                    t = changed
                    for _ in range(rng.choice((0, 1, 2))):
                        t = later(t, gap, 2 * gap)
                        send(t, new, False)
            if new is not home and changed < self.end:
                self.moves.setdefault(customer, []).append((changed, new))
        events = self.commit_sorted(self.journey(customer, "post"), [s for s in steps if s.time < self.end])
        returns = [e for e in events if isinstance(e.data, ev.MailReturned)]
        if returns and rng.random() < LATE_RETURN_SHARE:  # the post office's return scan, reported days later
            self.late_returns[rng.choice(returns).id] = timedelta(days=rng.randint(2, 6),
                                                                  seconds=rng.randint(0, 8 * 3600))

    def web_move(self, customer: str) -> None:
        """The customer changes their address on the web portal (their letters arrive: no flag row changes)."""
        home = self.address(customer)
        t = self.contact_time(self.rng.randrange(self.days), Channel.WEB)
        new = self.other_address(home)
        changed = t + self.seconds(30, 300)
        self.commit_all(self.journey(customer, "address"), [
            Step(t, Channel.WEB, ev.WebPageViewed(session_id=self.next_ref("web"),
                                                  url="https://portal.example/account/address")),
            Step(changed, Channel.WEB, ev.AddressChanged(address=new, previous=home))])
        self.moves.setdefault(customer, []).append((changed, new))

    # --- told values -----------------------------------------------------------------------------------------------
    def telling(self, channel: Channel, t: datetime, payload: ev.Payload) -> list[Step]:
        """A short contact on ``channel`` starting at ``t`` (at most ten minutes) in which ``payload`` is told."""
        if channel == Channel.PHONE:
            call = self.next_ref("call")
            said = t + self.seconds(60, 240)
            end = said + self.seconds(60, 240)
            agent = f"agent-{self.rng.randint(1, 60)}"
            return [Step(t, channel, ev.CallStarted(call_id=call, queue="sales", agent=agent), contact=f"call:{call}"),
                    Step(said, channel, payload),
                    Step(end, channel, ev.CallEnded(call_id=call, duration_seconds=int((end - t).total_seconds())))]
        if channel == Channel.EMAIL:
            mid = self.next_ref("mail")
            sent = t + self.seconds(180, 480)
            return [Step(t, channel, ev.EmailReceived(message_id=mid, subject="A question before I order"),
                         contact=f"email:{mid}", ask="email"),
                    Step(sent, channel, ev.EmailSent(message_id=self.next_ref("mail"), in_reply_to=mid,
                                                     subject="Re: A question before I order"), answers=("email",)),
                    Step(sent + self.seconds(1, 5), channel, payload)]
        if channel in MESSAGING:
            conv = self.next_ref("conv")
            thread = f"{channel.value}:{conv}"
            sent = t + self.seconds(15, 180)
            return [Step(t, channel, ev.MessageReceived(conversation_id=conv, text="What would that cost me?"),
                         contact=f"conversation:{thread}", ask=thread),
                    Step(sent, channel, ev.MessageSent(conversation_id=conv, text="Let me look that up.",
                                                       agent=f"agent-{self.rng.randint(1, 60)}"), answers=(thread,)),
                    Step(sent + self.seconds(1, 30), channel, payload)]
        if channel == Channel.STORE:
            return [Step(t, channel, ev.StoreVisited(store_id=f"store-{self.rng.randint(1, 25)}", purpose="advice"),
                         contact=f"visit:{self.next_ref('visit')}"),
                    Step(t + self.seconds(120, 480), channel, payload)]
        if channel == Channel.WEB:
            return [Step(t, channel, ev.WebPageViewed(session_id=self.next_ref("web"),
                                                     url=f"https://portal.example{self.rng.choice(PAGES)}")),
                    Step(t + self.seconds(10, 120), channel, payload)]
        raise ValueError(f"no telling on {channel}")

    def told_pair(self, customer: str) -> tuple[str, str, ev.Payload, ev.Payload]:
        """A subject outside the catalogue not yet told to the customer, and two different values for it:
        (kind, subject, a, b)."""
        rng, used = self.rng, self.subjects.setdefault(customer, set())
        kind = rng.choices(("price", "offer", "answer"), (6, 2, 2))[0]
        options = {"price": TOLD_PRICES, "offer": tuple(TOLD_OFFERS), "answer": tuple(TOLD_ANSWERS)}[kind]
        free = [s for s in options if s not in used] or [s for s in TOLD_PRICES if s not in used]
        subject = rng.choice(free)
        used.add(subject)
        if subject in TOLD_PRICES:
            a = Decimal(rng.randint(1500, 9000)) / 100
            b = a + Decimal(rng.choice((250, 500, 750, 1000))) / 100 * rng.choice((1, -1))
            return ("price", subject, ev.PriceQuoted(subject=subject, amount=a),
                    ev.PriceQuoted(subject=subject, amount=b))
        if subject in TOLD_OFFERS:
            a, b = rng.sample(TOLD_OFFERS[subject], 2)
            return "offer", subject, ev.OfferMade(subject=subject, terms=a), ev.OfferMade(subject=subject, terms=b)
        a, b = rng.sample(TOLD_ANSWERS[subject], 2)
        return "answer", subject, ev.AnswerGiven(subject=subject, answer=a), ev.AnswerGiven(subject=subject, answer=b)

    def mismatch(self, customer: str, slot: tuple[int, int]) -> None:
        """Two channels tell the customer different values for one subject within the slot (working seconds): a
        plain mismatch, or a channel that changed its value (told before the slot) against the other one still
        telling the old value. One violation, detected at the later of the two conflicting values."""
        rng = self.rng
        kind, subject, a, b = self.told_pair(customer)
        x, y = rng.sample(TELLING, 2)
        begin, end = slot
        w = rng.randint(begin, end - MISMATCH_SLOT)
        d = rng.randint(15 * 60, end - 20 * 60 - w)
        first, second = self.from_work(w), self.from_work(w + d)
        earlier = max(self.to_work(self.start), self.to_work(first - timedelta(days=20)))
        steps: list[Step] = []
        if rng.random() < 0.3 and w - 3600 > earlier:  # x told a before, now tells b; y still tells a
            steps += self.telling(x, self.from_work(rng.randint(earlier, w - 3600)), a)
            x_value, y_value = b, a
            if rng.random() < 0.5:
                first, second = second, first
        else:
            x_value, y_value = a, b
        steps += self.telling(x, first, x_value) + self.telling(y, second, y_value)
        events = self.commit_sorted(self.journey(customer, "told"), steps)
        conflicting = [e for e in events if told_value(e.data) and e.time >= self.from_work(w)]
        assert len(conflicting) == 2 and {e.channel for e in conflicting} == {x, y}
        assert all(e.time < self.from_work(end) for e in events), "a mismatch must stay within its slot"
        detected = conflicting[-1]
        self.violations.append({
            "violation_id": f"violation-{detected.id}", "customer_id": customer, "kind": kind, "subject": subject,
            "channels": [e.channel.value for e in conflicting], "values": [told_value(e.data)[2] for e in conflicting],
            "event_ids": [e.id for e in conflicting], "detected_at": detected.time.isoformat()})

    def told_no_violation(self, customer: str, pattern: str) -> None:
        """Told values that are no violation: ``change`` (one channel tells a, later b), ``agree`` (two channels
        tell the same value), ``apart`` (two channels tell different values further apart than the window)."""
        rng = self.rng
        _kind, _subject, a, b = self.told_pair(customer)
        x, y = rng.sample(TELLING, 2)
        window = self.rules.consistency_window_days
        if pattern == "change":
            if self.days < 2:
                return
            d1, d2 = sorted(rng.sample(range(self.days), 2))
            plan = [(x, d1, a), (x, d2, b)]
        elif pattern == "agree":
            d1, d2 = sorted((rng.randrange(self.days), rng.randrange(self.days)))
            plan = [(x, d1, a), (y, d2, a)]
        else:
            if self.days < window + 3:
                return
            d1 = rng.randrange(self.days - window - 2)
            plan = [(x, d1, a), (y, rng.randint(d1 + window + 2, self.days - 1), b)]
        steps: list[Step] = []
        for channel, day, value in plan:
            t = self.contact_time(day, channel)
            if steps and t <= steps[-1].time + timedelta(minutes=15):
                t = steps[-1].time + self.seconds(15 * 60, 3600)
            steps += self.telling(channel, t, value)
        if self.fits(steps):
            self.commit_all(self.journey(customer, "told"), steps)

    def told_values(self, pool: list[str]) -> None:
        """Mismatches for a share of ``pool`` in disjoint slots in customer-id order, after the story's, within the
        last consistency window; then told values that are no violation."""
        rng, window = self.rng, timedelta(days=self.rules.consistency_window_days)
        begin = self.to_work(max(self.story_told_until + timedelta(minutes=10), self.end - window))
        assert self.from_work(begin) >= self.end - window  # nothing the customer is told later can prune these
        room = self.days * WORK_SECONDS - begin
        count = min(round(MISMATCH_SHARE * len(pool)), max(0, room // MISMATCH_SLOT), len(pool))
        if count:
            length = room // count
            for k, customer in enumerate(sorted(rng.sample(pool, count))):
                self.mismatch(customer, (begin + k * length, begin + (k + 1) * length))
        for customer in pool:
            for pattern, share in (("change", CHANGE_SHARE), ("agree", AGREE_SHARE), ("apart", APART_SHARE)):
                if rng.random() < share:
                    self.told_no_violation(customer, pattern)

    # --- anonymous first contacts and the identity graph ------------------------------------------------------------
    def channel_identity(self, channel: Channel) -> tuple[str, str, str]:
        """A new identity on ``channel``: (its identifier in normal form, the value as an agent types it into a link
        event, the platform handle its messages carry). The seed is part of it: two simulations' traffic in one
        store do not mix up their customers."""
        self.ref += 1
        name, n = self.rng.choice(NAMES), self.ref
        typed = {Channel.TWITTER: f"@{name}_{self.seed}_{n}", Channel.FACEBOOK: f"{name}.{self.seed}.{n}",
                 Channel.WHATSAPP: f"+31 6 {self.seed % 100:02d}{n // 10_000 % 100:02d} {n % 10_000:04d}"}[channel]
        return identifier(ANONYMOUS[channel], typed), typed, "" if channel == Channel.WHATSAPP else typed

    def anonymous_contact(self, channel: Channel, t: datetime, handle: str, identify: bool) -> list[Step]:
        """A conversation started on ``channel`` by someone only known by their identity; with ``identify`` the agent
        asks for the customer number and gets it."""
        conv = self.next_ref("conv")
        thread = f"{channel.value}:{conv}"
        low, high = REPLY_SECONDS[channel]
        asked = Step(t, channel, ev.MessageReceived(conversation_id=conv, text="Hi, my letter never arrived",
                                                    handle=handle), contact=f"conversation:{thread}", ask=thread)
        answer = "Sorry to hear that! Could you send us your customer number?" if identify else "Happy to help!"
        answered = Step(t + self.seconds(low, high), channel, ev.MessageSent(
            conversation_id=conv, text=answer, agent=f"agent-{self.rng.randint(1, 60)}"), answers=(thread,))
        if not identify:
            return [asked, answered]
        return [asked, answered, Step(answered.time + self.seconds(60, 900), channel, ev.MessageReceived(
            conversation_id=conv, text="Sure, here it is", handle=handle), contact=f"conversation:{thread}")]

    def link(self, customer: str, ident: str, at: datetime, channel: Channel, payload: ev.Payload) -> None:
        """The agent links or unlinks the identity: one event of the customer, in a journey of its own."""
        [event] = self.commit_all(self.journey(customer, "link"), [Step(at, channel, payload)])
        self.identity_links[ident].append(event)

    def anonymous_first(self, customer: str, variant: str, pool: list[str]) -> None:
        """The customer first writes anonymously and is identified; then the identity is re-linked to another
        customer or unlinked, as ``variant`` says (with four days or more to simulate there is always room)."""
        rng = self.rng
        channel = rng.choice(tuple(ANONYMOUS))
        ident, typed, handle = self.channel_identity(channel)
        first_days = self.days if variant == "linked" else max(1, self.days - 3)  # room for what follows
        for _attempt in range(30):  # a conversation that runs past the simulated days is drawn again
            steps = self.anonymous_contact(channel, self.contact_time(rng.randrange(first_days), channel), handle,
                                           identify=True)
            linked = steps[-1].time + self.seconds(60, 1800)
            if linked < self.end:
                break
        else:
            return
        self.identity_links[ident] = []
        self.commit_all(self.journey(ident, "anon"), steps)
        kind = ANONYMOUS[channel]
        self.link(customer, ident, linked, channel, ev.IdentityLinked(kind=kind, value=typed))
        if rng.random() < 0.6:  # writes again later: the webcare tool still knows only the identity
            again = self.anonymous_contact(channel, self.in_hours(linked + self.seconds(3600, 2 * 86400)), handle,
                                           identify=False)
            if self.fits(again):
                self.commit_all(self.journey(ident, "anon"), again)
        later = self.in_hours(linked + self.seconds(6 * 3600, 2 * 86400))
        if variant == "linked" or later >= self.end:
            return
        if variant == "relinked":  # it was someone else's: linked to them, no unlink needed
            other = rng.choice([c for c in pool if c != customer])
            self.link(other, ident, later, channel, ev.IdentityLinked(kind=kind, value=ident.partition(":")[2]))
        else:
            self.link(customer, ident, later, channel, ev.IdentityUnlinked(kind=kind, value=typed))

    def identities(self, pool: list[str]) -> None:
        """Anonymous first contacts for a share of ``pool``, at least one of each variant, the rest mostly linked."""
        if len(pool) < 2:
            return
        count = min(len(pool), max(len(IDENTITY_VARIANTS), round(IDENTITY_SHARE * len(pool))))
        for k, customer in enumerate(self.rng.sample(pool, count)):
            variant = IDENTITY_VARIANTS[k] if k < len(IDENTITY_VARIANTS) else \
                self.rng.choices(IDENTITY_VARIANTS, (6, 2, 2))[0]
            self.anonymous_first(customer, variant, pool)

    def owners(self) -> dict[str, str | None]:
        """The customer each anonymous identity belongs to at the end: the newest link, unless that customer
        unlinked it later (the plan's links never share a moment)."""
        owners = {}
        for ident, links in self.identity_links.items():
            assert len({e.time for e in links}) == len(links)
            owner = None
            for e in sorted(links, key=lambda e: e.time):
                if isinstance(e.data, ev.IdentityLinked):
                    owner = e.subject
                elif owner == e.subject:
                    owner = None
            owners[ident] = owner
        return owners

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
        self.commit_all(self.journey(customer, "returned-mail"), self.episodes(ideal))
        # The flag follows from the rules (see ``address_flags``): flagged at the second return, the third letter
        # raises an alert; ``run`` checks that the rules make of the plan what the story tells.

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
        self.story_told_until = events[-1].time
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
        pool = [c for c in all_customers if c not in story_customers.values()]
        bouncing = set()
        for customer in pool:
            if self.rng.random() < BOUNCE_SHARE:
                bouncing.add(customer)
                self.post(customer)
            elif self.rng.random() < WEB_MOVE_SHARE:
                self.web_move(customer)
        self.told_values(pool)
        for customer in all_customers:
            story = customer in story_customers.values()
            n = self.rng.randint(0 if story else 1, max(1, min(4, 1 + self.days // 3)))
            for _ in range(n):
                # No other letters for the returned-mail story and the customers whose letters bounce: their flags
                # stay exactly as planned. No other told values for the price-mismatch story: nothing prunes its
                # first quote before the second arrives, whatever the arrival order.
                self.background_journey(customer, mail=customer != story_customers["returned_mail"]
                                        and customer not in bouncing,
                                        tell=customer != story_customers["price_mismatch"])
        self.identities(pool)  # planned last: the traffic planned before is the same with or without it
        events = sorted(self.events, key=lambda e: (e.time, e.subject, int(e.id.rsplit("-", 1)[1])))
        flags, flagged_before = self.flags(events)
        [story_flag] = flags[story_customers["returned_mail"]]
        assert (story_flag["status"], story_flag["returns"], story_flag["actions"]) == (
            "flagged", 3, ["flagged", "mail_sent_alert"]), story_flag
        published = self.publish(events, flagged_before, set(story_customers.values()))
        return Simulation(self.seed, self.customers, self.days, self.start, published,
                          self.truth(events, published, flags, all_customers, story_customers))

    def flags(self, events: list[Event]) -> tuple[dict[str, list[dict]], dict[str, bool]]:
        """The flag rows per customer with any (see ``address_flags``), and per return whether its address was
        flagged before it."""
        relevant: dict[str, list[Event]] = {}
        for e in events:
            if isinstance(e.data, (ev.MailSent, ev.MailReturned, ev.AddressChanged)):
                relevant.setdefault(e.subject, []).append(e)
        flags, flagged_before = {}, {}
        for customer, mail in relevant.items():
            rows, before = address_flags(customer, mail, self.rules)
            if rows:
                # What keeps the truth order-independent and unambiguous (see the module docstring).
                assert len(rows) == 1, f"{customer}: letters bounce from one address per customer"
                assert all(e.channel == Channel.MAIL for e in mail), f"{customer}: flag events off the mail channel"
                flags[customer] = rows
                flagged_before.update(before)
        return flags, flagged_before

    def publish(self, events: list[Event], flagged_before: dict[str, bool], stories: set[str]) -> list[Event]:
        """The publishing order: time order, except late arrivals (published later) and duplicates (published
        again a few seconds after the first time). The stories' events are published in time order, once."""
        rng = self.rng
        mail: dict[str, list[Event]] = {}
        for e in events:
            if e.channel == Channel.MAIL:
                mail.setdefault(e.subject, []).append(e)
        published: list[tuple[datetime, str, int, int, Event]] = []
        for i, e in enumerate(events):
            at = e.time
            if e.subject not in stories:
                if isinstance(e.data, ev.FeedbackGiven) and rng.random() < LATE_SURVEY_SHARE:
                    at = e.time + self.seconds(20 * 3600, 72 * 3600)  # the survey tool's export
                elif e.channel == Channel.PARTNER:  # the travel agency's nightly feed
                    day = e.time.date() + timedelta(days=1)
                    at = datetime(day.year, day.month, day.day, 2, tzinfo=UTC)
                elif e.id in self.late_returns:  # the post office's return scan
                    late = e.time + self.late_returns[e.id]
                    overtaken = [m for m in mail[e.subject] if e.time < m.time <= late]
                    # Order-safe: it overtakes no address change, and either no mail event of the customer or
                    # only ones that cannot change its effect (its address was flagged before it).
                    if not any(isinstance(m.data, ev.AddressChanged) for m in overtaken) and (
                            not overtaken or flagged_before[e.id]):
                        at = late
            published.append((at, e.subject, i, 0, e))
            if e.subject not in stories and rng.random() < DUPLICATE_SHARE:  # a producer retry, seconds later
                published.append((at + self.seconds(1, 90), e.subject, i, 1, e))
        published.sort(key=lambda p: p[:4])
        return [p[4] for p in published]

    def truth(self, events: list[Event], published: list[Event], flags: dict[str, list[dict]],
              customers: list[str], stories: dict[str, str]) -> dict:
        subjects = customers + list(self.identity_links)
        per_customer = Counter(e.subject for e in events)
        derived = Counter()
        for customer, rows in flags.items():  # one derived event per flag, alert and clear
            derived[customer] += sum(a in ("flagged", "mail_sent_alert") or a.startswith("cleared")
                                     for f in rows for a in f["actions"])
        for v in self.violations:
            derived[v["customer_id"]] += 1
        assert not set(derived) & set(self.identity_links), "derived events about an anonymous identity"
        journeys: dict[str, list[dict]] = {s: [] for s in subjects}
        for j in self.journeys.values():
            journeys[j.customer].append(j.truth())
        for rows in journeys.values():
            rows.sort(key=lambda r: (r["started_at"], r["journey_id"]))
        violations = sorted(self.violations, key=lambda v: (v["detected_at"], v["customer_id"]))
        # Mismatches are in disjoint slots in customer-id order: time order is customer order (one each).
        assert violations == sorted(violations, key=lambda v: (v["customer_id"], v["subject"]))
        all_journeys = [j for rows in journeys.values() for j in rows]
        rows = [f for fs in flags.values() for f in fs]
        late = Counter()
        seen: set[str] = set()
        latest: dict[str, datetime] = {}
        for e in published:  # late: published after a later event of the same customer
            if e.id in seen:
                continue
            seen.add(e.id)
            if e.subject in latest and latest[e.subject] > e.time:
                late[e.name] += 1
            latest[e.subject] = max(latest.get(e.subject, e.time), e.time)
        owners = self.owners()
        identities = {ident: {"customer_id": owners[ident], "links": [
            {"action": "link" if isinstance(e.data, ev.IdentityLinked) else "unlink", "customer_id": e.subject,
             "event_id": e.id, "time": e.time.isoformat()} for e in sorted(links, key=lambda e: e.time)]}
            for ident, links in self.identity_links.items()}
        whose = {**{c: c for c in customers}, **{i: c for i, c in owners.items() if c is not None}}
        resolved: dict[str, list[str]] = {c: [] for c in customers}
        for e in sorted(events, key=lambda e: (e.time, e.source, e.id)):  # the timeline's order
            if e.subject in whose:
                resolved[whose[e.subject]].append(e.id)
        return {
            "seed": self.seed, "customers": self.customers, "days": self.days, "start": self.start.isoformat(),
            "end": self.end.isoformat(), "rules": asdict(self.rules), "stories": stories,
            "events": len(events),  # distinct events; ``published`` counts the duplicates too
            "published": len(published),
            "per_channel": dict(sorted(Counter(e.channel.value for e in events).items())),
            "per_type": dict(sorted(Counter(e.name for e in events).items())),
            "per_customer": {s: per_customer.get(s, 0) for s in subjects},
            # Timeline rows per subject once projected: its events plus the derived events the projections add.
            "timeline": {s: per_customer.get(s, 0) + derived.get(s, 0) for s in subjects},
            "identities": identities,
            "resolved_timeline": resolved,
            "flags": {c: flags[c] for c in customers if c in flags},
            "violations": violations,
            "journeys": journeys,
            "journey_metrics": {
                "journeys": len(self.journeys),
                "cross_channel": sum(len(j["channels"]) > 1 for j in all_journeys),
                "with_transfers": sum(j["transfers"] > 0 for j in all_journeys),
                "resolved": sum(j["resolved"] for j in all_journeys),
                "first_contact_resolution": sum(j["first_contact_resolution"] for j in all_journeys),
                "repeat_contacts": sum(j["repeat_contacts"] for j in all_journeys),
            },
            "summary": {
                "events": len(events), "published": len(published), "duplicates": len(published) - len(events),
                "late_arrivals": sum(late.values()), "late_by_type": dict(sorted(late.items())),
                "flagged_addresses": sum("flagged" in f["actions"] for f in rows),
                "addresses_with_returns": len(rows),
                "status": dict(sorted(Counter(f["status"] for f in rows).items())),
                "cleared": dict(sorted(Counter(a for f in rows for a in f["actions"]
                                               if a.startswith("cleared")).items())),
                "reflagged": sum(f["actions"].count("flagged") > 1 for f in rows),
                "mail_to_flagged_alerts": sum(f["actions"].count("mail_sent_alert") for f in rows),
                "violations": len(violations),
                "transfers": sum(j["transfers"] for j in all_journeys),
                "journeys_with_transfers": sum(j["transfers"] > 0 for j in all_journeys),
                "anonymous_events": sum(per_customer[i] for i in identities),
                "identities": len(identities),
                "identities_relinked": sum(len({link["customer_id"] for link in i["links"]
                                                if link["action"] == "link"}) > 1 for i in identities.values()),
                "identities_unlinked": sum(i["customer_id"] is None for i in identities.values()),
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
