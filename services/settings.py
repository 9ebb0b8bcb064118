"""The one settings object, built once at an entry point (CLI command, worker, test fixture) and passed down.

Every field can be set from the environment with the ``OMNITRAIL_`` prefix, e.g. ``OMNITRAIL_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, computed_field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from consumers.worker.config import WorkerConfig
from projections.redact import MASK, redact_url
from projections.rules import Rules
from schemas.channels import Channel
from schemas.topics import Topics


class Settings(BaseSettings):
    """Frozen runtime configuration of omnitrail.

    * ``state_dir``: where local state lives: the local broker's data (``broker/``), the embedded ClickHouse
      (``clickhouse/``), pid files. Default ``./.omnitrail``.
    * ``kafka_bootstrap``: Kafka bootstrap servers (``host:port[,host:port]``). ``omnitrail stack up`` starts a
      local broker on this address when it is on loopback.
    * ``clickhouse_url``: ``chdb:///abs/path`` (embedded ClickHouse, owned by one process: the worker serves reads
      to other processes over the read API) or ``http(s)://user:password@host:8123/database`` for a server, which
      every process connects to directly. Empty means ``chdb://<state_dir>/clickhouse``.
    * ``topic_prefix``: channel topics are ``<prefix>.<channel>``, derived events (flags, violations) go to
      ``<prefix>.derived``, the dead-letter topic is ``<prefix>.deadletter`` (see ``schemas.topics``).
    * ``partitions`` / ``replication_factor``: used when omnitrail creates its topics (never broker auto-create).
      Every topic gets the same count: it is how many workers can share the load (one partition per worker at
      least), and it cannot be changed later without moving customers between partitions.
    * ``event_mode``: CloudEvents Kafka mode the producers write (``binary`` or ``structured``); both are read.
    * ``source``: CloudEvents ``source`` of events emitted by this process.
    * ``consumer_group``: the Kafka consumer group of the projection workers; also names their state changelog.
    * ``batch_size`` / ``batch_seconds``: the worker writes projected rows in batches of up to this many events or
      after this many seconds, whichever comes first.
    * ``checkpoint_seconds``: how often the worker writes changed customer states to its changelog and commits
      its offsets (also after 200,000 records, and whenever partitions move to another worker). A crash redoes
      at most this much work; nothing is lost or counted twice either way. Longer means fewer state writes.
    * ``api_host`` / ``api_port``: where the HTTP service listens (ingest, reads; the worker runs it, or
      ``omnitrail serve``). Loopback by default; any other address requires tokens.
    * ``api_require_tokens``: reads need a read token (``omnitrail tokens create``) even on loopback. Always on when
      ``api_host`` is not a loopback address. Ingest always needs a write key.
    * ``api_allowed_hosts``: comma-separated ``Host`` header values the service answers (besides the loopback
      names and ``api_host``); other hosts get 400, which stops DNS-rebinding pages reaching a loopback service.
    * ``api_token``: the read token this process sends to the HTTP service (CLI reads through a worker).
    * ``api_query_seconds``: time limit of one read (named query or ``/v1/sql``).
    * ``credentials_file``: write keys and read tokens, stored hashed. Default ``<state_dir>/credentials.json``.
    * ``clickhouse_read_url``: the ClickHouse URL analyst reads use (a read-only user on a server); default: the
      ``clickhouse_url`` in effect. Reads are read-only either way (``readonly=1`` on every read connection).
    * ``session_timeout_ms``: Kafka consumer session timeout (>= 6000 for the local brokers).
    * ``stall_seconds``: a worker with lag that has processed nothing for this long logs an alarm.
    * ``worker_instance_id``: the worker's static group membership id (Kafka ``group.instance.id``). A worker that
      restarts, even after ``kill -9``, takes its partitions back at once instead of waiting for a rebalance.
      Default: derived from the host name and the state directory, so it is stable across restarts and differs
      between workers; give each worker its own when they share a host and a state path.
    * ``flag_threshold`` / ``flag_window_days``: this many returned letters to one address within this many days
      flag the address undeliverable.
    * ``consistency_window_days``: different prices, offers or answers for one subject given to a customer on
      different channels within this window are a consistency violation.
    * ``journey_gap_hours``: a contact without correlation id joins the customer's latest journey unless the
      journey has been quiet for longer than this.
    """

    # hide_input_in_errors: a validation error quotes no input value, since one may be a URL with its password.
    model_config = SettingsConfigDict(env_prefix="OMNITRAIL_", frozen=True, extra="ignore", hide_input_in_errors=True)

    def __repr_args__(self):
        # repr() and str() end up in logs and tracebacks: URLs without their passwords, tokens not at all.
        for name, value in super().__repr_args__():
            if name and name.endswith("_url") and isinstance(value, str):
                value = redact_url(value)
            elif name and name.endswith(("_token", "_password", "_secret")) and value:
                value = MASK
            yield name, value

    state_dir: Path = Path(".omnitrail")
    kafka_bootstrap: str = "127.0.0.1:29092"
    clickhouse_url: str = ""
    topic_prefix: str = Field(default="omnitrail", pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(default=12, ge=1, le=1000)
    replication_factor: int = Field(default=1, ge=1)
    event_mode: Literal["binary", "structured"] = "binary"
    source: str = "/omnitrail/cli"
    consumer_group: str = "omnitrail-projections"
    batch_size: int = Field(default=20_000, ge=1)
    batch_seconds: float = Field(default=0.1, gt=0)
    checkpoint_seconds: float = Field(default=5.0, gt=0)
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8765, ge=0, le=65535)
    api_require_tokens: bool = False
    api_allowed_hosts: str = ""
    api_token: str = ""
    api_query_seconds: float = Field(default=30.0, gt=0)
    credentials_file: Path | None = None
    clickhouse_read_url: str = ""
    session_timeout_ms: int = Field(default=10_000, ge=6000)
    worker_instance_id: str = ""
    stall_seconds: float = Field(default=60.0, gt=0)
    flag_threshold: int = Field(default=2, ge=1)
    flag_window_days: int = Field(default=180, ge=1)
    consistency_window_days: int = Field(default=30, ge=1)
    journey_gap_hours: int = Field(default=72, ge=1)

    @field_validator("state_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @computed_field
    @property
    def store_url(self) -> str:
        """The ClickHouse URL in effect."""
        return self.clickhouse_url or f"chdb://{self.state_dir / 'clickhouse'}"

    @property
    def read_url(self) -> str:
        """The ClickHouse URL analyst reads use."""
        return self.clickhouse_read_url or self.store_url

    @property
    def credentials_path(self) -> Path:
        return (self.credentials_file or self.state_dir / "credentials.json").expanduser().resolve()

    @property
    def group_instance_id(self) -> str:
        """The static membership id in effect (``worker_instance_id``, or one derived from host and state dir)."""
        if self.worker_instance_id:
            return self.worker_instance_id
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:12]
        return f"{socket.gethostname()}-{digest}"

    @property
    def embedded_store(self) -> bool:
        return self.store_url.startswith("chdb://")

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix, self.consumer_group)

    def channel_topic(self, channel: Channel | str) -> str:
        return self.topics.channel(channel)

    @property
    def channel_topics(self) -> list[str]:
        return self.topics.channels

    @property
    def rules(self) -> Rules:
        return Rules(self.flag_threshold, self.flag_window_days, self.consistency_window_days, self.journey_gap_hours)

    @property
    def derived_topic(self) -> str:
        return self.topics.derived

    @property
    def deadletter_topic(self) -> str:
        return self.topics.deadletter

    @property
    def api_url(self) -> str:
        return f"http://{self.api_host}:{self.api_port}"

    def worker_config(self) -> WorkerConfig:
        return WorkerConfig(
            bootstrap=self.kafka_bootstrap, topics=self.topics, partitions=self.partitions, state_dir=self.state_dir,
            store_url=self.store_url, instance_id=self.group_instance_id, rules=self.rules,
            event_mode=self.event_mode, batch_size=self.batch_size, batch_seconds=self.batch_seconds,
            checkpoint_seconds=self.checkpoint_seconds, session_timeout_ms=self.session_timeout_ms,
            stall_seconds=self.stall_seconds)
