"""Dead letters: list the records the worker could not process, replay them after a fix, or discard the ones that
can never be fixed (kept in the audit topic ``<prefix>.deadletter-discarded``, never silently dropped).

The worker (``consumers/worker/loop.py``) sends a record it cannot decode or project to ``settings.deadletter_topic`` with
its original key, value and headers, plus ``dlq_reason``, ``dlq_topic``, ``dlq_partition``, ``dlq_offset`` and
``dlq_at``. After a fix (an upcaster, a corrected producer) ``replay_dead_letters`` re-produces each pending dead
letter once to the topic it came from; the worker processes it again, and what still fails is dead-lettered again,
as a new record with its current reason. So ``list_dead_letters`` shows exactly what still fails.

The replay cursor
-----------------
What has been replayed is kept in Kafka itself, as the committed offsets of a dedicated consumer group,
``<consumer_group>-deadletter-replay``, on the dead-letter topic (no other topic or file is needed, and any machine
that reaches the broker sees the same cursor). Per dead-letter partition the cursor is

* the committed offset: every record below it has been replayed (or was skipped for good: never), and
* the commit's metadata string: the offsets at or above the committed offset that have been replayed too, as
  ranges (``"12-15,18"``).

A record is *pending* when its offset is at or above the committed offset and not in that set. Normally the set is
empty: ``replay`` replays every pending record and commits the end offset it read up to. It is only needed when
records must stay pending behind replayed ones: with ``--since`` a record dead-lettered before that time is not
replayed and stays pending (``list`` still shows it, a later ``replay`` without ``--since`` replays it), while the
records after it that were replayed must not be replayed again. The committed offset then stays at the first record
left pending, and the replayed ones after it go into the metadata. Records that cannot be replayed at all (no
``dlq_topic`` header) stay pending the same way. Kafka limits commit metadata (``offset.metadata.max.bytes``,
4096 by default); should the ranges not fit in ``METADATA_BUDGET`` characters, the last replays of that partition
are deferred to the next run (reported as ``deferred``), so the cursor always fits.

The cursor is committed only after the broker confirmed every replayed record (idempotent producer, ``acks=all``);
if any delivery fails nothing is committed. A crash between delivery and commit therefore replays those records
again next time, and so do two replays run at the same time: harmless, since projections collapse duplicate events
(the timeline on ``(source, event_id)``, states remember the events folded into them).

The dead-letter topic is read up to the end offsets captured when reading starts, within a timeout; records the
worker dead-letters while (or after) a replay runs lie beyond those offsets, so they stay pending. No topic is
created here: a missing dead-letter topic is an error.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from consumers import kafka
from consumers.deadletter import AT, OFFSET, PARTITION, REASON, REPLAYED_FROM, TOPIC
from services.settings import Settings

METADATA_BUDGET = 3000  # characters of commit metadata we allow ourselves (Kafka's default limit is 4096)
PREVIEW_CHARS = 80


class DeadLetterError(RuntimeError):
    """The dead-letter topic cannot be read or the replay could not be delivered."""


@dataclass(frozen=True)
class DeadLetter:
    """One pending dead-lettered record: where it came from, why, and a glimpse of it."""

    dlq_partition: int
    dlq_offset: int
    topic: str | None           # the origin: topic, partition and offset of the record the worker rejected
    partition: int | None
    offset: int | None
    reason: str
    dead_lettered_at: datetime | None
    key: str | None
    value_size: int
    preview: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ReplayReport:
    """What a replay did. ``by_topic`` counts the replayed records per origin topic."""

    replayed: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)
    skipped: int = 0            # pending records left pending: dead-lettered before ``since``
    unreplayable: int = 0       # pending records without a ``dlq_topic`` header: left pending
    deferred: int = 0           # would have been replayed, but the cursor metadata was full: next run
    cursor: dict[int, tuple[int, str]] = field(default_factory=dict)  # partition -> (committed offset, metadata)


@dataclass(frozen=True)
class _Record:
    letter: DeadLetter
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def replay_group(settings: Settings) -> str:
    return f"{settings.consumer_group}-deadletter-replay"


# --- the cursor's metadata: a set of offsets as ranges -------------------------------------------------------------
def encode_offsets(offsets) -> str:
    """``{3, 4, 5, 9}`` -> ``"3-5,9"``."""
    parts, run = [], None
    for o in sorted(set(offsets)):
        if run and o == run[1] + 1:
            run[1] = o
        else:
            if run:
                parts.append(run)
            run = [o, o]
    if run:
        parts.append(run)
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def decode_offsets(text: str | None) -> set[int]:
    """The inverse of ``encode_offsets``; anything unreadable counts as no extra replayed offsets."""
    out: set[int] = set()
    for part in (text or "").split(","):
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                out.update(range(a, b + 1))
            elif part.strip():
                out.add(int(part))
        except ValueError:
            continue
    return out


# --- reading the dead-letter topic ---------------------------------------------------------------------------------
def _consumer(settings: Settings, group: str) -> Consumer:
    return Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
                     "enable.auto.commit": False, "auto.offset.reset": "earliest",
                     "allow.auto.create.topics": False, "log.connection.close": False,
                     "session.timeout.ms": settings.session_timeout_ms})


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    try:
        partitions = kafka.partitions_of(consumer, topic, timeout)
    except KafkaException as exc:
        raise DeadLetterError(f"cannot reach Kafka: {exc}") from None
    if not partitions:
        raise DeadLetterError(f"dead-letter topic {topic} does not exist (run `omnitrail topics`)")
    return partitions


def _header(headers: list[tuple[str, bytes]], name: str) -> str | None:
    for k, v in reversed(headers):  # the worker appends its dlq_* headers last
        if k == name:
            return (v or b"").decode(errors="replace")
    return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def parse_time(text: str | None) -> datetime | None:
    """An RFC 3339 / ISO time; UTC when it has no zone; ``None`` when absent or unreadable."""
    if not text:
        return None
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _preview(value: bytes | None) -> str:
    if value is None:
        return "(no value)"
    text = value[:PREVIEW_CHARS * 4].decode(errors="replace")
    text = "".join(c if c.isprintable() else " " for c in text)
    return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS - 1] + "…"


def _record(msg) -> _Record:
    headers = [(k, bytes(v or b"")) for k, v in (msg.headers() or [])]
    key = msg.key()
    letter = DeadLetter(
        dlq_partition=msg.partition(), dlq_offset=msg.offset(),
        topic=_header(headers, TOPIC) or None, partition=_int(_header(headers, PARTITION)),
        offset=_int(_header(headers, OFFSET)), reason=_header(headers, REASON) or "",
        dead_lettered_at=parse_time(_header(headers, AT)),
        key=key.decode(errors="replace") if key is not None else None,
        value_size=len(msg.value() or b""), preview=_preview(msg.value()))
    return _Record(letter, key, msg.value(), headers)


@dataclass
class _Partition:
    committed: int              # the cursor's committed offset (the low watermark when nothing was committed)
    replayed: set[int]          # offsets >= committed already replayed (the commit metadata)
    end: int                    # the end offset captured before reading
    records: list[_Record]      # the pending records, in offset order


def _read_pending(settings: Settings, consumer: Consumer, timeout: float) -> dict[int, _Partition]:
    """The pending dead letters per partition, read up to the end offsets captured first."""
    topic = settings.deadletter_topic
    deadline = time.monotonic() + timeout
    partitions = _partitions(consumer, topic, timeout)
    try:
        committed = {tp.partition: tp for tp in
                     consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)}
        state: dict[int, _Partition] = {}
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            tp = committed.get(p)
            at = tp.offset if tp is not None and tp.error is None and tp.offset != OFFSET_INVALID else low
            extra = decode_offsets(tp.metadata if tp is not None and at >= low else None)
            start = max(at, low)  # records below the low watermark were deleted by retention
            state[p] = _Partition(start, {o for o in extra if o >= start}, high, [])
    except KafkaException as exc:
        raise DeadLetterError(f"cannot read the dead-letter cursor of {topic}: {exc}") from None
    todo = {p for p, s in state.items() if s.committed < s.end}
    if not todo:
        return state
    consumer.assign([TopicPartition(topic, p, state[p].committed) for p in sorted(todo)])
    while todo:
        if time.monotonic() > deadline:
            raise DeadLetterError(f"timed out reading {topic} up to its end offsets "
                                  f"({', '.join(f'{p}: {state[p].end}' for p in sorted(todo))})")
        for msg in consumer.consume(500, 0.1):
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise DeadLetterError(f"cannot read {topic}: {err.str()}")
            s = state[msg.partition()]
            if msg.partition() not in todo or msg.offset() >= s.end:
                todo.discard(msg.partition())
                continue
            if msg.offset() not in s.replayed:
                s.records.append(_record(msg))
            if msg.offset() >= s.end - 1:
                todo.discard(msg.partition())
        if todo:  # gaps (compaction, transaction markers) can hide the last offsets: ask where we are
            for tp in consumer.position([TopicPartition(topic, p) for p in todo]):
                if tp.offset >= state[tp.partition].end:
                    todo.discard(tp.partition)
    return state


def list_dead_letters(settings: Settings, reason: str | None = None, since: datetime | None = None,
                      timeout: float = 30.0) -> list[DeadLetter]:
    """The pending dead letters (not yet replayed), oldest first per partition.

    ``reason`` keeps those whose reason contains it (case-insensitive); ``since`` those dead-lettered at or after
    it (a dead letter without a readable ``dlq_at`` is then left out).
    """
    consumer = _consumer(settings, replay_group(settings))
    try:
        state = _read_pending(settings, consumer, timeout)
    finally:
        consumer.close()
    needle = reason.casefold() if reason else None
    since = since if since is None or since.tzinfo else since.replace(tzinfo=UTC)
    out = []
    for p in sorted(state):
        for r in state[p].records:
            d = r.letter
            if needle is not None and needle not in d.reason.casefold():
                continue
            if since is not None and (d.dead_lettered_at is None or d.dead_lettered_at < since):
                continue
            out.append(d)
    return out


def _replay_headers(r: _Record) -> list[tuple[str, bytes]]:
    return [(k, v) for k, v in r.headers if not k.startswith("dlq_")] + [
        (REPLAYED_FROM, f"{r.letter.dlq_partition}:{r.letter.dlq_offset}".encode())]


def _plan(s: _Partition, since: datetime | None, report: ReplayReport) -> tuple[list[_Record], int, str]:
    """What to replay from one partition, and the cursor (offset, metadata) to commit once it is delivered."""
    chosen: list[_Record] = []
    kept: list[int] = []  # offsets that stay pending
    for r in s.records:
        d = r.letter
        if not d.topic:
            report.unreplayable += 1
            kept.append(d.dlq_offset)
        elif since is not None and (d.dead_lettered_at is None or d.dead_lettered_at < since):
            report.skipped += 1
            kept.append(d.dlq_offset)
        else:
            chosen.append(r)

    def cursor(chosen: list[_Record]) -> tuple[int, str]:
        committed = min(kept, default=s.end)
        replayed = s.replayed | {r.letter.dlq_offset for r in chosen}
        return committed, encode_offsets(o for o in replayed if o >= committed)

    committed, metadata = cursor(chosen)
    while len(metadata) > METADATA_BUDGET and chosen:  # defer the newest replays until the ranges fit
        kept.append(chosen.pop().letter.dlq_offset)
        report.deferred += 1
        committed, metadata = cursor(chosen)
    return chosen, committed, metadata


def replay_dead_letters(settings: Settings, since: datetime | None = None, timeout: float = 30.0,
                        progress: Callable[[int, int], None] | None = None) -> ReplayReport:
    """Re-produce every pending dead letter (dead-lettered at or after ``since``, if given) to its origin topic.

    Each record keeps its key, value and headers, minus the ``dlq_*`` headers, plus ``dlq_replayed_from`` =
    ``"<dlq partition>:<dlq offset>"``. The cursor (see the module docstring) moves only after every replayed
    record was confirmed. ``progress(done, total)`` is called as deliveries are confirmed.
    """
    since = since if since is None or since.tzinfo else since.replace(tzinfo=UTC)
    topic = settings.deadletter_topic
    consumer = _consumer(settings, replay_group(settings))
    report = ReplayReport()
    try:
        state = _read_pending(settings, consumer, timeout)
        plans = {p: _plan(s, since, report) for p, s in state.items()}
        todo = [r for p in sorted(plans) for r in plans[p][0]]
        if todo:
            _produce(settings, [(r.letter.topic, r, _replay_headers(r)) for r in todo], timeout, progress)
        elif progress is not None:
            progress(0, 0)
        report.replayed = len(todo)
        report.by_topic = dict(Counter(r.letter.topic for r in todo))
        _move_cursor(consumer, topic, state, {p: plan[1:] for p, plan in plans.items()},
                     f"replayed {len(todo)} record(s)", "they will be replayed again")
        report.cursor = {p: (committed, metadata) for p, (_, committed, metadata) in plans.items()}
    finally:
        consumer.close()
    return report


def _move_cursor(consumer: Consumer, topic: str, state: dict[int, _Partition], cursors: dict[int, tuple[int, str]],
                 done: str, consequence: str) -> None:
    """Commit each partition's new cursor (offset, metadata) where it changed."""
    moves = [TopicPartition(topic, p, committed, metadata=metadata)
             for p, (committed, metadata) in sorted(cursors.items())
             if committed != state[p].committed or decode_offsets(metadata) != state[p].replayed]
    if not moves:
        return
    try:
        for tp in consumer.commit(offsets=moves, asynchronous=False) or []:
            if tp.error is not None:
                raise DeadLetterError(f"{done} but could not move the cursor of partition {tp.partition}: "
                                      f"{tp.error}; {consequence}")
    except KafkaException as exc:
        raise DeadLetterError(f"{done} but could not move the cursor: {exc}; {consequence}") from None


def discard_dead_letters(settings: Settings, which: set[tuple[int, int]], why: str, timeout: float = 30.0) -> int:
    """Discard pending dead letters that can never be fixed, named by (dlq partition, dlq offset): each goes to the
    audit topic (``<prefix>.deadletter-discarded``) with its bytes, its headers and ``discard_reason``,
    ``discarded_at``, ``discarded_from``; then the cursor marks it handled, so it is no longer pending and no replay
    sends it. Nothing is lost: the audit topic keeps every discarded record. Returns how many were discarded."""
    if not why.strip():
        raise DeadLetterError("say why these dead letters are discarded (--reason): the audit trail keeps it")
    topic = settings.deadletter_topic
    consumer = _consumer(settings, replay_group(settings))
    try:
        state = _read_pending(settings, consumer, timeout)
        chosen = {p: [r for r in s.records if (p, r.letter.dlq_offset) in which] for p, s in state.items()}
        found = {(p, r.letter.dlq_offset) for p, rs in chosen.items() for r in rs}
        if missing := sorted(which - found):
            raise DeadLetterError(f"not pending dead letters: {', '.join(f'{p}:{o}' for p, o in missing)} (see "
                                  "`omnitrail deadletter list`); nothing was discarded")
        at = datetime.now(UTC).isoformat().encode()
        audit = [(settings.topics.discarded, r, [*r.headers, ("discard_reason", why.encode()), ("discarded_at", at),
                                                   ("discarded_from", f"{p}:{r.letter.dlq_offset}".encode())])
                 for p, rs in chosen.items() for r in rs]
        _produce(settings, audit, timeout, None, "discard")
        cursors = {}
        for p, s in state.items():
            handled = {r.letter.dlq_offset for r in chosen[p]}
            kept = [r.letter.dlq_offset for r in s.records if r.letter.dlq_offset not in handled]
            committed = min(kept, default=s.end)
            cursors[p] = (committed, encode_offsets(o for o in s.replayed | handled if o >= committed))
            if len(cursors[p][1]) > METADATA_BUDGET:
                raise DeadLetterError(f"too many scattered dead letters of partition {p} at once for the cursor; "
                                      "discard fewer (or replay the others first); nothing was discarded")
        _move_cursor(consumer, topic, state, cursors, f"discarded {len(audit)} record(s) to the audit topic",
                     "they are still pending; discarding them again is harmless")
        return len(audit)
    finally:
        consumer.close()


def _produce(settings: Settings, records: list[tuple[str, _Record, list[tuple[str, bytes]]]], timeout: float,
             progress: Callable[[int, int], None] | None, what: str = "replay") -> None:
    """Produce (topic, record, headers) and wait for every delivery; raise if any failed."""
    producer = Producer({
        "bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all",
        "linger.ms": 5, "partitioner": "murmur2_random",  # the partition the Publisher would pick for the key
        "log.connection.close": False, "delivery.timeout.ms": int(timeout * 1000),
        "allow.auto.create.topics": False})
    failures: list[str] = []
    done = 0

    def report(err, msg) -> None:
        nonlocal done
        done += 1
        if err is not None:
            failures.append(f"{msg.topic()}: {err.str()}")
        if progress is not None:
            progress(done, len(records))

    for topic, r, headers in records:
        while True:
            try:
                producer.produce(topic, r.value, r.key, headers=headers, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
            except KafkaException as exc:
                raise DeadLetterError(f"cannot {what} to {topic}: {exc}; nothing was marked done") from None
        producer.poll(0)
    remaining = producer.flush(timeout)
    if remaining or done < len(records):
        failures.append(f"{max(remaining, len(records) - done)} record(s) still undelivered after {timeout}s")
    if failures:
        raise DeadLetterError(f"{len(failures)} {what} failure(s), nothing was marked done (a retry does it again, "
                              f"which is harmless): {'; '.join(failures[:5])}")
