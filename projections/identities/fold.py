"""Pure projection: an event -> the links and unlinks of identifiers to its customer it records. No I/O, no clock.

Rows are appended, never updated; who an identifier belongs to now is decided when it is read
(``projections/identities/queries.py``). What links and unlinks (the event's subject is the customer):

* ``IdentityLinked`` / ``IdentityUnlinked``: the identifier ``kind:value`` (``schemas.identifiers``).
* A postal address in the customer's own events is an identifier too, ``address:<postcode>-<house number>``:
  ``MailSent`` links the address the letter went to (we know the customer there), ``AddressChanged`` links the new
  address and unlinks the previous one when it differs (the customer moved away). A returned letter changes
  nothing: whether an address still reaches the customer is the flags projection's call, made from several
  returns, and a single return must not take a link away. Derived events (an ``AddressFlagged`` names an address
  too) are conclusions, not what the customer told us: they link nothing.

Identifiers are normalised here and by every lookup with the same function, ``schemas.identifiers.identifier``.
Events are dispatched on their name, so pydantic and msgspec-decoded events project alike.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from projections.origin import Origin
from schemas import events as ev
from schemas.envelope import Event
from schemas.identifiers import identifier, postal

TABLE = "identity_links"
LINK, UNLINK = "link", "unlink"
SCHEMA = pa.schema([
    ("identifier", pa.string()), ("customer_id", pa.string()), ("action", pa.string()),
    ("time", pa.timestamp("ms", tz="UTC")), ("type", pa.string()), ("channel", pa.string()),
    ("source", pa.string()), ("event_id", pa.string()),
    ("topic", pa.string()), ("partition", pa.uint32()), ("offset", pa.uint64()),
])


def _moved(d) -> list[tuple[str, str]]:
    new = postal(d.address)
    old = None if d.previous is None else postal(d.previous)
    return [(new, LINK)] + ([(old, UNLINK)] if old not in (None, new) else [])


_LINKS: dict[str, Callable[..., list[tuple[str, str]]]] = {
    ev.IdentityLinked.name: lambda d: [(identifier(d.kind, d.value), LINK)],
    ev.IdentityUnlinked.name: lambda d: [(identifier(d.kind, d.value), UNLINK)],
    ev.MailSent.name: lambda d: [(postal(d.address), LINK)],
    ev.AddressChanged.name: _moved,
}


HANDLES = frozenset(_LINKS)


def links(event: Event) -> list[tuple[str, str]]:
    """``(identifier, link | unlink)`` for each identifier the event links to or unlinks from its customer."""
    found = _LINKS.get(event.name)
    return [] if found is None else found(event.data)


def project(event: Event, origin: Origin) -> list[dict]:
    """One row per identifier the event links or unlinks, carrying the event's id and origin."""
    return [{
        "identifier": ident, "customer_id": event.subject, "action": action, "time": event.time,
        "type": event.type, "channel": event.channel.value, "source": event.source, "event_id": event.id,
        "topic": origin.topic, "partition": origin.partition, "offset": origin.offset,
    } for ident, action in links(event)]
