"""Fold a list of events through the engine, one at a time, for tests of the stateful projections."""

from __future__ import annotations

from collections.abc import Iterable

from projections.engine import Engine, Record
from projections.origin import Origin
from projections.rules import Rules
from projections.stateful import StatefulProjection


def fold_all(projection: StatefulProjection, events: Iterable[tuple[object, Origin]],
             rules: Rules = Rules()) -> tuple[dict[str, dict], list[dict], list]:
    """Fold events one at a time, in the order given, through the engine with one stateful projection: (fold
    state per customer, rows, derived events). A repeated (source, id) is ignored, as in the worker. For tests and
    tools; a fold that raises is an error here."""
    states: dict[str, dict] = {}
    engine = Engine([], [projection], rules)
    rows, derived = [], []
    for n, (event, origin) in enumerate(events):
        # Read positions of their own: the caller's origins need not be distinct or increasing.
        applied = engine.apply([Record(event, origin, Origin("fold_all", 0, n))], states)
        if applied.failed:
            raise RuntimeError(f"fold failed: {applied.failed}")
        rows += applied.rows.get(projection.table, [])
        derived += applied.derived
    return {c: s["p"][projection.name] for c, s in states.items() if projection.name in s["p"]}, rows, derived
