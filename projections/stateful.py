"""Stateful projections: a pure fold over one customer's events, with state the runtime keeps per customer.

``fold(state, event, origin, rules) -> Folded`` must be pure: no I/O, no clock (use ``event.time``), and the state
must be JSON-serialisable (the faust runtime keeps it in a table with a changelog topic, keyed by customer id).
``deduplicated`` wraps a fold so that a redelivered event (same source and id) changes nothing and emits nothing;
a customer's state depends only on that customer's events, so any interleaving of different customers' events
gives the same result.

Derived events must have deterministic ids (derived from their causes), and rows must carry event_id and origin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from projections.origin import Origin
from schemas.envelope import Event

SEEN_LIMIT = 2_000  # ids remembered per customer: far more than a redelivery window spans


@dataclass(frozen=True)
class Rules:
    """Tunable thresholds of the omnichannel projections (from ``Settings``)."""

    flag_threshold: int = 2           # returned letters to one address ...
    flag_window_days: int = 180       # ... within this many days flag it undeliverable
    consistency_window_days: int = 30  # different values for one subject within this window are a violation
    journey_gap_hours: int = 72       # contacts about one need further apart than this start a new journey


@dataclass(frozen=True)
class Folded:
    state: dict
    rows: list[dict] = field(default_factory=list)
    derived: list[Event] = field(default_factory=list)


Fold = Callable[[dict, Event, Origin, Rules], Folded]


@dataclass(frozen=True)
class StatefulProjection:
    name: str
    table: str
    schema: pa.Schema
    fold: Fold


def event_key(event: Event) -> str:
    return f"{event.source}\x1f{event.id}"


def deduplicated(fold: Fold) -> Fold:
    """The fold, made idempotent under redelivery: an event already folded into the state is ignored."""

    def apply(state: dict, event: Event, origin: Origin, rules: Rules) -> Folded:
        seen = state.get("_seen", [])
        key = event_key(event)
        if key in seen:
            return Folded(state)
        result = fold(state, event, origin, rules)
        return Folded({**result.state, "_seen": [*seen[-(SEEN_LIMIT - 1):], key]}, result.rows, result.derived)

    return apply


def fold_batch(projection: StatefulProjection, states: dict[str, dict], batch: list[tuple[Event, Origin]],
               rules: Rules) -> tuple[list[dict], list[Event], dict[int, str]]:
    """Fold a batch in order into ``states`` (customer -> state, updated in place).

    Returns the rows, the derived events, and the batch indexes whose fold raised (index -> reason): a bug on one
    event must not stop the stream, so the runtime dead-letters those and the state stays as it was before them.
    """
    fold = deduplicated(projection.fold)
    rows, derived, failed = [], [], {}
    for i, (event, origin) in enumerate(batch):
        try:
            result = fold(states.get(event.subject, {}), event, origin, rules)
        except Exception as exc:
            failed[i] = f"projection {projection.name} failed: {type(exc).__name__}: {exc}"
            continue
        states[event.subject] = result.state
        rows += result.rows
        derived += result.derived
    return rows, derived, failed


def fold_all(projection: StatefulProjection, events: list[tuple[Event, Origin]], rules: Rules = Rules(),
             states: dict[str, dict] | None = None) -> tuple[dict[str, dict], list[dict], list[Event]]:
    """Fold events in order, one state per customer: what the runtime does, for tests and rebuilds."""
    states = {} if states is None else states
    rows, derived, failed = fold_batch(projection, states, events, rules)
    if failed:
        raise RuntimeError(f"fold failed: {failed}")
    return states, rows, derived
