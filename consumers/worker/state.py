"""Customer states of the partitions this worker owns: a local RocksDB store, backed by a compacted changelog topic.

Layout of the local store (``rocksdict`` in raw mode, under ``<state_dir>/states/<group>``):

* ``s<partition:4 bytes><customer id>`` -> the customer's state (orjson);
* ``m<partition:4 bytes>`` -> the changelog offset up to which the local data of that partition reflects the
  changelog (decimal text).

Changed states stay in memory until a checkpoint; ``checkpoint_to`` then writes each one to the changelog
(partition = the customer's partition), waits for the broker, and only then writes them to the local store,
together with the new changelog position, in one atomic write batch. So the local store never holds a state the
changelog lacks, and a worker that restarts (even after kill -9) reads only the changelog written since its own
last checkpoint; a worker taking over a partition from another reads that partition's changelog from where its
local copy stopped (from the start, if it never had it). Every state carries its offset watermarks
(``projections.engine``), so a state that is newer than the group's committed offsets is still exact.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import orjson
from confluent_kafka import Consumer, KafkaError, TopicPartition
from rocksdict import Options, Rdict, WriteBatch

from consumers import kafka
from consumers.worker.outbox import Out, Outbox

log = logging.getLogger(__name__)


_NONE: dict = {}  # a partition with nothing held


def _prefix(kind: bytes, partition: int) -> bytes:
    return kind + partition.to_bytes(4, "big")


class StateStore:
    def __init__(self, path: Path, changelog: str):
        path.mkdir(parents=True, exist_ok=True)
        self._db = Rdict(str(path), Options(raw_mode=True))
        self.changelog = changelog
        self._dirty: dict[int, dict[str, dict]] = {}  # partition -> customer -> state changed since the checkpoint
        # The states the last checkpoint wrote, still decoded: a customer who is active now is likely to be again
        # within the next interval, and decoding a state costs about as much as folding a few events into it. Kept
        # for one interval, so memory stays within two intervals' changed states.
        self._written: dict[int, dict[str, dict]] = {}

    def close(self) -> None:
        self._db.close()

    def position(self, partition: int) -> int | None:
        raw = self._db.get(_prefix(b"m", partition))
        return None if raw is None else int(raw)

    def get(self, partition: int, customer: str) -> dict | None:
        for held in (self._dirty, self._written):
            state = held.get(partition, _NONE).get(customer)
            if state is not None:
                return state
        raw = self._db.get(_prefix(b"s", partition) + customer.encode())
        return None if raw is None else orjson.loads(raw)

    def changed(self, partition: int, customer: str, state: dict) -> None:
        self._dirty.setdefault(partition, {})[customer] = state

    def drop(self, partitions) -> None:
        """Forget what is held in memory of partitions this worker no longer owns: changes not checkpointed (their
        new owner redoes them) and the decoded states (the new owner changes them; the changelog brings them back)."""
        for p in partitions:
            self._dirty.pop(p, None)
            self._written.pop(p, None)

    def checkpoint_to(self, outbox: Outbox) -> None:
        """Write every changed state to the changelog, then to the local store (see the module docstring)."""
        if not self._dirty:
            return
        encoded = {p: {c: orjson.dumps(s) for c, s in states.items()} for p, states in self._dirty.items()}
        ends = outbox.send([Out(self.changelog, value, customer.encode(), partition=p)
                            for p, states in encoded.items() for customer, value in states.items()])
        batch = WriteBatch(raw_mode=True)
        for p, states in encoded.items():
            prefix = _prefix(b"s", p)
            for customer, value in states.items():
                batch.put(prefix + customer.encode(), value)
            batch.put(_prefix(b"m", p), str(ends[(self.changelog, p)]).encode())
        self._db.write(batch)
        self._written, self._dirty = self._dirty, {}

    def restore(self, partitions, bootstrap: str, group: str, timeout: float = 60.0) -> int:
        """Bring the local store of ``partitions`` up to the changelog's end; returns the records read."""
        reader = kafka.consumer(bootstrap, f"{group}-restore", **{"enable.partition.eof": True})
        try:
            return sum(self._restore_one(reader, p, timeout) for p in partitions)
        finally:
            reader.close()

    def _restore_one(self, reader: Consumer, partition: int, timeout: float) -> int:
        low, high = reader.get_watermark_offsets(TopicPartition(self.changelog, partition), timeout=timeout)
        start = self.position(partition)
        if start is None or start > high or start < low:  # no local copy, or one from another changelog
            start = low
            self._clear(partition)
        self._written.pop(partition, None)  # the changelog, not memory, says what the state is now
        if start >= high:
            return 0
        reader.assign([TopicPartition(self.changelog, partition, start)])
        prefix, read = _prefix(b"s", partition), 0
        batch = WriteBatch(raw_mode=True)
        position, deadline = start, time.monotonic() + timeout
        while position < high:
            if time.monotonic() > deadline:
                raise TimeoutError(f"changelog {self.changelog}:{partition} not read to offset {high} within "
                                   f"{timeout}s (at {position})")
            for msg in reader.consume(10_000, 0.2):  # returns early with what arrived: the end may be near
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        position = max(position, msg.offset())
                        continue
                    raise RuntimeError(f"reading changelog {self.changelog}:{partition}: {msg.error().str()}")
                key = prefix + msg.key()
                if msg.value() is None:
                    batch.delete(key)
                else:
                    batch.put(key, msg.value())
                position, read = msg.offset() + 1, read + 1
        batch.put(_prefix(b"m", partition), str(position).encode())
        self._db.write(batch)
        reader.unassign()
        log.info("restored %d state record(s) of %s:%d", read, self.changelog, partition)
        return read

    def _clear(self, partition: int) -> None:
        self._written.pop(partition, None)
        batch = WriteBatch(raw_mode=True)
        batch.delete_range(_prefix(b"s", partition), _prefix(b"s", partition + 1))
        batch.delete(_prefix(b"m", partition))
        self._db.write(batch)

