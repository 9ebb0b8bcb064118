"""The local stack: a Kafka-protocol broker (noida-db) on loopback, its data under ``<state_dir>/broker``.

No Docker engine is assumed. noida-db is an independent implementation of the Kafka protocol that keeps its data
on disk; it is stopped with SIGINT so that it saves everything. Production uses Apache Kafka (docker-compose.yml).
noida-db is the ``local`` extra, imported only to start a broker: the production image carries neither it nor chdb.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from services.settings import Settings


def noida_binary() -> Path:
    try:
        import noida_db
    except ImportError:
        raise RuntimeError("the local broker (noida-db) is not installed: pip install 'omnitrail[local]', or point "
                           "OMNITRAIL_KAFKA_BOOTSTRAP at a Kafka cluster") from None
    return Path(noida_db.__file__).parent / "noida-db"


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def split_bootstrap(bootstrap: str) -> tuple[str, int]:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return host or "127.0.0.1", int(port)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass
class LocalBroker:
    """A noida-db Kafka broker process on ``host:port`` with its data in ``data_dir``."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "omnitrail-broker.pid"

    def pid(self) -> int | None:
        """The pid of a running broker started for this data dir (by this or another process), if any."""
        if self.process is not None and self.process.poll() is None:
            return self.process.pid
        try:
            pid = int(self.pid_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, timeout: float = 30.0) -> None:
        """Start the broker in the background and wait until it accepts connections."""
        if self.pid():
            return
        binary = noida_binary()
        if port_open(self.host, self.port):
            raise RuntimeError(f"port {self.bootstrap} is already taken by another process")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.data_dir / "broker.log", "ab")
        self.process = subprocess.Popen(
            [str(binary), "start", "--data-dir", str(self.data_dir), "--host", self.host,
             "--only", "kafka", "--kafka-port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.pid_file.write_text(str(self.process.pid))
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited with {self.process.returncode}; see {self.data_dir / 'broker.log'}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"broker did not listen on {self.bootstrap} within {timeout}s")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the broker with SIGINT (it saves its data), SIGKILL after ``timeout``. False if none was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            if self.process is not None and self.process.pid == pid and self.process.poll() is not None:
                break
            time.sleep(0.05)
        if _alive(pid) and (self.process is None or self.process.poll() is None):
            os.kill(pid, signal.SIGKILL)
        if self.process is not None:
            self.process.wait()
        self.pid_file.unlink(missing_ok=True)
        return True


def local_broker(settings: Settings) -> LocalBroker:
    host, port = split_bootstrap(settings.kafka_bootstrap)
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"the local stack runs on loopback only; OMNITRAIL_KAFKA_BOOTSTRAP is {settings.kafka_bootstrap}")
    return LocalBroker(settings.state_dir / "broker", port, "127.0.0.1")
