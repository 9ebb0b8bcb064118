"""Rebuild a projection from the log into a new version of its table, then switch readers to it atomically.

The bulk path reads with confluent-kafka in large batches and applies them with the same ``Engine`` and ``Sink``
as the live worker, into ``<table>__rebuild``; it does not go through faust. It stops at the end offsets captured
when it started. The live worker keeps running meanwhile and keeps writing to ``<table>``. The hand-over:

1. copy into the rebuild the live rows whose origin lies at or beyond the captured end offsets (the worker wrote
   them while the rebuild ran);
2. ``EXCHANGE TABLES <table> AND <table>__rebuild``: one atomic step, so readers see either version, whole;
3. copy the same range again from the old version, for rows the worker wrote between 1 and 2;
4. keep the old version as ``<table>__old`` until ``omnitrail replay --drop-old``.

Rows carry their origin and the tables collapse duplicates on their sort keys (read with FINAL), so copying a
range twice changes nothing: no event is missed and none shows twice. Progress is checkpointed in
``omnitrail_replays`` after every batch, and a stateful rebuild (flags, consistency, journeys) checkpoints the fold
states it changed in ``omnitrail_replay_states`` just before: an interrupted rebuild resumes where it stopped. The
states may then be a batch ahead of the positions; re-folding those events changes nothing, as a state remembers
the events folded into it.

A rebuild projects what the live worker projected: it leaves out the records the worker dead-letters (those it
cannot decode, those ``projections.admission`` refuses, and, through the same engine, conflicting duplicates of an
event it projected first). A stateless rebuild (timeline, quotes, feedback) keeps the engine's per-customer id
window in memory only; when it resumes, it first re-reads what it had rebuilt, to remember those events (no rows).
Which of two versions of an event counts as first is decided by the order they are read in: the same in a rebuild
when both lie on one partition of one topic (the usual case: a producer re-emitting on its channel), possibly not
when they lie on different topics or partitions.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import orjson
from clickhouse_connect.driver.client import Client
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from projections.admission import Admission
from projections.engine import Engine, Record
from projections.origin import Origin
from projections.registry import PROJECTIONS, STATEFUL
from projections.sink import Sink
from projections.rules import Rules
from schemas.codec import DecodeError
from schemas.wire import decode_fast

REBUILD, OLD = "__rebuild", "__old"
CHECKPOINTS = "omnitrail_replays"
STATES = "omnitrail_replay_states"


class ReplayError(RuntimeError):
    pass


@dataclass
class Progress:
    """What a rebuild has done so far; read by progress bars while it runs (in another thread)."""

    projection: str
    state: str = "starting"  # starting | rebuilding | switching | done | failed | cancelled
    events: int = 0
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    positions: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> next offset
    ends: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.events / max(time.monotonic() - self.started, 1e-9)

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "rate": self.rate}


def table_of(name: str) -> str:
    if name in PROJECTIONS:
        return PROJECTIONS[name].table
    if name in STATEFUL:
        return STATEFUL[name].table
    raise ReplayError(f"no projection named {name!r}; known: {', '.join(sorted([*PROJECTIONS, *STATEFUL]))}")


def _beyond(ends: dict[str, int]) -> str:
    """SQL condition: the row's origin is at or after the captured end offsets (or on a partition not captured)."""
    known = " OR ".join(f"(topic = '{k.rpartition(':')[0]}' AND partition = {k.rpartition(':')[2]} AND offset >= {e})"
                        for k, e in ends.items())
    captured = ", ".join(f"'{k}'" for k in ends) or "''"
    return f"({known or '0'}) OR concat(topic, ':', toString(partition)) NOT IN ({captured})"


class Rebuild:
    """One rebuild of one projection. ``run`` blocks; ``cancel`` (from another thread) stops it at a batch edge."""

    def __init__(self, client: Client, bootstrap: str, topics: list[str], name: str, rules: Rules = Rules(),
                 batch_size: int = 50_000, on_progress: Callable[[Progress], None] | None = None,
                 batch_scope: Callable[[], AbstractContextManager] = nullcontext):
        self.client, self.bootstrap, self.topics, self.name = client, bootstrap, topics, name
        self.table = table_of(name)
        self.rules, self.batch_size = rules, batch_size
        # Entered around each batch (read, project, store): the runtime's memory policy for batch work, such as
        # ``consumers.worker.memory.BatchCollector``.
        self._batch_scope = batch_scope
        self.progress = Progress(name)
        self._on_progress = on_progress or (lambda p: None)
        self._cancelled = False

    def cancel(self) -> None:
        self._cancelled = True

    def _engine(self) -> Engine:
        target = self.table + REBUILD
        # No conflict reports: the live worker dead-lettered those records already (see projections.engine).
        if self.name in PROJECTIONS:
            return Engine([dataclasses.replace(PROJECTIONS[self.name], table=target)], [], conflicts=False)
        return Engine([], [dataclasses.replace(STATEFUL[self.name], table=target)], self.rules, conflicts=False)

    def _checkpoint(self, status: str) -> None:
        self.client.insert(CHECKPOINTS, [[self.name, status, orjson.dumps(self.progress.ends).decode(),
                                          orjson.dumps(self.progress.positions).decode()]],
                           column_names=["projection", "status", "ends", "positions"])

    def _save_states(self, states: dict[str, dict], customers: set[str]) -> None:
        if customers:
            self.client.insert(STATES, [[self.name, c, orjson.dumps(states[c]).decode()] for c in customers
                                        if c in states], column_names=["projection", "customer", "state"])

    def _saved_states(self) -> dict[str, dict]:
        return {c: orjson.loads(s) for c, s in self.client.query(
            f"SELECT customer, argMax(state, at) FROM {STATES} WHERE projection = {{p:String}} GROUP BY customer",
            parameters={"p": self.name}).result_rows}

    def _forget_states(self) -> None:
        self.client.command(f"DELETE FROM {STATES} WHERE projection = {{p:String}}", parameters={"p": self.name})

    def _resume_point(self) -> tuple[dict[str, int], dict[str, int]] | None:
        self.client.command(f"""CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (
            `projection` String, status String, ends String, positions String,
            at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY (projection, at)""")
        self.client.command(f"""CREATE TABLE IF NOT EXISTS {STATES} (
            `projection` String, customer String, state String,
            at DateTime64(6, 'UTC') DEFAULT now64(6)) ENGINE = MergeTree ORDER BY (projection, customer, at)""")
        rows = self.client.query(f"SELECT status, ends, positions FROM {CHECKPOINTS} WHERE projection = "
                                 "{p:String} ORDER BY at DESC LIMIT 1", parameters={"p": self.name}).result_rows
        if rows and rows[0][0] == "rebuilding":
            return orjson.loads(rows[0][1]), orjson.loads(rows[0][2])
        return None

    def run(self) -> Progress:
        p = self.progress
        try:
            self._run()
            p.state = "cancelled" if self._cancelled else "done"
        except Exception as exc:
            p.state, p.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._on_progress(p)
        return p

    def _run(self) -> None:
        p = self.progress
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"omnitrail-replay-{uuid.uuid4().hex}",
                             "enable.auto.commit": False, "enable.partition.eof": False,
                             "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024})
        try:
            resume = self._resume_point()
            metadata = consumer.list_topics(timeout=30).topics
            partitions = [TopicPartition(t, n) for t in self.topics for n in sorted(metadata[t].partitions)]
            stateful = self.name in STATEFUL
            states = self._saved_states() if resume and stateful else {}
            if resume:
                p.ends, p.positions = resume
            else:
                if stateful:
                    self._forget_states()
                p.ends = {f"{tp.topic}:{tp.partition}": consumer.get_watermark_offsets(tp, timeout=30)[1]
                          for tp in partitions}
                p.positions = {k: 0 for k in p.ends}
                self.client.command(f"DROP TABLE IF EXISTS {self.table}{REBUILD}")
                self.client.command(f"CREATE TABLE {self.table}{REBUILD} AS {self.table}")
            p.total = sum(p.ends.values())
            p.events = sum(p.positions.values())
            p.state = "rebuilding"
            self._checkpoint("rebuilding")
            engine, sink, admission = self._engine(), Sink(self.client), Admission.for_log(self.topics)
            if resume and not stateful:  # its id window was not saved: remember what was rebuilt before
                for batch in self._read(consumer, partitions, dict.fromkeys(p.positions, 0), dict(p.positions),
                                        admission):
                    engine.remember(batch, states)
            batches = self._read(consumer, partitions, p.positions, p.ends, admission)
            while True:
                with self._batch_scope():
                    batch = next(batches, None)
                    if batch is None:
                        break
                    if batch:
                        applied = engine.apply(batch, states)
                        sink.write(engine.tables(applied))
                        if stateful:
                            self._save_states(states, applied.changed)
                    p.events = sum(p.positions.values())
                    self._checkpoint("rebuilding")
                    self._on_progress(p)
            if self._cancelled:
                return
            p.state = "switching"
            self._on_progress(p)
            self._switch()
            self._checkpoint("done")
            if stateful:
                self._forget_states()
        finally:
            consumer.close()

    def _read(self, consumer: Consumer, partitions: list[TopicPartition], positions: dict[str, int],
              ends: dict[str, int], admission: Admission) -> Iterator[list[Record]]:
        """Batches of the records from ``positions`` up to ``ends`` ("topic:partition" -> offset), advancing
        ``positions``; without the records the live worker dead-letters (see the module docstring)."""
        todo = [TopicPartition(tp.topic, tp.partition, positions[f"{tp.topic}:{tp.partition}"] or OFFSET_BEGINNING)
                for tp in partitions if positions[f"{tp.topic}:{tp.partition}"] < ends[f"{tp.topic}:{tp.partition}"]]
        consumer.assign(todo)
        consumer.resume(todo)  # librdkafka keeps a partition paused across assignments (an earlier read paused it)
        remaining = {f"{tp.topic}:{tp.partition}" for tp in todo}
        while remaining and not self._cancelled:
            batch = []
            for msg in consumer.consume(self.batch_size, 1.0):
                if msg.error() is not None:
                    continue
                key = f"{msg.topic()}:{msg.partition()}"
                if key not in remaining or msg.offset() >= ends[key]:
                    continue  # at or beyond the end (of a rebuild: the live worker's part)
                try:
                    event = decode_fast(msg.value(), msg.headers())
                except DecodeError:
                    event = None  # the live worker dead-lettered it; `omnitrail deadletter` deals with it
                if event is not None and admission.refusal(event, msg.topic()) is None:
                    origin = Origin(msg.topic(), msg.partition(), msg.offset())
                    batch.append(Record(event, origin, origin))
                positions[key] = msg.offset() + 1
                if positions[key] >= ends[key]:
                    remaining.discard(key)
                    consumer.pause([TopicPartition(msg.topic(), msg.partition())])
            yield batch
        consumer.unassign()

    def _switch(self) -> None:
        live, new, old = self.table, self.table + REBUILD, self.table + OLD
        beyond = _beyond(self.progress.ends)
        self.client.command(f"INSERT INTO {new} SELECT * FROM {live} WHERE {beyond}")
        self.client.command(f"EXCHANGE TABLES {live} AND {new}")
        self.client.command(f"INSERT INTO {live} SELECT * FROM {new} WHERE {beyond}")
        self.client.command(f"DROP TABLE IF EXISTS {old}")
        self.client.command(f"RENAME TABLE {new} TO {old}")


def drop_old(client: Client, name: str) -> bool:
    """Drop the previous version kept after a rebuild; False if there was none."""
    old = table_of(name) + OLD
    exists = client.command(f"EXISTS TABLE {old}")
    client.command(f"DROP TABLE IF EXISTS {old}")
    return bool(int(exists))


def verify(client: Client, name: str) -> list[dict]:
    """Per customer: row count and an order-independent checksum of the current and the previous version.

    The checksum covers every column but the row's origin and projection time, which a rebuild may legitimately
    give differently (a duplicate delivered at two offsets). Returns the customers that differ (empty: parity).
    """
    live, old = table_of(name), table_of(name) + OLD
    if not int(client.command(f"EXISTS TABLE {old}")):
        raise ReplayError(f"no previous version {old} to compare with (run `omnitrail replay {name}` first)")
    columns = [c for c, in client.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "ORDER BY position", parameters={"t": live}).result_rows
        if c not in ("topic", "partition", "offset", "projected_at")]
    digest = f"sum(cityHash64({', '.join(f'toString({c})' for c in columns)}))"

    def per_customer(table: str) -> dict[str, tuple[int, int]]:
        return {c: (n, h) for c, n, h in client.query(
            f"SELECT customer_id, count(), {digest} FROM {table} FINAL GROUP BY customer_id").result_rows}

    a, b = per_customer(live), per_customer(old)
    return [{"customer_id": c, "current": a.get(c), "previous": b.get(c)}
            for c in sorted(set(a) | set(b)) if a.get(c) != b.get(c)]
