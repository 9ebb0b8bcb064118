"""Pure stateful fold: count returned letters per address, flag an address that keeps bouncing, clear the flag.

State (per customer, JSON-serialisable; times are integer microseconds since the Unix epoch, UTC)::

    {"addresses": {address_hash: {"address": one line,
                                  "returns": [[time, event id, source], ...],  # sorted by (time, event id)
                                  "flagged": bool, "actions": [str, ...], "version": int}},
     "changed_at": time}  # the latest AddressChanged (absent before the first one)

The fold updates the state it is given in place and returns it (the runtime keeps only the returned state);
redelivered events are deduplicated by the runtime, and a return already counted is ignored here too.

Rules:

* ``MailReturned`` counts against its address. Returns older than ``rules.flag_window_days`` before the latest
  return of that address are dropped (the window is inclusive: returns exactly that many days apart count
  together). When the returns left reach ``rules.flag_threshold`` and the address is not flagged, it is flagged:
  an ``AddressFlagged`` event (``flag-<cause id>``) and a row with status ``flagged``. A further return to a
  flagged address only updates its row; a return below the threshold writes a row with status ``returned``.
* ``MailSent`` to a flagged address: a ``MailToFlaggedAddress`` event (``mail-to-flagged-<cause id>``) and the
  row gets the action ``mail_sent_alert``. Mail to an address that is not flagged changes nothing.
* ``AddressChanged`` clears every flag of the customer: the flag of the address it names is confirmed
  (reason ``address confirmed``, and its returns are reset), every other flag is for an address the customer
  left (reason ``address changed``; its returns are kept, so a letter still sent there and bouncing flags it
  again). Each clear is an ``AddressFlagCleared`` event (``flag-cleared-<cause id>-<hash>``) and a row with status
  ``cleared``.
* Any other event: the state unchanged, no rows, no derived events.

Each row is the whole current state of one (customer, address) with a per-address ``version`` that grows with
every row, so the table (ReplacingMergeTree(version), read with FINAL) keeps the newest. Derived events go to the
mail channel (the team that acts), at the cause's time, with its correlation id and the cause as causation id.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from projections.origin import Origin
from projections.rules import Rules
from projections.stateful import Folded, StatefulProjection
from schemas import events as ev
from schemas.channels import Channel
from schemas.derived import AddressFlagCleared, AddressFlagged, MailToFlaggedAddress
from schemas.envelope import Event

TABLE = "address_flags"
SOURCE = "/omnitrail/projections/flags"
SCHEMA = pa.schema([
    ("customer_id", pa.string()), ("address_hash", pa.string()), ("address", pa.string()), ("status", pa.string()),
    ("returns", pa.uint32()), ("first_return", pa.timestamp("ms", tz="UTC")),
    ("last_return", pa.timestamp("ms", tz="UTC")), ("actions", pa.list_(pa.string())),
    ("updated_at", pa.timestamp("ms", tz="UTC")), ("version", pa.uint64()), ("event_id", pa.string()),
    ("topic", pa.string()), ("partition", pa.uint32()), ("offset", pa.uint64()),
])

FLAGGED, CLEARED, RETURNED = "flagged", "cleared", "returned"
MAIL_SENT_ALERT = "mail_sent_alert"
CHANGED, CONFIRMED = "address changed", "address confirmed"
_ID_MAX = 200  # the envelope's limit on ids
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_DAY = 86_400_000_000  # microseconds


def address_hash(address: ev.PostalAddress) -> str:
    """A stable key of a postal address: sha256 of its one-line form, casefolded, whitespace collapsed (16 hex)."""
    return _hash_line(address.one_line())


def _hash_line(line: str) -> str:
    return hashlib.sha256(" ".join(line.casefold().split()).encode()).hexdigest()[:16]


def micros(t: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact, unlike ``timestamp()``)."""
    return (t - EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(0, 0, us)


def _time(ret: list) -> int:
    return ret[0]


def _order(ret: list) -> tuple[int, str]:
    """The order of an address's returns: by time, then event id (arrival order among equals)."""
    return ret[0], ret[1]


def _derived_id(text: str) -> str:
    """A deterministic derived-event id; shortened with a hash if the cause's id makes it too long."""
    if len(text) <= _ID_MAX:
        return text
    return f"{text[:_ID_MAX - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _derive(payload, cause: Event, id: str) -> Event:
    return Event.of(payload, customer=cause.subject, channel=Channel.MAIL, source=SOURCE, id=_derived_id(id),
                    time=cause.time, correlationid=cause.correlationid, causationid=cause.id)


def _row(customer: str, hash_: str, rec: dict, status: str, cause: Event, origin: Origin) -> dict:
    returns = rec["returns"]  # sorted by time
    return {
        "customer_id": customer, "address_hash": hash_, "address": rec["address"], "status": status,
        "returns": len(returns), "first_return": from_micros(returns[0][0]) if returns else None,
        "last_return": from_micros(returns[-1][0]) if returns else None,
        "actions": list(rec["actions"]),  # a copy: the state's list grows in place
        "updated_at": cause.time, "version": rec["version"], "event_id": cause.id, "topic": origin.topic,
        "partition": origin.partition, "offset": origin.offset,
    }


def _returned(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    data: ev.MailReturned = event.data
    line = data.address.one_line()
    h = _hash_line(line)
    addresses = state.setdefault("addresses", {})
    rec = addresses.get(h)
    if rec is None:
        rec = addresses[h] = {"address": line, "returns": [], "flagged": False, "actions": [], "version": 0}
    returns = rec["returns"]
    id_, source = event.id, event.source
    for r in returns:
        if r[1] == id_ and r[2] == source:
            return Folded(state)  # already counted (a redelivery the caller did not deduplicate)
    t = micros(event.time)
    returns.insert(bisect_right(returns, (t, id_), key=_order), [t, id_, source])
    # The window ends at the latest return: a late-arriving old return does not widen it.
    del returns[:bisect_left(returns, returns[-1][0] - rules.flag_window_days * _DAY, key=_time)]
    rec["address"] = line
    rec["version"] += 1
    derived = []
    # Returns from before the customer's latest address change or confirmation are history, not a reason to flag
    # (channels have their own topics, so such a return may well arrive after the change).
    changed_at = state.get("changed_at")
    counting = len(returns) if changed_at is None else len(returns) - bisect_right(returns, changed_at, key=_time)
    if not rec["flagged"] and counting >= rules.flag_threshold:
        rec["flagged"] = True
        rec["actions"].append(FLAGGED)
        derived.append(_derive(AddressFlagged(
            address=ev.PostalAddress.model_validate(data.address, from_attributes=True), address_hash=h,
            returns=len(returns), first_return=from_micros(returns[0][0]), last_return=from_micros(returns[-1][0]),
            return_event_ids=[r[1] for r in returns]),
            event, f"flag-{event.id}"))
    status = FLAGGED if rec["flagged"] else RETURNED
    return Folded(state, [_row(event.subject, h, rec, status, event, origin)], derived)


def _sent(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    addresses = state.get("addresses")
    if not addresses:
        return Folded(state)  # no returns, so no flag: spare the hash
    data: ev.MailSent = event.data
    h = address_hash(data.address)
    rec = addresses.get(h)
    changed_at = state.get("changed_at")
    if rec is None or not rec["flagged"] or (changed_at is not None and micros(event.time) <= changed_at):
        return Folded(state)
    derived = _derive(MailToFlaggedAddress(letter_id=data.letter_id, address_hash=h), event,
                      f"mail-to-flagged-{event.id}")
    rec["actions"].append(MAIL_SENT_ALERT)
    rec["version"] += 1
    return Folded(state, [_row(event.subject, h, rec, FLAGGED, event, origin)], [derived])


def _changed(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    addresses = state.get("addresses", {})
    flagged = sorted(h for h, rec in addresses.items() if rec["flagged"])
    rows, derived = [], []
    if flagged:
        new_hash = address_hash(event.data.address)
        reasons = [(h, CONFIRMED if h == new_hash else CHANGED) for h in flagged]
        derived = [_derive(AddressFlagCleared(address_hash=h, reason=reason), event, f"flag-cleared-{event.id}-{h}")
                   for h, reason in reasons]
        for h, reason in reasons:
            rec = addresses[h]
            rec["flagged"] = False
            rec["actions"].append(f"cleared: {reason}")
            rec["version"] += 1
            if reason == CONFIRMED:
                rec["returns"] = []
            rows.append(_row(event.subject, h, rec, CLEARED, event, origin))
    t, previous = micros(event.time), state.get("changed_at")
    state["changed_at"] = t if previous is None else max(previous, t)
    return Folded(state, rows, derived)


_FOLDS = {ev.MailReturned.name: _returned, ev.MailSent.name: _sent, ev.AddressChanged.name: _changed}  # by name


def fold(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    apply = _FOLDS.get(event.name)
    if apply is None:
        return Folded(state)
    return apply(state, event, origin, rules)


PROJECTION = StatefulProjection("flags", TABLE, SCHEMA, fold, versioned_key=("customer_id", "address_hash"),
                                handles=frozenset(_FOLDS))
