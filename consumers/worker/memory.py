"""Process memory settings for batch work: the worker, rebuilds and the HTTP service."""

import gc
import time
from contextlib import contextmanager


def tune_gc() -> None:
    """A batch allocates hundreds of thousands of short-lived objects while tens of thousands of states are alive:
    with the default thresholds the cyclic collector runs every 700 allocations and walks them all, which doubled
    the engine's cost per event (measured: 46 -> 22 µs). Objects alive at start move to the permanent generation,
    and the young generation is collected every 100,000 allocations. Nothing in a batch makes reference cycles
    that matter; the collector still runs.

    HTTP ingest is batch work too: each request keeps a few hundred objects alive until the broker acknowledged its
    events (~10 ms), so with the default thresholds they outlived collections, were promoted, and full collections
    walked the ~190,000 objects of the service (~90 ms each): a sampling profile of ``omnitrail serve`` under the
    ingest bench found the event loop in the collector for a fifth of its busy time."""
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


class BatchCollector:
    """Keeps the cyclic collector away from batch work, where it finds nothing.

    A batch decodes the states of the customers it touches (about a hundred containers each) and folds into them;
    they stay alive, in memory until the next checkpoint. Each collection of the young generation walked every one of
    them and promoted them, and so did the next generation's: ~0.2 s per batch of 20,000 events, ~10% of the
    worker's time, without ever finding garbage (a state is a tree; the engine makes no reference cycles; the rest
    of a batch is freed by reference counting when it ends). So the collector is off while a batch runs, and what
    survives a batch is frozen (moved, in constant time, to the generation the collector never walks; frozen objects
    are still freed by reference counting). Cyclic garbage of other code (the HTTP service, the runtime) may be frozen
    with it, so every ``full_every`` seconds everything is unfrozen and collected once (~1 s with 100,000 states in
    memory): what leaks is bounded by what such code makes in that time."""

    def __init__(self, full_every: float = 600.0):
        self.full_every = full_every
        self._next_full = time.monotonic() + full_every

    @contextmanager
    def batch(self):
        enabled = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if time.monotonic() >= self._next_full:
                gc.unfreeze()
                gc.collect()
                self._next_full = time.monotonic() + self.full_every
            gc.freeze()
            if enabled:
                gc.enable()
