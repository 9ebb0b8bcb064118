"""The projections the worker runs: name, target table, Arrow schema of its rows, and its pure fold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from projections.origin import Origin
from projections.timeline import fold as timeline
from schemas.envelope import Event


@dataclass(frozen=True)
class Projection:
    name: str
    table: str
    schema: pa.Schema
    project: Callable[[Event, Origin], list[dict]]


PROJECTIONS: dict[str, Projection] = {
    p.name: p for p in [Projection("timeline", timeline.TABLE, timeline.SCHEMA, timeline.project)]
}
