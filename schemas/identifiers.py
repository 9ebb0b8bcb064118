"""Identifiers: how a customer is known on a channel, written ``kind:value``.

``twitter:@jan``, ``whatsapp:+31612345678``, ``email:jan@example.com``, ``phone:+31612345678``,
``facebook:jan.jansen``, ``loyalty_card:NL123456``, ``other:...``, and a postal address,
``address:<postcode without spaces, upper case>-<house number>`` (``address:1234AB-1``).

An event whose customer is not known yet carries an identifier as its ``subject`` (a first tweet from ``@jan`` has
subject ``twitter:@jan``); ``IdentityLinked`` and ``IdentityUnlinked`` link identifiers to customers, and the
addresses in a customer's own mail and address events are linked too (``projections/identities``). Readers then
show such events as the customer's.

One normal form, so that an identifier written two ways is one identifier: ``identifier`` is what the identity
projection stores and what every lookup normalises its argument with. A subject is matched as written (the log is
never rewritten), so a producer that uses an identifier as a subject writes it in this normal form.
"""

from __future__ import annotations

import re
from typing import get_args

from schemas.events import IdentityKind

ADDRESS = "address"
KINDS = (*get_args(IdentityKind), ADDRESS)

_SPACES = re.compile(r"\s+")
_PHONE_SEPARATORS = re.compile(r"[\s\-.()/]+")


def _phone(value: str) -> str:
    # +31 6-1234 5678, (06) 12345678, 0031612345678: separators go; the international 00 prefix is written +.
    number = _PHONE_SEPARATORS.sub("", value)
    return "+" + number[2:] if number.startswith("00") else number


def _handle(value: str) -> str:
    # Handles are case-insensitive and written with or without their @.
    name = value.strip().lower().lstrip("@")
    return "@" + name if name else ""


_NORMAL = {
    "phone": _phone,
    "whatsapp": _phone,  # a WhatsApp account is a phone number
    "email": lambda v: v.strip().lower(),  # mail systems treat the local part case-insensitively in practice
    "twitter": _handle,
    "facebook": lambda v: v.strip().lower(),  # user names and numeric ids, both case-insensitive
    "loyalty_card": lambda v: _SPACES.sub("", v).upper(),
    ADDRESS: lambda v: _SPACES.sub("", v).upper(),  # 1234 ab-12b -> 1234AB-12B
    "other": str.strip,
}
assert set(_NORMAL) == set(KINDS)


def identifier(kind: str, value: str) -> str:
    """``kind:value`` in normal form; ``ValueError`` for an unknown kind or a value that normalises to nothing."""
    kind = kind.strip().lower()
    normalise = _NORMAL.get(kind)
    if normalise is None:
        raise ValueError(f"unknown identifier kind {kind!r}; known: {', '.join(KINDS)}")
    normal = normalise(value)
    if not normal:
        raise ValueError(f"empty {kind} identifier: {value!r}")
    return f"{kind}:{normal}"


def parse(text: str) -> str:
    """The normal form of identifier text ``kind:value`` (``Twitter:@Jan`` -> ``twitter:@jan``); ``ValueError``
    if the text is not an identifier."""
    kind, colon, value = text.partition(":")
    if not colon:
        raise ValueError(f"not an identifier (kind:value): {text!r}")
    return identifier(kind, value)


def postal(address) -> str:
    """The identifier of a postal address (a ``PostalAddress`` or its wire twin): postcode and house number, which
    together name one address in the Dutch postal system; street and city add nothing and are often misspelt."""
    return identifier(ADDRESS, f"{address.postcode}-{address.house_number}")
