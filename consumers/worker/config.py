"""What the worker needs to run, built by the entry point (``omnitrail worker``) and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from projections.rules import Rules
from schemas.topics import Topics


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    topics: Topics
    partitions: int                  # of every topic the worker reads (they must all have this many)
    state_dir: Path
    store_url: str = field(repr=False)  # a server URL carries its password: never in a log line
    instance_id: str                 # static group membership: a restart takes the same partitions back at once
    rules: Rules = Rules()
    event_mode: str = "binary"       # CloudEvents mode of the derived events the worker publishes
    batch_size: int = 20_000         # records per batch at most ...
    batch_seconds: float = 0.1       # ... or whatever arrived within this long
    checkpoint_seconds: float = 5.0  # states to the changelog and offsets committed this often ...
    checkpoint_records: int = 200_000  # ... or after this many records, and whenever partitions are revoked
    session_timeout_ms: int = 10_000
    stall_seconds: float = 60.0      # lag with no progress for this long is logged as an alarm
    stop_seconds: float = 10.0       # a stop waits this long for the broker and the store (batch, last checkpoint)

    @property
    def group(self) -> str:
        return self.topics.group
