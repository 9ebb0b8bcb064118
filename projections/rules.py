"""The tunable thresholds of the omnichannel projections, in a module of their own: settings import them, and a
settings import must stay light (``omnitrail --help`` should not load Arrow)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rules:
    """Tunable thresholds of the omnichannel projections (from ``Settings``)."""

    flag_threshold: int = 2           # returned letters to one address ...
    flag_window_days: int = 180       # ... within this many days flag it undeliverable
    consistency_window_days: int = 30  # different values for one subject within this window are a violation
    journey_gap_hours: int = 72       # contacts about one need further apart than this start a new journey
