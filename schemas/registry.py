"""Which payload model each CloudEvents ``type`` names, and the short names people type (``MailReturned``)."""

from schemas.derived import DERIVED
from schemas.events import PAYLOADS, Payload

BY_TYPE: dict[str, type[Payload]] = {p.type_name(): p for p in PAYLOADS + DERIVED}


def payload_for(type_name: str) -> type[Payload]:
    """The payload model of a full type (``omnitrail.MailReturned.v1``) or a short name (latest version)."""
    if type_name in BY_TYPE:
        return BY_TYPE[type_name]
    latest = [p for p in BY_TYPE.values() if p.name == type_name]
    if latest:
        return max(latest, key=lambda p: p.version)
    shown = type_name if len(type_name) <= 100 else type_name[:100] + "..."
    raise KeyError(f"unknown event type {shown!r}; known: {', '.join(sorted(BY_TYPE))}")
