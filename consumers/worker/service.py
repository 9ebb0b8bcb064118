"""The worker process: faust runs it (lifecycle, signals, logging, timers); the consume loop does the streaming.

faust's own consumer and tables are not used for the projections: its per-message path costs ~400 µs and its
table recovery can drop fetched records (faust-streaming/faust#596). The faust app runs in producer-only mode, so
it joins no consumer group; ``ProjectionService`` runs the confluent-kafka ``ConsumeLoop`` in a thread of its own
and turns a failure of that loop into a crash of the worker (exit code 1, nothing committed past the failure).
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import threading
import time
from collections.abc import Callable

import faust

from consumers.topics import create_topics
from consumers.worker.config import WorkerConfig
from consumers.worker.loop import ConsumeLoop
from consumers.worker.memory import tune_gc
from projections.engine import Engine
from projections.migrate import migrate
from projections.sink import Sink
from projections.store import connect

log = logging.getLogger("omnitrail.worker")


class ProjectionService(faust.Service):
    def __init__(self, loop: ConsumeLoop, stall_seconds: float, **kwargs):
        super().__init__(**kwargs)
        self.consume = loop
        self._stall_seconds = stall_seconds
        self._done: asyncio.Future | None = None
        self._progress = (0, time.monotonic())

    async def on_start(self) -> None:
        aio = asyncio.get_running_loop()
        self._done = aio.create_future()

        def run() -> None:
            error = None
            try:
                self.consume.run()
            except BaseException as exc:  # noqa: BLE001 (handed to the event loop, which crashes the worker)
                error = exc
            finally:
                aio.call_soon_threadsafe(_settle, self._done, error)

        threading.Thread(target=run, name="consume-loop", daemon=True).start()
        self.add_future(self._watch())

    async def _watch(self) -> None:
        error = await asyncio.shield(self._done)
        if not self.consume.stopping.is_set():  # it ended on its own: a failure, even without an exception
            error = error or RuntimeError("the consume loop ended unexpectedly")
            log.error("the consume loop failed; the worker stops without committing past the failure",
                      exc_info=error)
            await self.crash(error)

    async def on_stop(self) -> None:
        self.consume.stop()
        if self._done is not None:
            await asyncio.shield(self._done)  # the loop checkpoints on its way out

    @faust.Service.timer(10.0)
    async def _stall_alarm(self) -> None:
        """An alarm, not a remedy: the worker keeps going; the log (and ``omnitrail status``) tell the operator."""
        records, since = self._progress
        if self.consume.records != records:
            self._progress = (self.consume.records, time.monotonic())
            return
        idle = time.monotonic() - since
        if idle > self._stall_seconds and (lag := self.consume.lag()):
            log.warning("no record processed for %.0fs with %d record(s) of lag%s", idle, lag,
                        ": the store refuses writes" if self.consume.sink.retrying else "")


def _settle(future: asyncio.Future, error: BaseException | None) -> None:
    if not future.done():
        future.set_result(error)


def run(config: WorkerConfig, on_ready: Callable[[], None] = lambda: None, loglevel: str = "warning") -> None:
    """Run the worker until a signal stops it; exits the process (0 after a clean stop, 1 after a failure)."""
    # A crash in native code (librdkafka, chdb, RocksDB) then leaves every thread's Python stack in the log.
    faulthandler.enable()
    create_topics(config.bootstrap, config.topics, config.partitions)
    client = connect(config.store_url)
    migrate(client)
    # The store is retried until it takes a batch, except by a worker that is stopping (see ``giving_up``).
    sink = Sink(client, stopping=lambda: loop.giving_up())
    loop = ConsumeLoop(config, Engine(rules=config.rules), sink, on_ready)
    app = faust.App(f"{config.group}-runtime", broker=f"kafka://{config.bootstrap}", autodiscover=False,
                    web_enabled=False, topic_disable_leader=True, topic_allow_declare=False,
                    datadir=str(config.state_dir / "faust"))
    app.producer_only = True  # no faust consumer group: the consume loop owns the channel topics
    tune_gc()
    worker = faust.Worker(app, ProjectionService(loop, config.stall_seconds), loglevel=loglevel.upper(), quiet=True,
                          redirect_stdouts=False)
    worker.spinner = None  # no terminal spinner (it writes cursor codes even to a log file): one ready line says it
    try:
        worker.execute_from_commandline()  # exits (SystemExit) once the consume loop has stopped
    finally:
        # An embedded ClickHouse (chdb) can crash the interpreter's exit when a connection is left open
        # (chdb-io/chdb-core#177): a worker that stopped cleanly must not end with SIGSEGV.
        client.close()
