"""Runs `omnitrail worker` as a real subprocess configured from a Settings object, for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from services.reader import api_get
from services.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The OMNITRAIL_ environment that rebuilds ``settings`` in another process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITRAIL_")}
    for name, value in settings.model_dump(mode="json", exclude={"store_url"}).items():
        env[f"OMNITRAIL_{name.upper()}"] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return env


def run_cli(settings: Settings, *args: str, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services", *args], env=settings_env(settings), input=input,
                          capture_output=True, text=True, timeout=timeout)


# The worker stops itself when its consumer skipped records (75, consumers/app.py) or stalled (76, services/cli.py)
RESTART_ME = (75, 76)


class WorkerProcess:
    """A projection worker subprocess under a small supervisor, as a deployment runs it.

    ``start`` waits until the worker reports ready. A worker that stops itself with exit code 75 or 76 (its
    consumer skipped records or stalled, so a restart must resume) is started again, like ``restart: unless-stopped``;
    ``restarts`` counts those. Any other exit is left for the test to see.
    """

    def __init__(self, settings: Settings, log: Path, max_restarts: int = 20):
        self.settings, self.log, self.max_restarts = settings, log, max_restarts
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stopping = threading.Event()
        self._supervisor: threading.Thread | None = None

    def _spawn(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "services", "worker"], env=settings_env(self.settings),
                                     stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _restart_if_it_asked(self) -> bool:
        if self.proc is not None and self.proc.poll() in RESTART_ME and self.restarts < self.max_restarts:
            self.restarts += 1
            self._spawn()
            return True
        return False

    def _supervise(self) -> None:
        while not self._stopping.wait(0.2):
            self._restart_if_it_asked()

    def start(self, timeout: float = 60) -> WorkerProcess:
        self._spawn()
        deadline = time.monotonic() + timeout
        while not api_get(self.settings, "/health", 1):
            if (self.proc.poll() is not None and not self._restart_if_it_asked()) or time.monotonic() > deadline:
                self.stop()  # leave no half-started worker behind
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)
        self._supervisor.start()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        if self.alive():
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
