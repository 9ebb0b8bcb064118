"""Runs rebuilds where the store can be written: in this process, or inside the worker that owns an embedded store.

With a ClickHouse server, or an embedded store no worker holds, ``omnitrail replay`` rebuilds in its own process.
While a worker owns the embedded store, the CLI asks the worker's API to run the rebuild in a thread of its own
(``POST /v1/replay/<name>``), follows its progress (``GET /v1/replay``) and can cancel it (``DELETE /v1/replay``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from consumers.worker.memory import BatchCollector
from projections.migrate import migrate
from projections.replay import Progress, Rebuild, ReplayError, drop_old, verify
from projections.store import connect
from services.settings import Settings


def new_rebuild(settings: Settings, name: str, client=None,
                on_progress: Callable[[Progress], None] | None = None) -> Rebuild:
    client = client or connect(settings.store_url)
    migrate(client)
    return Rebuild(client, settings.kafka_bootstrap, settings.topics.log, name, settings.rules,
                   on_progress=on_progress, batch_scope=BatchCollector().batch)


class Replays:
    """At most one rebuild at a time in a process (the worker), run in a background thread."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._lock = threading.Lock()
        self._client = None  # for drop-old and verify; each rebuild has a client of its own
        self.current: Rebuild | None = None
        self._thread: threading.Thread | None = None

    def _store(self):
        with self._lock:
            self._client = self._client or connect(self._settings.store_url)
            return self._client

    def start(self, name: str) -> Progress:
        with self._lock:
            if self.current is not None and self.current.progress.state in ("starting", "rebuilding", "switching"):
                raise ReplayError(f"a rebuild of {self.current.name} is already running")
            self.current = new_rebuild(self._settings, name)
            self._thread = threading.Thread(target=self._run, args=(self.current,), name=f"replay-{name}",
                                            daemon=True)
            self._thread.start()
            return self.current.progress

    def _run(self, rebuild: Rebuild) -> None:
        try:
            self.run_quietly(rebuild)
        finally:
            rebuild.client.close()  # one connection per rebuild, and a worker runs many in its life

    @staticmethod
    def run_quietly(rebuild: Rebuild) -> None:
        """Run in a background thread: a failure is recorded in the progress, which the CLI shows."""
        try:
            rebuild.run()
        except Exception:
            pass

    def status(self) -> dict | None:
        return self.current.progress.as_dict() if self.current else None

    def cancel(self) -> bool:
        if self.current is None:
            return False
        self.current.cancel()
        return True

    def close(self) -> None:
        """Cancel a running rebuild (it resumes from its checkpoint when started again) and close the store
        connections: an embedded store must not have one open when the process exits (chdb-io/chdb-core#177)."""
        if self._thread is not None and self._thread.is_alive():
            self.cancel()
            self._thread.join(10)
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def drop_old(self, name: str) -> bool:
        return drop_old(self._store(), name)

    def verify(self, name: str) -> list[dict]:
        return verify(self._store(), name)
