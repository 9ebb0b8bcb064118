"""Runs `omnitrail worker` as a real subprocess configured from a Settings object, for integration tests."""

from __future__ import annotations

import os
import signal
from contextlib import contextmanager
import subprocess
import sys
import time
from pathlib import Path

import orjson

from services.reader import api_call
from services.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The OMNITRAIL_ environment that rebuilds ``settings`` in another process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITRAIL_")}
    for name, value in settings.model_dump(mode="json", exclude={"store_url"}, exclude_none=True).items():
        env[f"OMNITRAIL_{name.upper()}"] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return env


def run_cli(settings: Settings, *args: str, input: str | None = None, timeout: float = 60,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``omnitrail *args`` in a subprocess with ``settings``; ``env`` adds variables (e.g. ``COLUMNS``)."""
    return subprocess.run([sys.executable, "-m", "services", *args], env={**settings_env(settings), **(env or {})},
                          input=input, capture_output=True, text=True, timeout=timeout)


class WorkerProcess:
    """A projection worker subprocess; ``start`` waits until it reports ready (its read API answers)."""

    def __init__(self, settings: Settings, log: Path):
        self.settings, self.log = settings, log
        self.proc: subprocess.Popen | None = None

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "services", "worker", "--log-level", "info"],
                                     env=settings_env(self.settings),
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start(self, timeout: float = 60) -> WorkerProcess:
        self._spawn()
        deadline = time.monotonic() + timeout
        while not api_call(self.settings, "/health", 1):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()  # leave no half-started worker behind
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        return self

    @contextmanager
    def paused(self):
        """SIGSTOP the worker for the block, SIGCONT after: it writes nothing meanwhile (see ``restart_broker``)."""
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def restart_broker(broker, *workers: WorkerProcess) -> None:
    """Restart a noida-db broker gracefully (SIGINT: it saves its data) while the workers are paused.

    Why paused: noida-db loses writes it acknowledged while it shuts down (measured: a worker had read offsets up
    to 84 of a derived partition, and after the restart that partition ended below 85; 68 acknowledged derived
    events were gone). Apache Kafka keeps what it acknowledged with acks=all. Pausing the workers keeps the test
    about the worker (its connections break, the group starts afresh, producer ids are forgotten), not about that
    broker defect."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        for worker in workers:
            stack.enter_context(worker.paused())
        broker.stop()
        broker.start()
