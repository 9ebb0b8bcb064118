"""Offset bookkeeping of the worker: what to commit, and the invariant that no record is skipped.

Channel, derived and repartition topics are neither compacted nor transactional, so a partition's records have
consecutive offsets. The tracker is seeded from the group's committed offsets when partitions are assigned (the
first record must be exactly there) and then expects each record to follow the one before. A jump means records
were not delivered to the worker: an invariant violation that stops the batch before anything is committed.
"""

from __future__ import annotations

TP = tuple[str, int]


class OffsetGap(RuntimeError):
    """Records were skipped: the worker must not commit past them."""


class Offsets:
    def __init__(self) -> None:
        self._next: dict[TP, int] = {}       # next offset expected (and, once read, the one to commit)
        self._committed: dict[TP, int] = {}  # what the group has committed

    def seed(self, tp: TP, committed: int) -> None:
        self._next[tp] = self._committed[tp] = committed

    def forget(self, tps) -> None:
        for tp in tps:
            self._next.pop(tp, None)
            self._committed.pop(tp, None)

    def read(self, tp: TP, offset: int) -> None:
        """Record that ``offset`` of ``tp`` was read; raises ``OffsetGap`` unless it is the next one expected."""
        expected = self._next.get(tp)
        if expected is None:
            raise OffsetGap(f"{tp[0]}:{tp[1]} delivered offset {offset} before it was assigned to this worker")
        if offset != expected:
            raise OffsetGap(f"{tp[0]}:{tp[1]} delivered offset {offset} where {expected} was expected: "
                            f"{'records were skipped' if offset > expected else 'offsets went backwards'}")
        self._next[tp] = offset + 1

    def to_commit(self) -> dict[TP, int]:
        """Positions read but not yet committed."""
        return {tp: n for tp, n in self._next.items() if n != self._committed.get(tp)}

    def committed(self, positions: dict[TP, int]) -> None:
        self._committed.update(positions)

    def positions(self) -> dict[TP, int]:
        return dict(self._next)
