"""Pure upcasters: an event of an old version of its type becomes the same event in the latest version.

Published versions are never edited; a breaking change is a new version plus an upcaster here, keyed by the type
it upgrades from. The codec upcasts every event it decodes, so projections only ever see latest versions, and a
log holding several versions of a type rebuilds into the same projection.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

from schemas.envelope import Event, invalid, schema_urn, typed_event


def _call_transferred_v1_to_v2(data: dict) -> dict:
    # v1 could only transfer between queues.
    return {"call_id": data["call_id"], "from_target": data.get("from_queue", ""), "to_target": data["to_queue"],
            "target_kind": "queue", "reason": data.get("reason", "")}


UPCASTERS: dict[str, tuple[str, Callable[[dict], dict]]] = {
    "omnitrail.CallTransferred.v1": ("omnitrail.CallTransferred.v2", _call_transferred_v1_to_v2),
}


def upcast(event: Event) -> Event:
    """The event in the latest version of its type (the event itself when it already is); ``InvalidEvent`` if an
    old event does not fit the new version's limits."""
    while event.type in UPCASTERS:
        target, convert = UPCASTERS[event.type]
        envelope = event.model_dump(exclude={"type", "data", "dataschema"})
        try:
            event = typed_event(target)(**envelope, type=target, dataschema=schema_urn(target),
                                        data=convert(event.data.model_dump(mode="json")))
        except ValidationError as exc:
            raise invalid(exc) from None
    return event
