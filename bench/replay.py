"""Replay benchmark: rebuild the timeline from a log of 1,000,000 events, against a raw ceiling in the same run.

Method. A fresh noida-db broker and embedded ClickHouse (chdb) directory. The log: 20,000 realistic validated events
(``bench.workload.build_events``), each produced ``N / 20,000`` times in binary CloudEvents mode with its own event id
(only the ``ce_id`` header differs), keyed by customer, lz4-compressed.

* **omnitrail**: ``projections.replay.Rebuild`` of the timeline, exactly what ``omnitrail replay timeline`` runs:
  confluent-kafka reads in large batches, every record is decoded and validated as the worker does it, the engine
  (``projections.engine``, the worker's) makes the timeline rows, Arrow inserts them into ``timeline__rebuild``,
  then the hand-over and the atomic switch.
* **raw ceiling**: the same records read the same way and inserted as Arrow rows of the same table shape into a
  scratch table, filled straight from the headers and value bytes: no decoding, validation or projection logic.

The ratio omnitrail / raw says what the projection path costs on top of reading and inserting (target: >= 0.5).
Before each timed phase the bench waits for the broker to finish saving (noida-db rewrites its data file after
writes), and it records the broker's CPU share during each phase. Results: a table on stdout, JSON in
``bench/results/replay-<UTC time>.json`` and ``bench/results/replay-latest.json``; then ``bench.summary`` merges
them with the ``bench.run`` results into ``bench/results/latest.json``. The broker is stopped on exit, errors and
Ctrl-C (or SIGTERM) included.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import harness as h
from bench import summary as targets
from bench.workload import build_events
from consumers.worker.memory import tune_gc
from projections.migrate import migrate
from projections.store import connect
from projections.timeline.fold import SCHEMA
from schemas.codec import encode
from services.replay import new_rebuild
from services.settings import Settings
from services.stack import LocalBroker, free_port
from services.topics import ensure_topics

RESULTS = Path(__file__).parent / "results"
BASE = 20_000
console = Console(width=None if sys.stdout.isatty() else 150)


def produce_log(settings: Settings, n: int, progress: Progress) -> None:
    base = [encode(e) for e in build_events(BASE, 2_000)]
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20, "compression.type": "lz4",
                         "batch.num.messages": 10_000, "partitioner": "murmur2_random"})
    task = progress.add_task("produce the log", total=n)
    for i in range(n):
        record = base[i % BASE]
        headers = [(k, f"{v.decode()}-{i // BASE}".encode() if k == "ce_id" else v) for k, v in record.headers]
        topic = settings.channel_topic(dict(headers)["ce_channel"].decode())
        while True:
            try:
                producer.produce(topic, record.value, record.key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
            progress.update(task, completed=i)
    assert producer.flush(60) == 0
    progress.update(task, completed=n)


def replay(settings: Settings, n: int, progress: Progress) -> dict:
    client = connect(settings.store_url)
    task = progress.add_task("omnitrail replay timeline", total=n)
    rebuild = new_rebuild(settings, "timeline", client,  # built as `omnitrail replay` builds it
                          on_progress=lambda p: progress.update(task, completed=p.events))
    started = time.perf_counter()
    done = rebuild.run()
    seconds = time.perf_counter() - started
    rows = client.query("SELECT count() FROM timeline FINAL").result_rows[0][0]
    client.close()
    if done.state != "done" or rows != n:
        raise RuntimeError(f"the rebuild ended {done.state!r} ({done.error or 'no error'}) with {rows:,} of {n:,} "
                           "events on the timeline")
    return {"events": n, "seconds": seconds, "events_per_s": n / seconds, "rows": rows}


def raw_ceiling(settings: Settings, store: Path, n: int, progress: Progress) -> dict:
    client = connect(f"chdb://{store}")
    migrate(client)
    client.command("CREATE TABLE raw_timeline AS timeline")
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "bench-raw",
                         "enable.auto.commit": False, "fetch.max.bytes": 64 * 1024 * 1024,
                         "max.partition.fetch.bytes": 16 * 1024 * 1024})
    consumer.assign([TopicPartition(t, p, 0) for t in settings.channel_topics for p in range(settings.partitions)])
    task = progress.add_task("raw read + Arrow insert", total=n)
    started, seen = time.perf_counter(), 0
    while seen < n:
        batch = [m for m in consumer.consume(50_000, 1.0) if m.error() is None]
        if not batch:
            continue
        columns = {name: [] for name in SCHEMA.names}
        for m in batch:
            h = dict(m.headers())
            row = {"customer_id": m.key().decode(), "time": datetime.fromisoformat(h["ce_time"].decode()),
                   "source": h["ce_source"].decode(), "event_id": h["ce_id"].decode(), "type": h["ce_type"].decode(),
                   "kind": "", "channel": h["ce_channel"].decode(), "correlation_id": "", "summary": "",
                   "data": m.value().decode(), "topic": m.topic(), "partition": m.partition(), "offset": m.offset()}
            for name in SCHEMA.names:
                columns[name].append(row[name])
        client.insert_arrow("raw_timeline", pa.table(columns, schema=SCHEMA))
        seen += len(batch)
        progress.update(task, completed=seen)
    seconds = time.perf_counter() - started
    consumer.close()
    client.close()
    return {"events": seen, "seconds": seconds, "events_per_s": seen / seconds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the log (1000000)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up like Ctrl-C
    tune_gc()  # as `omnitrail replay` and the worker do
    n = args.events - args.events % BASE if args.events >= BASE else args.events
    load = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="omnitrail-bench-replay-"))
    broker = LocalBroker(tmp / "broker", free_port())
    at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        broker.start()
        settings = Settings(state_dir=tmp / "state", kafka_bootstrap=broker.bootstrap, session_timeout_ms=6000)
        ensure_topics(settings)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console) as progress:
            produce_log(settings, n, progress)
            settle = h.wait_quiet(broker)
            broker_mib = h.broker_data_mib(broker)
            meter = h.CpuMeter({"broker": broker.pid(), "bench": os.getpid()})
            ours = replay(settings, n, progress) | meter.stop()
            h.wait_quiet(broker)
            meter = h.CpuMeter({"broker": broker.pid(), "bench": os.getpid()})
            raw = raw_ceiling(settings, tmp / "raw-store", n, progress) | meter.stop()
    except Exception as exc:  # noqa: BLE001 (recorded, so latest.json shows the failure rather than an old figure)
        console.print(f"[red]replay bench failed: {escape(f'{type(exc).__name__}: {exc}')}[/red]")
        _write({"at": at, "events": n, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(limit=8)})
        targets.publish()
        return 1
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"at": at, "cpus": os.cpu_count(),
              "machine": platform.machine(), "loadavg_at_start": load, "events": n, "replay": ours, "raw": raw,
              "ratio": ours["events_per_s"] / raw["events_per_s"], "target_ratio": 0.5,
              "broker_settle_s": settle, "broker_data_mib": broker_mib}
    table = Table(title=f"omnitrail replay bench: timeline rebuilt from {n:,} events")
    for name in ("measure", "omnitrail", "raw ceiling", "ratio"):
        table.add_column(name, justify="right" if name != "measure" else "left")
    table.add_row("events/s", f"{ours['events_per_s']:,.0f}", f"{raw['events_per_s']:,.0f}",
                  f"{result['ratio']:.2f} (target >= 0.5: {'met' if result['ratio'] >= 0.5 else 'NOT met'})")
    table.add_row("seconds", f"{ours['seconds']:.1f}", f"{raw['seconds']:.1f}", "")
    table.add_row("broker CPU % of a core", f"{ours['broker_pct_of_one_core']:.0f}",
                  f"{raw['broker_pct_of_one_core']:.0f}", "")
    console.print(table)
    path = _write(result)
    console.print(f"results: {path}")
    targets.publish()
    return 0


def _write(result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS / f"replay-{stamp}.json", RESULTS / "replay-latest.json"):
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return RESULTS / f"replay-{stamp}.json"


if __name__ == "__main__":
    raise SystemExit(main())
