"""The projections the worker runs: name, target table, Arrow schema of its rows, and its pure function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from projections.origin import Origin
from projections.stateful import StatefulProjection
from projections.consistency import fold as consistency
from projections.feedback import fold as feedback
from projections.flags import fold as flags
from projections.identities import fold as identities
from projections.journeys import fold as journeys
from projections.quotes import fold as quotes
from projections.timeline import fold as timeline
from schemas.envelope import Event


@dataclass(frozen=True)
class Projection:
    name: str
    table: str
    schema: pa.Schema
    project: Callable[[Event, Origin], list[dict]]
    handles: frozenset[str] | None = None  # the event names it makes rows of; None: every event (as StatefulProjection)


PROJECTIONS: dict[str, Projection] = {p.name: p for p in [
    Projection("timeline", timeline.TABLE, timeline.SCHEMA, timeline.project),
    Projection("quotes", quotes.TABLE, quotes.SCHEMA, quotes.project, quotes.HANDLES),
    Projection("feedback", feedback.TABLE, feedback.SCHEMA, feedback.project, feedback.HANDLES),
    Projection("identities", identities.TABLE, identities.SCHEMA, identities.project, identities.HANDLES),
]}
STATEFUL: dict[str, StatefulProjection] = {p.name: p for p in [
    flags.PROJECTION, consistency.PROJECTION, journeys.PROJECTION,
]}
