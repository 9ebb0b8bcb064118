"""What the benchmarks run on: fresh brokers, worker processes, /proc readings, topic loading, raw baselines.

Every process started here is stopped by the context that started it, on errors and Ctrl-C too: a broker by
``fresh_broker`` (SIGINT, SIGKILL after 15 s), a worker by ``Worker.stop`` (SIGTERM, SIGKILL after 30 s). Workers
also get SIGTERM from the kernel if the bench process dies without cleaning up (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import shutil
import signal
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from consumers.kafka import partition_for
from consumers.worker.loop import fetch_settings
from projections.store import connect
from schemas.codec import Record
from schemas.envelope import Event
from services.settings import Settings
from services.stack import LocalBroker, free_port
from services.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
LATENCY_SOURCE = "/bench/latency"
# The events a scenario loaded (derived events, e.g. flags, and latency probes also land on the timeline).
BULK = f"startsWith(source, '/bench/') AND source != '{LATENCY_SOURCE}'"


# --- /proc ------------------------------------------------------------------------------------------------------
def _stat_cpu(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a process, all its threads included (``/proc/<pid>/stat``)."""
    return _stat_cpu(f"/proc/{pid}/stat")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread, keyed ``<tid> <name>``."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, IndexError, ValueError):  # a thread may end while we read
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            out[f"{tid} {name}"] = _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
    return out


def memory(pid: int) -> dict:
    """Resident memory of a process in MiB: VmRSS (now), VmHWM (peak), RssAnon / RssFile (heap vs mapped files)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
            number = int(rest.split()[0])
            values[key] = number if key == "Threads" else round(number / 1024, 1)  # kB -> MiB
    return {"rss_mib": values["VmRSS"], "hwm_mib": values["VmHWM"], "rss_anon_mib": values.get("RssAnon"),
            "rss_file_mib": values.get("RssFile"), "threads": values.get("Threads")}


def cpu_share(pid: int, seconds: float) -> dict:
    """CPU use of ``pid`` over ``seconds`` of wall time, in % of one core, and the busiest threads."""
    threads0, cpu0, t0 = thread_cpu(pid), cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    threads1, cpu1, wall = thread_cpu(pid), cpu_seconds(pid), time.monotonic() - t0
    busy = sorted(((k, v - threads0.get(k, 0.0)) for k, v in threads1.items()), key=lambda kv: -kv[1])
    return {"seconds": wall, "cpu_s": cpu1 - cpu0, "pct_of_one_core": (cpu1 - cpu0) / wall * 100,
            "busiest_threads_pct": {k: round(v / wall * 100, 2) for k, v in busy[:6] if v > 0}}


class CpuMeter:
    """CPU seconds a set of processes used between ``start`` and ``stop``, in % of one core."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.t0, self.cpu0 = time.monotonic(), {k: _safe_cpu(p) for k, p in pids.items()}

    def stop(self) -> dict:
        wall = time.monotonic() - self.t0
        return {f"{k}_pct_of_one_core": round((_safe_cpu(p) - self.cpu0[k]) / wall * 100, 1)
                for k, p in self.pids.items()}


def _safe_cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:
        return math.nan


# --- percentiles -------------------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def summary(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms), "mean_ms": sum(ms) / len(ms)}


def ticking(items: Iterable, progress: Progress, task, every: int = 500) -> Iterator:
    """Yield ``items``, advancing a progress task as they are consumed."""
    k = 0
    for k, item in enumerate(items, 1):
        yield item
        if k % every == 0:
            progress.advance(task, every)
    progress.advance(task, k % every)


# --- brokers -----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def fresh_broker(data_dir: Path) -> Iterator[LocalBroker]:
    """A noida-db broker on a free port with an empty data dir, stopped (and its data deleted) afterwards."""
    broker = LocalBroker(data_dir, free_port())
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def wait_quiet(broker: LocalBroker, below_pct: float = 10.0, window: float = 0.5, timeout: float = 60.0) -> float:
    """Wait until the broker uses less than ``below_pct`` of a core over ``window`` s; return the seconds waited.

    noida-db rewrites its whole data file on a save after writes: a timed phase should not pay for the save the
    previous phase caused."""
    t0 = time.monotonic()
    pid = broker.pid()
    while pid and time.monotonic() - t0 < timeout:
        c0 = cpu_seconds(pid)
        time.sleep(window)
        if (cpu_seconds(pid) - c0) / window * 100 < below_pct:
            break
    return time.monotonic() - t0


def broker_data_mib(broker: LocalBroker) -> float:
    return round(sum(f.stat().st_size for f in broker.data_dir.glob("*.json")) / 2**20, 1)


# --- topics ------------------------------------------------------------------------------------------------------
def encoded(settings: Settings, events: list[Event]) -> list[tuple[str, Record]]:
    from schemas.codec import encode
    return [(settings.channel_topic(e.channel), encode(e, settings.event_mode)) for e in events]


def produce_all(producer: Producer, items) -> list[str]:
    """Produce (topic, record) pairs and wait for every acknowledgement; the errors, if any."""
    errors: list[str] = []
    for topic, rec in items:
        while True:
            try:
                producer.produce(topic, rec.value, rec.key, headers=rec.headers,
                                 on_delivery=lambda err, msg: err and errors.append(err.str()))
                break
            except BufferError:  # the local queue is full: let deliveries drain
                producer.poll(0.05)
        producer.poll(0)
    if left := producer.flush(60):
        errors.append(f"{left} undelivered after 60 s")
    return errors


def load_topics(settings: Settings, records: list[tuple[str, Record]], progress: Progress, label: str) -> dict:
    """Put pre-encoded records on the topics, placed like the Publisher places them (murmur2 of the key), in
    order (idempotent), lz4-compressed to keep noida-db's data file small."""
    ensure_topics(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all",
                         "partitioner": "murmur2_random", "compression.type": "lz4", "linger.ms": 20,
                         "batch.num.messages": 10_000, "log.connection.close": False})
    task = progress.add_task(label, total=len(records))
    t0 = time.perf_counter()
    if errors := produce_all(producer, ticking(records, progress, task, 5000)):
        raise RuntimeError(f"loading the topics: {len(errors)} errors {errors[:3]}")
    seconds = time.perf_counter() - t0
    return {"events": len(records), "seconds": seconds}


def tails_of(settings: Settings, records: list[tuple[str, Record]], events: list[Event]) -> dict:
    """Each partition's last record (customer, event id, time): once it is visible, all of the partition is (the
    worker reads a partition in offset order and stores batch after batch)."""
    last: dict[tuple[str, int], int] = {}
    for i, (topic, rec) in enumerate(records):
        last[(topic, partition_for(rec.key, settings.partitions))] = i
    return {tp: (events[i].subject, events[i].id, events[i].time.isoformat()) for tp, i in last.items()}


def topic_records(settings: Settings, topic: str) -> int:
    """Records written to a topic (sum of its partitions' end offsets)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "omnitrail-bench-peek",
                         "log.connection.close": False})
    try:
        return sum(max(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1], 0)
                   for p in range(settings.partitions))
    finally:
        consumer.close()


def dead_letters(settings: Settings) -> int:
    """Records on the dead-letter topic (the worker could not decode or project them)."""
    return topic_records(settings, settings.deadletter_topic)


def channel_partitions(settings: Settings) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in settings.channel_topics for p in range(settings.partitions)]


# --- the read API ------------------------------------------------------------------------------------------------
def api_get(base_url: str, path: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(base_url + path, timeout=timeout) as resp:
        return orjson.loads(resp.read())


def visible(base_url: str, customer: str, event_id: str, since: str) -> bool:
    """Is ``event_id`` in the customer's timeline (rows at or after ``since``) as the read API serves it?"""
    query = urllib.parse.urlencode({"since": since, "limit": 1000})
    rows = api_get(base_url, f"/v1/timeline/{urllib.parse.quote(customer, safe='')}?{query}")["rows"]
    return any(row["event_id"] == event_id for row in rows)


# --- workers -----------------------------------------------------------------------------------------------------
class WorkerFailed(RuntimeError):
    pass


def log_excerpt(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a worker log, with faust's one-fragment-per-line WARNING echo of stderr (a
    traceback printed by a thread) joined back into lines."""
    try:
        raw = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    out: list[str] = []
    for line in raw:
        head, sep, fragment = line.partition("[WARNING] ")
        if sep and head.startswith("[") and out and "[WARNING] " in out[-1] and out[-1].startswith(head[:21]):
            out[-1] += " " + fragment.strip()
        else:
            out.append(line)
    return "\n".join(line if len(line) <= 400 else line[:400] + f" ... ({len(line):,} chars)" for line in out[-lines:])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Worker:
    """``omnitrail worker`` (``python -m services worker``) as a subprocess with its own settings."""

    settings: Settings
    log: Path
    name: str = "worker"
    proc: subprocess.Popen | None = None
    started: float = 0.0
    _log_checked: int = 0

    def start(self) -> Worker:
        s = self.settings
        env = {**os.environ, "OMNITRAIL_STATE_DIR": str(s.state_dir), "OMNITRAIL_CLICKHOUSE_URL": s.store_url,
               "OMNITRAIL_KAFKA_BOOTSTRAP": s.kafka_bootstrap, "OMNITRAIL_API_PORT": str(s.api_port),
               "OMNITRAIL_API_HOST": s.api_host, "OMNITRAIL_TOPIC_PREFIX": s.topic_prefix,
               "OMNITRAIL_CONSUMER_GROUP": s.consumer_group, "OMNITRAIL_PARTITIONS": str(s.partitions),
               "OMNITRAIL_WORKER_INSTANCE_ID": s.group_instance_id}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "services", "worker"], cwd=ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True, preexec_fn=_die_with_parent)
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return self.settings.api_url

    def healthy(self) -> bool:
        try:
            api_get(self.url, "/health", 1)
            return True
        except OSError:
            return False

    def log_tail(self, lines: int = 25) -> str:
        return log_excerpt(self.log, lines)

    def check(self) -> None:
        """Raise ``WorkerFailed`` if the worker exited, or logged an error or an exception that killed a thread
        (a worker whose consume loop died but whose process lives on would otherwise look merely slow)."""
        if self.proc.poll() is not None:
            raise WorkerFailed(f"{self.name} exited with code {self.proc.returncode}; log {self.log}, last lines:\n"
                               f"{self.log_tail()}")
        try:
            size = self.log.stat().st_size
        except OSError:
            return
        if size != self._log_checked:
            with open(self.log, "rb") as f:
                f.seek(self._log_checked)
                text = f.read().decode(errors="replace")
            self._log_checked = size
            if "Exception in thread" in text or "[ERROR]" in text or " ERROR " in text or "[CRITICAL]" in text:
                raise WorkerFailed(f"{self.name} logged an error (process still running); log {self.log}, "
                                   f"last lines:\n{self.log_tail(40)}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def partitions_owned(self) -> list[str]:
        """The worker's 'assigned partitions' log lines (the last one is what it owned at the end)."""
        try:
            return [line.split("assigned partitions ", 1)[1].split(" of ")[0]
                    for line in self.log.read_text(errors="replace").splitlines() if "assigned partitions" in line]
        except OSError:
            return []


def wait_healthy(worker: Worker, timeout: float) -> float:
    """Seconds until the worker's API answers; raises ``WorkerFailed`` if it exits, ``TimeoutError`` after
    ``timeout``."""
    t0 = time.monotonic()
    while not worker.healthy():
        worker.check()
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"{worker.name}: API not up within {timeout:.0f} s; log {worker.log}")
        time.sleep(0.05)
    return time.monotonic() - t0


@contextlib.contextmanager
def running(*workers: Worker) -> Iterator[tuple[Worker, ...]]:
    """Start the workers together; stop them all afterwards (also on errors)."""
    try:
        for w in workers:
            w.start()
        yield workers
    finally:
        for w in workers:
            w.stop()


def wait_projected(settings: Settings, workers: list[Worker], tails: dict, n: int, progress: Progress, label: str,
                   timeout: float, stall: float = 90.0) -> dict:
    """Wait until the worker group has committed every channel partition to its end, then until each partition's
    tail event is visible through one of the workers' read APIs. Costs the workers nothing while they catch up
    (only the broker is asked for the group's commits); the tails are checked once the commits say done.

    Raises ``WorkerFailed`` if a worker exits, ``TimeoutError`` after ``timeout`` s or when the commits stand still
    for ``stall`` s."""
    health: dict[str, float] = {}
    while len(health) < len(workers):
        for w in workers:
            w.check()
            if w.name not in health and w.healthy():
                health[w.name] = time.time() - w.started
        if time.time() - min(w.started for w in workers) > 90 and len(health) < len(workers):
            late = [w for w in workers if w.name not in health]
            raise WorkerFailed(f"{', '.join(w.name for w in late)}: the read API did not come up within 90 s; "
                               + "".join(f"\n--- {w.log}:\n{w.log_tail()}" for w in workers))
        time.sleep(0.05)
    cpu_at_health = {w.name: cpu_seconds(w.pid) for w in workers}
    samples: dict[str, list[tuple[float, float]]] = {w.name: [(time.time(), cpu_at_health[w.name])] for w in workers}
    task = progress.add_task(label, total=n)
    tps = channel_partitions(settings)
    group = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.consumer_group,
                      "log.connection.close": False})  # never subscribes: only reads the group's commits
    t0 = min(w.started for w in workers)
    try:
        ends = {(tp.topic, tp.partition): group.get_watermark_offsets(tp, timeout=10)[1] for tp in tps}
        committed_s, seen, moved = None, -1, time.time()
        remaining = dict(tails)
        while remaining:
            for w in workers:
                w.check()
                samples[w.name].append((time.time(), cpu_seconds(w.pid)))
            now = time.time()
            if committed_s is not None and now - t0 - committed_s > 30:
                raise WorkerFailed(f"{label}: the group committed every record, but {len(remaining)} partition "
                                   f"tail(s) are not visible 30 s later; {dead_letters(settings):,} record(s) on the "
                                   f"dead-letter topic" + "".join(f"\n--- {w.log}:\n{w.log_tail()}" for w in workers))
            if now - t0 > timeout or now - moved > stall:
                why = f"within {timeout:.0f} s" if now - t0 > timeout else f"(no commit progress for {stall:.0f} s)"
                raise TimeoutError(f"{label}: not all projected {why}: committed {max(seen, 0):,}/{n:,}, "
                                   f"{len(remaining)} partition tail(s) not visible"
                                   + "".join(f"\n--- {w.log}:\n{w.log_tail()}" for w in workers))
            if committed_s is None:
                committed = group.committed(tps, timeout=10)
                total = sum(max(tp.offset, 0) for tp in committed)
                if total != seen:
                    seen, moved = total, now
                progress.update(task, completed=total)
                if all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in committed):
                    committed_s = now - t0
            if committed_s is not None:
                for tp, (customer, event_id, since) in list(remaining.items()):
                    if any(visible(w.url, customer, event_id, since) for w in workers):
                        del remaining[tp]
            if remaining:
                time.sleep(0.25 if committed_s is None else 0.5)
    finally:
        group.close()
    progress.update(task, completed=n)
    return {"health_s": health, "committed_all_s": committed_s, "all_visible_s": time.time() - t0,
            "partition_tails": len(tails), "_cpu_at_health": cpu_at_health, "_cpu_samples": samples}


def cpu_between(samples: list[tuple[float, float]], t0: float, t1: float) -> float:
    """CPU seconds a process used between wall times ``t0`` and ``t1``, interpolated from (time, cpu) samples."""
    def at(t: float) -> float:
        if t <= samples[0][0]:
            return samples[0][1]
        for (ta, ca), (tb, cb) in zip(samples, samples[1:]):
            if ta <= t <= tb:
                return ca + (cb - ca) * (t - ta) / (tb - ta) if tb > ta else cb
        return samples[-1][1]
    return at(t1) - at(t0)


# A bare consumer configured like the worker's (same topics, group subscription, range assignment, fetch sizes and
# consume call), starting at the end of each partition: what merely waiting for records costs on this broker.
_IDLE_CONSUMER = """
import sys
from consumers import kafka
from consumers.worker.loop import fetch_settings
bootstrap, group, batch, wait, *topics = sys.argv[1:]
c = kafka.consumer(bootstrap, group, **{
    "partition.assignment.strategy": "range", "auto.offset.reset": "latest", **fetch_settings(int(batch))})
assigned = []
c.subscribe(topics, on_assign=lambda consumer, parts: assigned.append(len(parts)))
while not assigned:
    c.consume(int(batch), float(wait))
print("ready", flush=True)
while True:
    c.consume(int(batch), float(wait))
"""


def bare_consumer_idle(settings: Settings, seconds: float, settle: float = 2.0) -> dict:
    """CPU use of an idle bare confluent-kafka consumer on the worker's topics (the idle baseline)."""
    proc = subprocess.Popen([sys.executable, "-c", _IDLE_CONSUMER, settings.kafka_bootstrap, "omnitrail-bench-idle",
                             str(settings.batch_size), str(settings.batch_seconds), *settings.topics.worker_sources],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            start_new_session=True, preexec_fn=_die_with_parent)
    try:
        if proc.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"the idle bare consumer did not start (exit code {proc.poll()})")
        time.sleep(settle)
        return cpu_share(proc.pid, seconds)
    finally:
        proc.kill()
        proc.wait()


# --- reading stores ----------------------------------------------------------------------------------------------
def insert_span(client, table: str, where: str) -> dict:
    """Rows (FINAL), first/last insert time (``projected_at``, the store's clock) of the rows matching ``where``,
    and the rows of the first insert."""
    rows, first, last = client.query(
        f"SELECT count(), toUnixTimestamp64Milli(min(projected_at)), toUnixTimestamp64Milli(max(projected_at)) "
        f"FROM {table} FINAL WHERE {where}").result_rows[0]
    first_rows = client.query(f"SELECT count() FROM {table} WHERE {where} "
                              f"AND toUnixTimestamp64Milli(projected_at) = {first}").result_rows[0][0]
    return {"rows": rows, "first_insert_ms": first, "last_insert_ms": last, "first_insert_rows": first_rows}


def steady(spans: list[dict]) -> dict:
    """Steady rate over one or more stores: (rows - rows of the very first insert) / (last insert - first insert),
    i.e. the rate once consuming runs, without process start and group join."""
    rows = sum(s["rows"] for s in spans)
    first = min(s["first_insert_ms"] for s in spans)
    last = max(s["last_insert_ms"] for s in spans)
    first_rows = sum(s["first_insert_rows"] for s in spans if s["first_insert_ms"] == first)
    span = (last - first) / 1000
    return {"rows": rows, "first_insert_ms": first, "last_insert_ms": last, "first_insert_rows": first_rows,
            "span_s": span, "events_per_s": (rows - first_rows) / span if span > 0 else math.nan}


def read_store(store_url: str, ids: bool = False) -> dict:
    """Open a worker's store (the worker stopped): the loaded events' insert span, duplicates, optionally ids."""
    client = connect(store_url)
    try:
        span = insert_span(client, "timeline", BULK)
        raw_rows, distinct = client.query(
            f"SELECT count(), uniqExact(source, event_id) FROM timeline WHERE {BULK}").result_rows[0]
        derived = client.query("SELECT count() FROM timeline FINAL "
                               "WHERE startsWith(source, '/omnitrail/projections/')").result_rows[0][0]
        out = {**span, "distinct_events": distinct, "rows_before_final": raw_rows, "derived_rows": derived}
        if ids:
            out["_ids"] = {r[0] for r in client.query(f"SELECT event_id FROM timeline WHERE {BULK}").result_rows}
        latency = dict(client.query(f"SELECT event_id, toUnixTimestamp64Milli(projected_at) FROM timeline FINAL "
                                    f"WHERE source = '{LATENCY_SOURCE}'").result_rows)
        if latency:
            out["_latency_stored_ms"] = latency
    finally:
        client.close()
    return out


def state_sizes(settings: Settings, top: int = 5, parse: Iterable[str] = ()) -> dict:
    """Sizes of the customer states in a stopped worker's local state store (rocksdict, raw mode, keys
    ``b"s" + 4-byte partition + customer id``, values orjson)."""
    from rocksdict import Options, Rdict

    path = settings.state_dir / "states" / settings.consumer_group
    sizes: dict[str, int] = {}
    keys: dict[str, bytes] = {}
    wanted = set(parse)
    parsed: dict[str, dict] = {}
    db = Rdict(str(path), Options(raw_mode=True))
    try:
        for key, value in db.items():
            if key[:1] == b"s":
                customer = key[5:].decode()
                sizes[customer], keys[customer] = len(value), key
                if customer in wanted:
                    parsed[customer] = orjson.loads(value)
        biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
        for customer, _ in biggest:
            if customer not in parsed:
                parsed[customer] = orjson.loads(db[keys[customer]])
    finally:
        db.close()
    values = sorted(sizes.values())
    disk = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return {"states": len(sizes), "bytes_total": sum(values), "disk_mib": round(disk / 2**20, 1),
            "bytes_p50": pct(values, 50) if values else 0, "bytes_p99": pct(values, 99) if values else 0,
            "bytes_max": values[-1] if values else 0,
            "largest": [{"customer": c, "bytes": b, "parts": breakdown(parsed[c])} for c, b in biggest],
            "_sizes": sizes, "_parsed": parsed}


def breakdown(state: dict) -> dict:
    """Bytes of each part of a state: offset watermarks, remembered ids, each projection's fold state."""
    parts = {"w (watermarks)": state.get("w"), "ids": state.get("ids")}
    parts |= {f"p.{name}": value for name, value in (state.get("p") or {}).items()}
    parts |= {k: v for k, v in state.items() if k not in ("w", "ids", "p")}
    return {k: len(orjson.dumps(v)) for k, v in parts.items()}


# --- the raw baseline: consume + Arrow insert, nothing else ------------------------------------------------------
def raw_projection(settings: Settings, n: int, store_url: str, progress: Progress, label: str,
                   repeats: int = 3) -> dict:
    """The raw baseline, ``repeats`` times (each into a fresh table of one chdb dir): the run with the median steady
    rate, and every run's rate. Its runs take seconds where the worker's take a minute, so one run is noisy."""
    client = connect(store_url)
    try:
        runs = [_raw_once(client, f"raw_timeline_{i}", settings, n, progress, f"{label} ({i + 1}/{repeats})")
                for i in range(repeats)]
    finally:
        client.close()
    ranked = sorted(runs, key=lambda r: r["events_per_s"] if not math.isnan(r["events_per_s"]) else -1)
    return {**ranked[len(ranked) // 2], "runs_events_per_s": [r["events_per_s"] for r in runs],
            "runs_cpu_us_per_event": [r["cpu_us_per_event"] for r in runs], "repeats": repeats}


def _raw_once(client, table: str, settings: Settings, n: int, progress: Progress, label: str) -> dict:
    """Bare consume of the channel topics + Arrow insert of minimal rows, in the bench process.

    A confluent-kafka ``Consumer`` (partitions assigned, no group join) fetches like the worker's and reads in
    batches of ``batch_size`` (as the worker does) and inserts minimal rows (key, id header, broker timestamp,
    origin, raw value; no decode, validation or summary) with the same ``insert_arrow`` call into a scratch
    ``ReplacingMergeTree`` with the same ``projected_at`` stamp, so its steady rate is computed like the worker's."""
    client.command(f"""CREATE TABLE {table} (
        customer_id String, time DateTime64(3, 'UTC'), event_id String, topic LowCardinality(String),
        partition UInt32, offset UInt64, data String, projected_at DateTime64(3, 'UTC') DEFAULT now64(3))
        ENGINE = ReplacingMergeTree ORDER BY (customer_id, time, event_id)""")
    schema = pa.schema([("customer_id", pa.string()), ("time", pa.timestamp("ms", tz="UTC")),
                        ("event_id", pa.string()), ("topic", pa.string()), ("partition", pa.uint32()),
                        ("offset", pa.uint64()), ("data", pa.string())])
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "omnitrail-bench-raw",
                         "enable.auto.commit": False, "log.connection.close": False,
                         **fetch_settings(settings.batch_size)})
    task = progress.add_task(label, total=n)
    got, t0, cpu0 = 0, time.time(), cpu_seconds(os.getpid())
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
                         for tp in channel_partitions(settings)])
        deadline = time.monotonic() + 120
        while got < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer read only {got}/{n} events")
            msgs = [m for m in consumer.consume(settings.batch_size, timeout=settings.batch_seconds)
                    if not m.error()]
            if not msgs:
                continue
            cols = {name: [] for name in schema.names}
            for m in msgs:
                hdrs = dict(m.headers() or ())
                cols["customer_id"].append(m.key().decode())
                cols["time"].append(m.timestamp()[1])
                cols["event_id"].append(hdrs.get("ce_id", b"").decode())
                cols["topic"].append(m.topic())
                cols["partition"].append(m.partition())
                cols["offset"].append(m.offset())
                cols["data"].append(m.value().decode())
            client.insert_arrow(table, pa.table(cols, schema=schema))
            got += len(msgs)
            progress.advance(task, len(msgs))
        elapsed, cpu = time.time() - t0, cpu_seconds(os.getpid()) - cpu0
        span = steady([insert_span(client, table, "1")])
    finally:
        consumer.close()
    return {**span, "consumed": got, "end_to_end_s": elapsed, "cpu_us_per_event": cpu / got * 1e6}


# --- a recorded bench run (bench/ingest.py, bench/reads.py) -----------------------------------------------------------
RESULTS = ROOT / "bench" / "results"


def write_result(name: str, result: dict) -> Path:
    """``bench/results/<name>-<time>.json`` and ``<name>-latest.json``."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    for path in (RESULTS / f"{name}-{stamp}.json", RESULTS / f"{name}-latest.json"):
        path.write_bytes(data)
    return RESULTS / f"{name}-{stamp}.json"


def merge_latest(name: str, result: dict, rows: list[dict], prefix: str) -> dict:
    """Put ``result`` and its target rows (figures starting with ``prefix``) into ``latest.json``, other parts as
    they are."""
    path = RESULTS / "latest.json"
    combined = orjson.loads(path.read_bytes()) if path.exists() else {"targets": [], "notes": []}
    combined["targets"] = [r for r in combined.get("targets", []) if not r["figure"].startswith(prefix)]
    combined["targets"] += rows
    combined[f"{name}_at"], combined[name] = result["at"], result
    path.write_bytes(orjson.dumps(combined, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    return combined


def recorded_run(name: str, bench: Callable, size: dict, keep: bool, merge: Callable[[dict], dict],
                 reports: Callable[[dict], list], console) -> int:
    """Run ``bench(tmp, progress)`` in a temp dir under progress bars, record its result (or its failure, so that
    latest.json shows the failure rather than an old figure) and print its reports and the targets table."""
    from bench import summary as targets

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up like Ctrl-C
    at = datetime.now(UTC).isoformat(timespec="seconds")
    load, t0 = os.getloadavg(), time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"omnitrail-bench-{name}-"))
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    try:
        with Progress(*columns, console=console) as progress:
            result = bench(tmp, progress)
    except Exception as exc:  # noqa: BLE001 (recorded, see above)
        console.print(f"[red]{name} bench failed: {escape(f'{type(exc).__name__}: {exc}')}[/red]")
        failed = {"at": at, **size, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(8)}
        write_result(name, failed)
        console.print(targets.table(merge(failed)["targets"]))
        return 1
    finally:
        if keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result = {"at": at, "cpus": os.cpu_count(), "machine": platform.machine(), "loadavg_at_start": load,
              "loadavg_at_end": os.getloadavg(), "seconds": round(time.perf_counter() - t0, 1), **result}
    for table in reports(result):
        console.print(table)
    path = write_result(name, result)
    console.print(f"results: {path.relative_to(ROOT)} (and {name}-latest.json, latest.json)")
    console.print(targets.table(merge(result)["targets"], f"{name} {at}; load at start "
                                f"{', '.join(f'{x:.1f}' for x in load)}; ratio = value / baseline. "
                                "All figures: bench/results/latest.json"))
    return 0


def start_service(command: list[str], env: dict[str, str], log: Path, url: str, timeout: float) -> subprocess.Popen:
    """Start an HTTP service process (``command``, logging to ``log``) and return once ``url`` answers ``/health``;
    ``RuntimeError`` with the log's end if it exits or does not answer within ``timeout``."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            api_get(url, "/health", 1)
            return proc
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{' '.join(command[1:])} did not come up (exit code {proc.poll()}); log {log}:\n"
                               f"{log_excerpt(log)}")
        time.sleep(0.05)
