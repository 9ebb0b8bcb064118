"""The worker's offset invariant: each partition's records follow on from the committed offset, none skipped."""

import pytest

from consumers.worker.offsets import Offsets, OffsetGap


def test_records_in_sequence_from_the_committed_offset_are_accepted_and_committed():
    o = Offsets()
    o.seed(("t", 0), 5)
    for offset in (5, 6, 7):
        o.read(("t", 0), offset)
    assert o.to_commit() == {("t", 0): 8}
    o.committed(o.to_commit())
    assert o.to_commit() == {}


@pytest.mark.parametrize("offset, why", [(7, "records were skipped"), (4, "offsets went backwards")])
def test_a_jump_stops_the_batch(offset, why):
    o = Offsets()
    o.seed(("t", 0), 5)
    with pytest.raises(OffsetGap, match=why):
        o.read(("t", 0), offset)
    assert o.to_commit() == {}


def test_a_record_of_a_partition_not_assigned_is_refused():
    o = Offsets()
    o.seed(("t", 0), 0)
    o.forget([("t", 0)])
    with pytest.raises(OffsetGap, match="before it was assigned"):
        o.read(("t", 0), 0)
