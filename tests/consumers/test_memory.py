"""The worker's batch collector: no cyclic collection within a batch, survivors frozen, a full collection in time."""

import gc
import weakref

import pytest

from consumers.worker.memory import BatchCollector


class Node:
    def __init__(self, cyclic: bool = True):
        self.other = self if cyclic else None


@pytest.fixture(autouse=True)
def restore_collector():
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()


def cycle() -> weakref.ref:
    """Cyclic garbage: only the collector can free it."""
    return weakref.ref(Node())


def test_the_collector_is_off_within_a_batch_and_on_after_it():
    gc.enable()
    with BatchCollector().batch():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_what_survives_a_batch_is_frozen_and_still_freed_by_reference_counting():
    gc.unfreeze()
    collector = BatchCollector()
    with collector.batch():
        kept = {"state": Node(cyclic=False)}
    assert gc.get_freeze_count() > 0
    watched = weakref.ref(kept["state"])
    del kept  # no cycle: reference counting frees it, frozen or not
    assert watched() is None


def test_cyclic_garbage_frozen_by_a_batch_waits_for_the_next_full_collection():
    collector = BatchCollector(full_every=3600)
    with collector.batch():
        leaked = cycle()
    gc.collect()
    assert leaked() is not None  # frozen: the collector does not walk it (the price of skipping batches)
    collector.full_every, collector._next_full = 0, 0  # the interval is up
    with collector.batch():
        pass
    assert leaked() is None  # the full collection unfroze and freed it
