"""Pure stateful fold: count returned letters per address, flag an address that keeps bouncing, clear the flag.

State (per customer, JSON-serialisable)::

    {"addresses": {address_hash: {"address": one line, "returns": [{"id", "source", "time" (ISO 8601)}, ...],
                                  "flagged": bool, "actions": [str, ...], "version": int}}}

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
from datetime import datetime, timedelta

import pyarrow as pa

from projections.origin import Origin
from projections.stateful import Folded, Rules, StatefulProjection
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


def address_hash(address: ev.PostalAddress) -> str:
    """A stable key of a postal address: sha256 of its one-line form, casefolded, whitespace collapsed (16 hex)."""
    normalised = " ".join(address.one_line().casefold().split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:16]


def _derived_id(text: str) -> str:
    """A deterministic derived-event id; shortened with a hash if the cause's id makes it too long."""
    if len(text) <= _ID_MAX:
        return text
    return f"{text[:_ID_MAX - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def _time(entry: dict) -> datetime:
    return datetime.fromisoformat(entry["time"])


def _derive(payload, cause: Event, id: str) -> Event:
    return Event.of(payload, customer=cause.subject, channel=Channel.MAIL, source=SOURCE, id=_derived_id(id),
                    time=cause.time, correlationid=cause.correlationid, causationid=cause.id)


def _row(customer: str, hash_: str, rec: dict, status: str, cause: Event, origin: Origin) -> dict:
    times = sorted(_time(r) for r in rec["returns"])
    return {
        "customer_id": customer, "address_hash": hash_, "address": rec["address"], "status": status,
        "returns": len(times), "first_return": times[0] if times else None,
        "last_return": times[-1] if times else None, "actions": list(rec["actions"]), "updated_at": cause.time,
        "version": rec["version"], "event_id": cause.id, "topic": origin.topic, "partition": origin.partition,
        "offset": origin.offset,
    }


def _returned(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    data: ev.MailReturned = event.data
    h = address_hash(data.address)
    addresses = state.get("addresses", {})
    old = addresses.get(h, {"address": data.address.one_line(), "returns": [], "flagged": False, "actions": [],
                            "version": 0})
    if any(r["id"] == event.id and r.get("source") == event.source for r in old["returns"]):
        return Folded(state)  # already counted (a redelivery the caller did not deduplicate)
    returns = [*old["returns"], {"id": event.id, "source": event.source, "time": event.time.isoformat()}]
    # The window ends at the latest return: a late-arriving old return does not widen it.
    since = max(_time(r) for r in returns) - timedelta(days=rules.flag_window_days)
    returns = sorted((r for r in returns if _time(r) >= since), key=lambda r: (_time(r), r["id"]))
    rec = {**old, "address": data.address.one_line(), "returns": returns, "version": old["version"] + 1}
    derived = []
    # Returns from before the customer's latest address change or confirmation are history, not a reason to flag
    # (channels have their own topics, so such a return may well arrive after the change).
    changed_at = state.get("changed_at")
    counting = [r for r in returns if changed_at is None or _time(r) > datetime.fromisoformat(changed_at)]
    if not rec["flagged"] and len(counting) >= rules.flag_threshold:
        rec["flagged"] = True
        rec["actions"] = [*rec["actions"], FLAGGED]
        derived.append(_derive(AddressFlagged(
            address=data.address, address_hash=h, returns=len(returns), first_return=_time(returns[0]),
            last_return=_time(returns[-1]), return_event_ids=[r["id"] for r in returns]),
            event, f"flag-{event.id}"))
    status = FLAGGED if rec["flagged"] else RETURNED
    new_state = {**state, "addresses": {**addresses, h: rec}}
    return Folded(new_state, [_row(event.subject, h, rec, status, event, origin)], derived)


def _sent(state: dict, event: Event, origin: Origin) -> Folded:
    data: ev.MailSent = event.data
    h = address_hash(data.address)
    addresses = state.get("addresses", {})
    old = addresses.get(h)
    changed_at = state.get("changed_at")
    if old is None or not old["flagged"] or (changed_at is not None and event.time <= datetime.fromisoformat(changed_at)):
        return Folded(state)
    rec = {**old, "actions": [*old["actions"], MAIL_SENT_ALERT], "version": old["version"] + 1}
    derived = _derive(MailToFlaggedAddress(letter_id=data.letter_id, address_hash=h), event,
                      f"mail-to-flagged-{event.id}")
    new_state = {**state, "addresses": {**addresses, h: rec}}
    return Folded(new_state, [_row(event.subject, h, rec, FLAGGED, event, origin)], [derived])


def _changed(state: dict, event: Event, origin: Origin) -> Folded:
    data: ev.AddressChanged = event.data
    new_hash = address_hash(data.address)
    addresses = dict(state.get("addresses", {}))
    rows, derived = [], []
    for h in sorted(h for h, rec in addresses.items() if rec["flagged"]):
        old = addresses[h]
        reason = CONFIRMED if h == new_hash else CHANGED
        rec = {**old, "flagged": False, "actions": [*old["actions"], f"cleared: {reason}"],
               "version": old["version"] + 1, "returns": [] if reason == CONFIRMED else old["returns"]}
        addresses[h] = rec
        rows.append(_row(event.subject, h, rec, CLEARED, event, origin))
        derived.append(_derive(AddressFlagCleared(address_hash=h, reason=reason), event,
                               f"flag-cleared-{event.id}-{h}"))
    previous = state.get("changed_at")
    changed_at = max(datetime.fromisoformat(previous), event.time) if previous else event.time
    return Folded({**state, "addresses": addresses, "changed_at": changed_at.isoformat()}, rows, derived)


def fold(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
    data = event.data
    if isinstance(data, ev.MailReturned):
        return _returned(state, event, origin, rules)
    if isinstance(data, ev.MailSent):
        return _sent(state, event, origin)
    if isinstance(data, ev.AddressChanged):
        return _changed(state, event, origin)
    return Folded(state)


PROJECTION = StatefulProjection("flags", TABLE, SCHEMA, fold)
