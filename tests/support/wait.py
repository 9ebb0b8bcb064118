"""Polling for things that become true eventually (a worker catching up)."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.reader import ReaderError


def wait_until(check: Callable[[], object], timeout: float = 20.0, interval: float = 0.2):
    """Poll ``check`` until it returns something truthy; return it, or fail with the last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except ReaderError:  # a worker or broker restarting: the store is not readable for a moment
            value = None
        if value or time.monotonic() > deadline:
            assert value, f"condition not met within {timeout}s (last value {value!r})"
            return value
        time.sleep(interval)
