"""The fault scenario shared by the kill -9 test and ``make soak``: simulated traffic, a worker killed mid-stream,
optionally a broker restarted mid-stream, a worker started again; then the stores against the ground truth."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson

from services.publisher import Publisher
from services.reader import sql
from services.settings import Settings
from services.simulate import Simulation
from services.stack import LocalBroker
from services.status import consumer_lag
from tests.support.truth import Query, differences
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, restart_broker, run_cli


def api_query(settings: Settings) -> Query:
    """SQL against the store of the worker that serves ``settings`` (or the store itself when none runs)."""
    def query(statement: str) -> list[dict]:
        result = sql(settings, statement)
        return [dict(zip(result["columns"], row)) for row in result["rows"]]
    return query


def cli_query(settings: Settings) -> Query:
    """SQL through ``omnitrail sql`` in a process of its own: for the embedded store of a worker that died."""
    def query(statement: str) -> list[dict]:
        result = run_cli(settings, "sql", statement, "--json", timeout=120)
        assert result.returncode == 0, result.stderr
        return orjson.loads(result.stdout)
    return query


def stored(settings: Settings) -> int:
    return api_query(settings)("SELECT count() AS n FROM timeline")[0]["n"]


def caught_up(settings: Settings, expected_rows: int) -> bool:
    """Every record committed (so processed and checkpointed) and at least the expected timeline rows stored."""
    try:
        lag = sum(p.lag for p in consumer_lag(settings))
        return lag == 0 and api_query(settings)("SELECT count() AS n FROM timeline FINAL")[0]["n"] >= expected_rows
    except Exception:  # noqa: BLE001 (a broker or worker restarting: not yet)
        return False


@dataclass
class Outcome:
    diffs: dict[str, dict[str, int]]
    seconds: float
    events: int
    killed_at_rows: int                   # timeline rows stored when the worker was killed
    broker_restarted_at_rows: int | None  # ... and when the broker was restarted


def kill_and_recover(settings: Settings, workdir: Path, sim: Simulation, kill_after_rows: int,
                     broker: LocalBroker | None = None, restart_broker_after_rows: int | None = None,
                     timeout: float = 400, log: Callable[[str], None] = lambda _: None) -> Outcome:
    started = time.monotonic()
    with Publisher(settings) as publisher:
        publisher.publish_many(sim.events)
    expected = sum(sim.truth["timeline"].values())
    first = WorkerProcess(settings, workdir / "worker-1.log").start(timeout=120)
    wait_until(lambda: stored(settings) >= kill_after_rows, timeout=timeout, interval=0.2)
    first.stop(signal.SIGKILL)  # mid-stream, no goodbye: uncommitted offsets, half-written batches
    assert first.proc.returncode == -signal.SIGKILL
    killed_at, restarted_at = stored(settings), None
    log(f"killed the worker after {killed_at} timeline rows")
    second = WorkerProcess(settings, workdir / "worker-2.log").start(timeout=120)
    try:
        if broker is not None and restart_broker_after_rows is not None:
            wait_until(lambda: stored(settings) >= restart_broker_after_rows, timeout=timeout, interval=0.2)
            restarted_at = stored(settings)
            restart_broker(broker, second)  # noida-db forgets every group's members and producer ids
            log(f"restarted the broker after {restarted_at} timeline rows")
        try:
            wait_until(lambda: caught_up(settings, expected), timeout=timeout, interval=1)
        except AssertionError:
            log(f"not caught up within {timeout}s: comparing what is there")  # the differences say what is missing
        assert second.alive(), f"the worker stopped:\n{second.log.read_text()[-3000:]}"
        return Outcome(differences(sim.truth, [api_query(settings)]), time.monotonic() - started, len(sim.events),
                       killed_at, restarted_at)
    finally:
        second.stop()
