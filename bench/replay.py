"""Replay benchmark: rebuild the timeline from a log of 1,000,000 events, against a raw ceiling in the same run.

Method. A fresh noida-db broker and embedded ClickHouse (chdb) directory. The log: 20,000 realistic validated events
(``bench.run.build_events``), each produced ``N / 20,000`` times in binary CloudEvents mode with its own event id
(only the ``ce_id`` header differs), keyed by customer, lz4-compressed.

* **omnitrail**: ``projections.replay.Rebuild`` of the timeline, exactly what ``omnitrail replay timeline`` runs:
  confluent-kafka reads in large batches, the codec decodes and validates every record, the pure projection makes
  the rows, Arrow inserts them into ``timeline__rebuild``, then the hand-over and the atomic switch.
* **raw ceiling**: the same records read the same way and inserted as Arrow rows of the same table shape into a
  scratch table, filled straight from the headers and value bytes: no decoding, validation or projection logic.

The ratio omnitrail / raw says what the projection path costs on top of reading and inserting. Results: a table on
stdout, JSON in ``bench/results/replay-<UTC time>.json`` and ``bench/results/replay-latest.json``.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench.run import build_events
from projections.migrate import migrate
from projections.replay import Rebuild
from projections.store import connect
from projections.timeline.fold import SCHEMA
from schemas.codec import encode
from services.settings import Settings
from services.stack import LocalBroker, free_port
from services.topics import ensure_topics

RESULTS = Path(__file__).parent / "results"
BASE = 20_000
console = Console()


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
    migrate(client)
    task = progress.add_task("omnitrail replay timeline", total=n)
    rebuild = Rebuild(client, settings.kafka_bootstrap, [*settings.channel_topics, settings.derived_topic],
                      "timeline", on_progress=lambda p: progress.update(task, completed=p.events))
    started = time.perf_counter()
    done = rebuild.run()
    seconds = time.perf_counter() - started
    rows = client.query("SELECT count() FROM timeline FINAL").result_rows[0][0]
    client.close()
    assert done.state == "done" and rows == n, (done.state, rows, n)
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    n = args.events - args.events % BASE if args.events >= BASE else args.events
    tmp = Path(tempfile.mkdtemp(prefix="omnitrail-bench-replay-"))
    broker = LocalBroker(tmp / "broker", free_port())
    try:
        broker.start()
        settings = Settings(state_dir=tmp / "state", kafka_bootstrap=broker.bootstrap, session_timeout_ms=6000)
        ensure_topics(settings)
        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, console=console) as progress:
            produce_log(settings, n, progress)
            ours = replay(settings, n, progress)
            raw = raw_ceiling(settings, tmp / "raw-store", n, progress)
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "cpus": __import__("os").cpu_count(),
              "machine": platform.machine(), "events": n, "replay": ours, "raw": raw,
              "ratio": ours["events_per_s"] / raw["events_per_s"]}
    table = Table(title=f"omnitrail replay bench: timeline rebuilt from {n:,} events")
    for name in ("measure", "omnitrail", "raw ceiling", "ratio"):
        table.add_column(name, justify="right" if name != "measure" else "left")
    table.add_row("events/s", f"{ours['events_per_s']:,.0f}", f"{raw['events_per_s']:,.0f}", f"{result['ratio']:.2f}")
    table.add_row("seconds", f"{ours['seconds']:.1f}", f"{raw['seconds']:.1f}", "")
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for path in (RESULTS / f"replay-{stamp}.json", RESULTS / "replay-latest.json"):
        path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    console.print(f"results: {RESULTS / f'replay-{stamp}.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
