"""omnitrail benchmark: the projection worker's throughput, scaling, latency, memory and idle cost, each beside a
raw baseline or its target.

    python -m bench.run [--events 200000] [--customers 20000] [--only one,two] [--keep] ...   (--help for all)

Each scenario runs on its own fresh noida-db broker (free port, temp dir) and fresh worker state, so none pays for
another's data; every broker and worker started here is stopped on exit, errors and Ctrl-C included. A scenario
that fails (a worker crash, a timeout) is recorded with the error and the worker's last log lines, and the others
still run. Targets are reported, never enforced: the exit code is 1 only for errors or incomplete projections.

**publish**: N realistic events (21 types over all 11 channels, fixed seed) are built with ``Event.of`` (pydantic
validation) and published with ``Publisher.publish_many`` (CloudEvents encode + idempotent ``acks=all`` produce +
every delivery report). The raw baseline produces the same records, encoded beforehand, with a bare confluent-kafka
``Producer`` with the Publisher's settings (idempotence, acks, linger, murmur2 partitioner). Each path gets an empty
broker of its own and sends its first 10% (at most 1000) untimed: a new idempotent producer first fetches a
producer id and metadata. Ratio = Publisher / raw. Reported for publish only and for build (validation) + publish.

**one worker** (targets: >= 20,000 events/s steady, ratio >= 0.4 vs raw; produce->visible p99 <= 300 ms; idle
CPU ~0%, measured on Tansu, see below). The same N events are put on a fresh broker's channel topics (placed by murmur2 of the key like the
Publisher, in order, lz4-compressed: noida-db rewrites its whole data file, ~3.5 bytes of JSON per stored byte,
on a save after writes, and uncompressed data makes every save cost the phase that writes, i.e. the worker, up to
half a core). Then:

* *raw baseline*: a bare ``Consumer`` (partitions assigned, no group; the worker's fetch settings) reads the
  channel topics in batches of ``batch_size`` and inserts minimal rows (key, id header, broker timestamp, origin,
  raw value: no decode, validation, folds or summary) with the same ``insert_arrow`` into a scratch
  ``ReplacingMergeTree`` of a second chdb dir, in the bench process. It takes seconds where the worker takes a
  minute, so it runs ``--raw-repeats`` times (3) and the run with the median steady rate counts (all rates are in
  the JSON);
* *worker*: ``omnitrail worker`` as a subprocess (its own state dir, chdb store and API port). Its consume loop
  reads all channel topics plus ``<prefix>.derived`` and ``<prefix>.repartition`` in batches, runs the engine
  (decode, validation, every projection's rows and folds), inserts Arrow into chdb, publishes derived events, and
  checkpoints states (changelog topic + local rocksdict) and offsets every ``checkpoint_seconds``.
* *steady rate*, for both: the timeline's ``projected_at DEFAULT now64(3)`` stamps every insert with the store's
  clock; after the run, (rows - rows of the first insert) / (last insert - first insert): the rate once consuming
  runs, without process start, migrations and group join (those are in *end-to-end*). Ratio = worker / raw: the
  share of the achievable consume + store rate that the worker keeps.
* *completion* is seen without loading the worker: the bench asks the broker for the group's committed offsets
  (the worker commits only what it stored) until they reach the end of every channel partition, then checks
  through the read API that each partition's last event is visible (the worker processes each partition in
  offset order and stores batch after batch, so then all of it is). The final ``FINAL`` count (with a duplicate
  check) proves all N events are on the timeline once.
* *produce->visible*: with the worker caught up, events are published one at a time (``Publisher.publish``,
  i.e. after the broker's ack) to existing customers, ``--latency-gap-ms`` apart; after each the bench polls that
  customer's ``GET /timeline/<customer>?since=...`` (2 ms between polls) until the event is in the answer.
  p50/p99/max of publish-start -> visible through the read API (what a caller sees), of publish-start -> stored
  (its ``projected_at``), and of the publish ack alone. The worker's ``batch_seconds`` sets the floor.
* *idle CPU*: ``checkpoint_seconds`` + 1 s after the last probe, the worker's utime + stime (``/proc/<pid>/stat``,
  all threads) over ``--idle-seconds`` with no traffic, in % of one core, with the busiest threads. Baseline, after
  the worker stopped: an idle bare confluent-kafka consumer subscribed to the same topics like the worker (group,
  range assignment, fetch settings, ``consume(batch_size, batch_seconds)``), starting at the partitions' ends. On
  noida-db it is far from 0: the broker answers an empty Fetch at once instead of holding it for
  ``fetch.wait.max.ms``, so any idle consumer spins (thousands of fetches/s in librdkafka's broker thread).
* *idle CPU on a broker that holds empty fetches* (scenario ``idle``, the target): the same measurement with a
  worker on Tansu, which, like Apache Kafka, holds an empty Fetch for ``fetch.wait.max.ms``; the worker first
  projects ``--idle-probe-events`` events. Baseline: the idle bare consumer there.
* *memory*: VmRSS / VmHWM (peak) of the worker once caught up and idle (``/proc/<pid>/status``).
* *CPU per event*: the worker's CPU seconds from API up (partitions assigned) to caught up, / N.

**two workers** (report only): the same N events on another fresh broker; two ``omnitrail worker`` processes
started together in one consumer group, each with its own state dir, ``chdb://`` store, API port and
``OMNITRAIL_WORKER_INSTANCE_ID``. Range assignment gives each the same partition numbers of every topic. The
combined steady rate takes the rows of both stores over the span from the first insert in either store to the
last: the group join and the rebalance when the second member arrives count against it. Scaling = combined /
one worker. ``--stagger S`` starts the second worker S seconds after the first is up instead (scale-out of a busy
group: a rebalance mid-stream). On this 2-core machine two workers, the broker and chdb's threads share two cores,
so scaling is bounded by CPU, not by the design.

**memory** (report only): traffic touching ``--memory-customers`` distinct customers (each customer once, in
random order, then random ones up to ``--memory-events``); the worker's VmRSS / VmHWM once caught up, and the
number and size of the states in its local store.

**long histories** (report only): ``--heavy-customers`` customers with ``--heavy-events`` events each, as many
with a third and as many with a tenth of that, mixed uniformly into ``--background-events`` events over
``--customers`` customers. Steady rate vs the raw baseline, and the customer states' sizes read from the stopped
worker's local store (rocksdict, ``<state_dir>/states/<group>``): a bounded state is about as big after 3000
events as after 1000; one that keeps its history is 3x as big.

Figures depend on what else runs on the machine (the JSON records the load average at start, and the broker's and
bench's CPU share during each timed phase); compare ratios from one run rather than absolute rates across runs.
Results: Rich tables on stdout, JSON in ``bench/results/run-<UTC time>.json`` and ``run-latest.json``; then
``bench.summary`` merges them with the replay results into ``bench/results/latest.json``. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import math
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
from confluent_kafka import Producer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import harness as h
from bench import summary as targets
from bench.workload import build_events, cover_all, customer_id, long_histories
from schemas import events as ev
from schemas.channels import Channel
from schemas.codec import Record
from schemas.envelope import Event
from services.publisher import Publisher
from services.settings import Settings
from services.stack import free_port
from services.topics import ensure_topics

__all__ = ["build_events", "customer_id", "main"]  # build_events: re-exported for older callers

RESULTS = Path(__file__).resolve().parent / "results"
SCENARIOS = ("publish", "one", "two", "memory", "long", "idle")
console = Console(width=None if sys.stdout.isatty() else 170)


def _settings(state_dir: Path, bootstrap: str, **extra) -> Settings:
    return Settings(state_dir=state_dir, kafka_bootstrap=bootstrap, api_port=free_port(), **extra)


def _timeout(n: int) -> float:
    return 120 + n / 500  # generous: the stall check (no commit progress for 90 s) catches a stuck worker sooner


def _cpu_per_event(proj: dict, span: dict, *names: str) -> dict:
    """The workers' CPU seconds per event over the steady window (first to last insert), interpolated from the
    samples ``wait_projected`` took: all threads, the idle spin after catching up excluded."""
    samples, health = proj.pop("_cpu_samples"), proj.pop("_cpu_at_health")
    rows = span["rows"] - span["first_insert_rows"]
    t0, t1 = span["first_insert_ms"] / 1000, span["last_insert_ms"] / 1000
    cpu = sum(h.cpu_between(samples[name], t0, t1) for name in names)
    cpu_all = sum(h.cpu_between(samples[name], 0, t1) - health[name] for name in names)
    return {"worker_cpu_us_per_event": cpu / rows * 1e6 if rows and t1 > t0 else math.nan,
            "worker_cpu_s_api_up_to_last_insert": cpu_all, "worker_cpu_s_steady": cpu}


def _stop_checked(worker: h.Worker, out: dict) -> None:
    code = worker.stop()
    out.setdefault("exit_codes", {})[worker.name] = code
    if code not in (0, -signal.SIGTERM):
        out.setdefault("warnings", []).append(f"{worker.name} exited with {code}; last log lines:\n"
                                              f"{worker.log_tail()}")
        console.print(f"[yellow]{worker.name} exited with {code}; see {worker.log}[/yellow]")


# --- publish -----------------------------------------------------------------------------------------------------
def produce_raw(bootstrap: str, records: list[tuple[str, Record]], warm: int, progress: Progress) -> float:
    """Produce pre-encoded records with a bare Producer with the Publisher's settings, wait for all acks; return
    the seconds the records after the first ``warm`` took."""
    errors: list = []
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5, "partitioner": "murmur2_random", "log.connection.close": False,
                         "delivery.timeout.ms": 30_000})

    def produce_all(items) -> None:
        for topic, rec in items:
            while True:
                try:
                    producer.produce(topic, rec.value, rec.key, headers=rec.headers,
                                     on_delivery=lambda err, msg: err and errors.append(err))
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        if left := producer.flush(30):
            errors.append(f"{left} undelivered after 30 s")

    produce_all(records[:warm])
    task = progress.add_task("publish: raw Producer", total=len(records) - warm)
    t0 = time.perf_counter()
    produce_all(h.ticking(records[warm:], progress, task))
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"raw produce: {len(errors)} errors (first: {errors[0]})")
    return elapsed


def publish_scenario(args, tmp: Path, progress: Progress) -> tuple[dict, list[Event]]:
    n = args.events
    task = progress.add_task("build + validate events", total=n)
    t0 = time.perf_counter()
    events = list(h.ticking(build_events(n, args.customers), progress, task))
    build_s = time.perf_counter() - t0
    warm = min(1000, n // 10)
    timed = n - warm
    with h.fresh_broker(tmp / "broker-raw") as broker:
        settings = _settings(tmp / "unused", broker.bootstrap)
        ensure_topics(settings)
        records = h.encoded(settings, events)
        raw_s = produce_raw(broker.bootstrap, records, warm, progress)
    with h.fresh_broker(tmp / "broker-publisher") as broker:
        settings = _settings(tmp / "unused", broker.bootstrap)
        ensure_topics(settings)
        with Publisher(settings) as publisher:
            publisher.publish_many(events[:warm])
            task = progress.add_task("publish: Publisher.publish_many", total=timed)
            t0 = time.perf_counter()
            publisher.publish_many(h.ticking(events[warm:], progress, task))
            publish_s = time.perf_counter() - t0
    sdk_s = build_s * timed / n + publish_s
    return {
        "events": n, "customers": args.customers, "warm_up_events": warm, "timed_events": timed,
        "build_validate_s": build_s, "build_validate_events_per_s": n / build_s, "publish_many_s": publish_s,
        "raw_produce_s": raw_s, "publish_many_events_per_s": timed / publish_s,
        "sdk_events_per_s": timed / sdk_s, "raw_events_per_s": timed / raw_s,
        "ratio_publish_many": raw_s / publish_s, "ratio_sdk": raw_s / sdk_s,
        "bytes_per_event": sum(len(r.value) + len(r.key) + sum(len(k) + len(v) for k, v in r.headers)
                               for _, r in records) / n,
    }, events


# --- one worker --------------------------------------------------------------------------------------------------
def latency_phase(settings: Settings, url: str, customers: int, samples: int, gap: float, progress: Progress) -> dict:
    task = progress.add_task("latency: publish -> visible", total=samples)
    ack, seen, sent_at = [], [], {}
    with Publisher(settings) as publisher:
        publisher.publish(Event.of(ev.MessageReceived(conversation_id="latency-warm-up"), customer=customer_id(0),
                                   channel=Channel.WEBCHAT, source=h.LATENCY_SOURCE))  # new producer: see above
        for k in range(samples):
            customer = customer_id(k * 7919 % customers)
            now = datetime.now(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the timeline stores milliseconds
            event = Event.of(ev.MessageReceived(conversation_id=f"latency-{k}", text="latency probe"),
                             customer=customer, channel=Channel.WEBCHAT, source=h.LATENCY_SOURCE,
                             id=f"latency-{k}", time=now)
            sent_at[event.id] = time.time()
            t0 = time.perf_counter()
            publisher.publish(event)
            ack.append(time.perf_counter() - t0)
            while not h.visible(url, customer, event.id, now.isoformat()):
                if time.perf_counter() - t0 > 30:
                    raise TimeoutError(f"{event.id} not visible after 30 s")
                time.sleep(0.002)
            seen.append(time.perf_counter() - t0)
            progress.advance(task)
            time.sleep(gap)
    return {"samples": samples, "gap_ms": gap * 1000, "visible": h.summary(seen), "ack": h.summary(ack),
            "_sent_at": sent_at}


def _load_and_baseline(broker, settings: Settings, records, n: int, tmp: Path, args, progress) -> dict:
    """Load the topics, then measure the raw consume + insert baseline on them; the broker is quiet after."""
    out = {"load": h.load_topics(settings, records, progress, "load topics (lz4)"),
           "broker_settle_s": h.wait_quiet(broker)}
    meter = h.CpuMeter({"broker": broker.pid(), "bench": os.getpid()})
    out["raw"] = h.raw_projection(settings, n, f"chdb://{tmp / 'raw-clickhouse'}", progress,
                                  "raw consume + Arrow insert", args.raw_repeats)
    out["raw"] |= meter.stop()
    h.wait_quiet(broker)
    return out


def idle_scenario(args, tmp: Path, progress: Progress) -> dict:
    """The idle worker on a broker that holds an empty Fetch for ``fetch.wait.max.ms``, as Apache Kafka does:
    Tansu. On noida-db (which answers at once) librdkafka's broker thread spins in any idle consumer, the bare one
    too, which hides the worker's own idle cost; here it shows. The worker first projects a few events, so its
    idle state is the one after real work (stores open, states checkpointed)."""
    from tests.support.brokers import running_broker  # Tansu ships with the test extra, as make bench installs it

    task = progress.add_task("idle worker on Tansu", total=3)
    with running_broker("tansu", tmp / "tansu") as bootstrap:
        settings = _settings(tmp / "state", bootstrap)
        ensure_topics(settings)
        worker = h.Worker(settings, tmp / "worker.log")
        with h.running(worker):
            h.wait_healthy(worker, 90)
            progress.advance(task)
            probes = list(build_events(args.idle_probe_events, 10, id_prefix="idle"))
            with Publisher(settings) as publisher:
                for event in probes:
                    publisher.publish(event)
            last = probes[-1]
            deadline = time.monotonic() + 60
            while not h.visible(worker.url, last.subject, last.id, last.time.isoformat()):
                worker.check()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the probe events were not visible within 60 s; log {worker.log}")
                time.sleep(0.1)
            progress.advance(task)
            time.sleep(settings.checkpoint_seconds + 1)  # the checkpoint after the probes
            out = {"broker": "tansu", "probe_events": len(probes), "idle": h.cpu_share(worker.pid, args.idle_seconds)}
            worker.check()
        out["idle_bare_consumer"] = h.bare_consumer_idle(settings, args.idle_seconds)
        progress.advance(task)
    return out


def one_worker_scenario(args, tmp: Path, events: list[Event], records: list[tuple[str, Record]],
                        progress: Progress) -> dict:
    n = len(events)
    out: dict = {"events": n, "customers": args.customers}
    with h.fresh_broker(tmp / "broker") as broker:
        settings = _settings(tmp / "state", broker.bootstrap)
        tails = h.tails_of(settings, records, events)
        out |= _load_and_baseline(broker, settings, records, n, tmp, args, progress)
        out["broker_data_mib_loaded"] = h.broker_data_mib(broker)
        worker = h.Worker(settings, tmp / "worker.log")
        with h.running(worker):
            meter = h.CpuMeter({"broker": broker.pid(), "worker": worker.pid})
            proj = h.wait_projected(settings, [worker], tails, n, progress, "omnitrail worker (1)", _timeout(n))
            proj |= meter.stop()
            proj["memory_caught_up_before_latency"] = h.memory(worker.pid)
            out["latency"] = latency_phase(settings, worker.url, args.customers, args.latency_samples,
                                           args.latency_gap_ms / 1000, progress)
            time.sleep(settings.checkpoint_seconds + 1)  # the last checkpoint after the probes
            meter = h.CpuMeter({"broker": broker.pid(), "bench": os.getpid()})
            out["idle"] = h.cpu_share(worker.pid, args.idle_seconds) | meter.stop()
            out["memory_caught_up"] = h.memory(worker.pid)
            out["broker_data_mib_end"] = h.broker_data_mib(broker)
            _stop_checked(worker, out)
        meter = h.CpuMeter({"broker": broker.pid()})
        out["idle_bare_consumer"] = h.bare_consumer_idle(settings, args.idle_seconds) | meter.stop()
        out["dead_letters"] = h.dead_letters(settings)
        out["changelog_records"] = h.topic_records(settings, settings.topics.changelog)
        store = h.read_store(settings.store_url)
    stored = store.pop("_latency_stored_ms", {})
    sent_at = out["latency"].pop("_sent_at")
    out["latency"]["stored"] = h.summary([stored[i] / 1000 - t for i, t in sent_at.items() if i in stored]) \
        if stored else None
    out["latency"]["stored_rows"] = len(stored)
    span = h.steady([store])
    proj |= span | {k: store[k] for k in ("distinct_events", "rows_before_final", "derived_rows")}
    proj |= _cpu_per_event(proj, span, worker.name)
    proj["end_to_end_s"] = span["last_insert_ms"] / 1000 - worker.started
    proj["complete"] = store["distinct_events"] == n == span["rows"]
    proj["ratio_vs_raw"] = proj["events_per_s"] / out["raw"]["events_per_s"]
    out["projection"] = proj
    states = h.state_sizes(settings)
    states.pop("_sizes"), states.pop("_parsed")
    out["states"] = states
    return out


# --- two workers -------------------------------------------------------------------------------------------------
def two_workers_scenario(args, tmp: Path, events: list[Event], records: list[tuple[str, Record]],
                         one_rate: float | None, progress: Progress) -> dict:
    n = len(events)
    out: dict = {"events": n, "workers": 2, "one_worker_events_per_s": one_rate, "stagger_s": args.stagger}
    with h.fresh_broker(tmp / "broker") as broker:
        base = _settings(tmp / "unused", broker.bootstrap)
        tails = h.tails_of(base, records, events)
        out["load"] = h.load_topics(base, records, progress, "load topics (lz4)")
        out["broker_settle_s"] = h.wait_quiet(broker)
        workers = []
        for i in range(2):
            s = _settings(tmp / f"worker-{i}", broker.bootstrap,
                          clickhouse_url=f"chdb://{tmp / f'worker-{i}' / 'clickhouse'}",
                          worker_instance_id=f"omnitrail-bench-worker-{i}")
            workers.append(h.Worker(s, tmp / f"worker-{i}.log", f"worker-{i}"))
        with contextlib.ExitStack() as running:
            running.enter_context(h.running(workers[0]))
            if args.stagger:  # the second worker joins a group that is busy: a rebalance mid-stream
                h.wait_healthy(workers[0], 90)
                time.sleep(args.stagger)
            running.enter_context(h.running(workers[1]))
            meter = h.CpuMeter({"broker": broker.pid(), **{w.name: w.pid for w in workers}})
            proj = h.wait_projected(base, workers, tails, n, progress, "omnitrail workers (2)", _timeout(n))
            proj |= meter.stop()
            out["memory_caught_up"] = {w.name: h.memory(w.pid) for w in workers}
            for w in workers:
                _stop_checked(w, out)
        out["dead_letters"] = h.dead_letters(base)
        stores = [h.read_store(w.settings.store_url, ids=True) for w in workers]
    ids = [s.pop("_ids") for s in stores]
    union = set().union(*ids)
    span = h.steady(stores)
    proj |= _cpu_per_event(proj, span, *(w.name for w in workers))
    out |= proj | span
    out["per_worker"] = {w.name: {"rows": s["rows"], "assignments": w.partitions_owned(),
                                  "first_insert_ms": s["first_insert_ms"], "last_insert_ms": s["last_insert_ms"]}
                         for w, s in zip(workers, stores)}
    out["in_both_stores"] = len(ids[0] & ids[1])
    out["distinct_events"] = len(union)
    out["complete"] = len(union) == n
    out["scaling"] = span["events_per_s"] / one_rate if one_rate else None
    return out


# --- memory with many customers ----------------------------------------------------------------------------------
def memory_scenario(args, tmp: Path, progress: Progress) -> dict:
    customers = args.memory_customers
    n = max(args.memory_events or int(customers * 1.2), customers)
    task = progress.add_task(f"build events ({customers:,} customers)", total=n)
    events = list(h.ticking(build_events(n, customers, seed=21, who=cover_all(n, customers)), progress, task))
    out: dict = {"events": n, "customers": customers}
    with h.fresh_broker(tmp / "broker") as broker:
        settings = _settings(tmp / "state", broker.bootstrap)
        records = h.encoded(settings, events)
        tails = h.tails_of(settings, records, events)
        del events
        out["load"] = h.load_topics(settings, records, progress, "load topics (lz4)")
        out["broker_settle_s"] = h.wait_quiet(broker)
        worker = h.Worker(settings, tmp / "worker.log")
        with h.running(worker):
            proj = h.wait_projected(settings, [worker], tails, n, progress, "omnitrail worker (memory)", _timeout(n))
            time.sleep(settings.checkpoint_seconds + 1)  # the last checkpoint: the dirty states are written out
            out["memory_caught_up"] = h.memory(worker.pid)
            _stop_checked(worker, out)
        out["dead_letters"] = h.dead_letters(settings)
        store = h.read_store(settings.store_url)
    span = h.steady([store])
    proj |= _cpu_per_event(proj, span, worker.name)
    out["projection"] = proj | span | {"complete": store["distinct_events"] == n == span["rows"]}
    states = h.state_sizes(settings)
    states.pop("_sizes"), states.pop("_parsed")
    out["states"] = states["states"]
    out["state_store"] = states
    return out


# --- long histories ----------------------------------------------------------------------------------------------
def long_scenario(args, tmp: Path, progress: Progress) -> dict:
    mid_each, short_each = max(1, args.heavy_events // 3), max(1, args.heavy_events // 10)
    groups = [(args.heavy_customers, args.heavy_events), (args.heavy_customers, mid_each),
              (args.heavy_customers, short_each)]
    who, (long_ids, mid_ids, short_ids) = long_histories(args.background_events, args.customers, groups)
    n = len(who)
    label = (f"{args.heavy_customers} customers each x {args.heavy_events:,} / {mid_each:,} / {short_each:,} events "
             f"+ {args.background_events:,} over {args.customers:,}")
    task = progress.add_task("build events (long histories)", total=n)
    events = list(h.ticking(build_events(n, args.customers, seed=31, who=who), progress, task))
    out: dict = {"events": n, "label": label}
    with h.fresh_broker(tmp / "broker") as broker:
        settings = _settings(tmp / "state", broker.bootstrap)
        records = h.encoded(settings, events)
        tails = h.tails_of(settings, records, events)
        del events
        out |= _load_and_baseline(broker, settings, records, n, tmp, args, progress)
        worker = h.Worker(settings, tmp / "worker.log")
        with h.running(worker):
            meter = h.CpuMeter({"broker": broker.pid(), "worker": worker.pid})
            proj = h.wait_projected(settings, [worker], tails, n, progress, "omnitrail worker (long)", _timeout(n))
            proj |= meter.stop()
            out["memory_caught_up"] = h.memory(worker.pid)
            _stop_checked(worker, out)
        out["dead_letters"] = h.dead_letters(settings)
        store = h.read_store(settings.store_url)
    span = h.steady([store])
    proj |= span | {"complete": store["distinct_events"] == n == span["rows"]}
    proj |= _cpu_per_event(proj, span, worker.name)
    proj["ratio_vs_raw"] = proj["events_per_s"] / out["raw"]["events_per_s"]
    out["projection"] = proj
    long_names, mid_names, short_names = ([customer_id(c) for c in ids] for ids in (long_ids, mid_ids, short_ids))
    states = h.state_sizes(settings, parse=long_names)
    sizes, parsed = states.pop("_sizes"), states.pop("_parsed")

    def group(names: list[str], each: int) -> dict:
        b = [sizes.get(c, 0) for c in names]
        return {"customers": len(names), "events_each": each, "bytes_mean": sum(b) / len(b), "bytes_max": max(b),
                "bytes_min": min(b)}

    background = sorted(v for c, v in sizes.items() if c not in {*long_names, *mid_names, *short_names})
    out["state_groups"] = {
        "long": group(long_names, args.heavy_events), "mid": group(mid_names, mid_each),
        "short": group(short_names, short_each),
        "background": {"customers": len(background), "bytes_p50": h.pct(background, 50),
                       "bytes_p99": h.pct(background, 99), "bytes_max": background[-1]} if background else None}
    biggest_long = max(long_names, key=lambda c: sizes.get(c, 0))
    out["largest_long_history_state"] = {"customer": biggest_long, "bytes": sizes.get(biggest_long),
                                         "parts": h.breakdown(parsed[biggest_long])} if biggest_long in parsed else None
    out["states"] = states
    return out


# --- report ------------------------------------------------------------------------------------------------------
def _ms(s: dict | None) -> str:
    if not s:
        return "-"
    return " / ".join(f"{s[k]:.{int(s[k] < 10)}f}" for k in ("p50_ms", "p99_ms", "max_ms"))


def report(r: dict) -> Table:
    t = Table(title=f"omnitrail bench (details): {r['params']['events']:,} events, {r['params']['customers']:,} "
                    f"customers", title_justify="left", caption_justify="left",
              caption=f"{r['started']}, {r['host']['cpus']} CPUs, load at start "
                      f"{', '.join(f'{x:.1f}' for x in r['host']['loadavg_at_start'])}; noida-db + chdb; total "
                      f"{r['total_s']:.0f} s; ratio = omnitrail / raw")
    for col in ("measure", "omnitrail", "raw", "ratio"):
        t.add_column(col, justify="left" if col == "measure" else "right")

    def failed(name: str) -> bool:
        part = r.get(name)
        if part and "error" in part:
            t.add_row(f"[red]{name}: FAILED[/red]", escape(part["error"].splitlines()[0][:100]), "", "")
        return not part or "error" in part

    if not failed("publish"):
        pub = r["publish"]
        t.add_row("publish events/s (publish_many)", f"{pub['publish_many_events_per_s']:,.0f}",
                  f"{pub['raw_events_per_s']:,.0f}", f"{pub['ratio_publish_many']:.2f}")
        t.add_row("publish events/s (build + publish)", f"{pub['sdk_events_per_s']:,.0f}",
                  f"{pub['raw_events_per_s']:,.0f}", f"{pub['ratio_sdk']:.2f}")
    if not failed("one_worker"):
        one = r["one_worker"]
        p, raw, lat = one["projection"], one["raw"], one["latency"]
        t.add_row("1 worker: project events/s (steady)", f"{p['events_per_s']:,.0f}", f"{raw['events_per_s']:,.0f}",
                  f"{p['ratio_vs_raw']:.2f}")
        t.add_row("1 worker: s, start -> all stored", f"{p['end_to_end_s']:.1f}", f"{raw['end_to_end_s']:.1f}", "")
        t.add_row("1 worker: CPU µs/event (steady; raw: whole run)", f"{p['worker_cpu_us_per_event']:,.0f}",
                  f"{raw['cpu_us_per_event']:,.0f}", "")
        t.add_row("1 worker: broker CPU % of a core while timed", f"{p['broker_pct_of_one_core']:.0f}",
                  f"{raw['broker_pct_of_one_core']:.0f}", "")
        t.add_row("1 worker: s to API up / committed / visible",
                  f"{p['health_s']['worker']:.1f} / {p['committed_all_s']:.1f} / {p['all_visible_s']:.1f}", "", "")
        t.add_row("produce->visible ms p50/p99/max", _ms(lat["visible"]), "", "")
        t.add_row("produce->stored ms p50/p99/max", _ms(lat["stored"]), "", "")
        t.add_row("publish ack ms p50/p99/max", _ms(lat["ack"]), "", "")
        bare = one.get("idle_bare_consumer") or {}
        t.add_row(f"idle CPU % of one core ({one['idle']['seconds']:.0f} s; raw: bare consumer)",
                  f"{one['idle']['pct_of_one_core']:.1f}", f"{bare.get('pct_of_one_core', float('nan')):.1f}", "")
        m = one["memory_caught_up"]
        t.add_row(f"worker RSS / peak MiB ({one['states']['states']:,} states)",
                  f"{m['rss_mib']:,.0f} / {m['hwm_mib']:,.0f}", "", "")
        if one.get("changelog_records") is not None:
            t.add_row("1 worker: state changelog records (per event)",
                      f"{one['changelog_records']:,} ({one['changelog_records'] / p['rows']:.2f})", "", "")
        t.add_row("1 worker: broker data file MiB, loaded -> end", f"{one['broker_data_mib_loaded']:,.0f} -> "
                  f"{one['broker_data_mib_end']:,.0f}", "", "")
        t.add_row("rows stored (FINAL / distinct)", f"{p['rows']:,} / {p['distinct_events']:,}", f"{raw['rows']:,}",
                  "ok" if p["complete"] else "[red]MISSING[/red]")
    if not failed("two_workers"):
        two = r["two_workers"]
        t.add_row("2 workers: combined events/s (steady)", f"{two['events_per_s']:,.0f}",
                  f"1 worker: {two['one_worker_events_per_s'] or 0:,.0f}",
                  f"{two['scaling']:.2f}" if two.get("scaling") else "")
        t.add_row("2 workers: CPU µs/event (both, steady)", f"{two.get('worker_cpu_us_per_event', math.nan):,.0f}",
                  "", "")
        t.add_row("2 workers: rows per worker", " / ".join(f"{v['rows']:,}" for v in two["per_worker"].values()),
                  "", "ok" if two["complete"] else "[red]MISSING[/red]")
    if not failed("memory"):
        mem = r["memory"]
        m = mem["memory_caught_up"]
        t.add_row(f"memory: RSS / peak MiB ({mem['states']:,} states)", f"{m['rss_mib']:,.0f} / {m['hwm_mib']:,.0f}",
                  "", "")
        t.add_row("memory: project events/s (steady)", f"{mem['projection']['events_per_s']:,.0f}", "",
                  "ok" if mem["projection"]["complete"] else "[red]MISSING[/red]")
    if not failed("long_histories"):
        lh = r["long_histories"]
        p, g = lh["projection"], lh["state_groups"]
        t.add_row("long histories: project events/s (steady)", f"{p['events_per_s']:,.0f}",
                  f"{lh['raw']['events_per_s']:,.0f}", f"{p['ratio_vs_raw']:.2f}")
        for k in ("long", "mid", "short"):
            t.add_row(f"long histories: state bytes mean/max, {g[k]['events_each']:,} events",
                      f"{g[k]['bytes_mean']:,.0f} / {g[k]['bytes_max']:,}", "", "")
        if g["background"]:
            t.add_row("long histories: background state bytes p50/max",
                      f"{g['background']['bytes_p50']:,} / {g['background']['bytes_max']:,}", "", "")
    if not failed("idle_holding_broker"):
        idle = r["idle_holding_broker"]
        t.add_row(f"idle CPU % of one core on Tansu ({idle['idle']['seconds']:.0f} s; raw: bare consumer)",
                  f"{idle['idle']['pct_of_one_core']:.1f}", f"{idle['idle_bare_consumer']['pct_of_one_core']:.1f}", "")
    return t


def _clean(obj):
    """Drop private keys (``_...``) before writing JSON."""
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not (isinstance(k, str) and k.startswith("_"))}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def run(args: argparse.Namespace) -> dict:
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    only = set(args.only.split(",")) if args.only else set(SCENARIOS)
    only -= set(args.skip.split(",")) if args.skip else set()
    tmp = Path(tempfile.mkdtemp(prefix="omnitrail-bench-"))
    defaults = Settings()
    result: dict = {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "python": platform.python_version(), "loadavg_at_start": os.getloadavg()},
                    "params": {**{k: v for k, v in vars(args).items() if k != "keep"},
                               "scenarios": [s for s in SCENARIOS if s in only],
                               "partitions": defaults.partitions, "batch_size": defaults.batch_size,
                               "batch_seconds": defaults.batch_seconds,
                               "checkpoint_seconds": defaults.checkpoint_seconds,
                               "event_mode": defaults.event_mode, "broker": "noida-db", "store": "chdb"}}
    console.print(f"[dim]work dir {tmp}; scenarios {', '.join(result['params']['scenarios'])}[/dim]")

    def attempt(name: str, key: str, fn, *a):
        if name not in only:
            return None
        t0 = time.perf_counter()
        try:
            value = fn(*a)
        except Exception as exc:  # noqa: BLE001 (recorded and reported; the other scenarios still run)
            console.print(f"[red]{key} failed: {escape(type(exc).__name__ + ': ' + str(exc).splitlines()[0])}[/red]")
            error = f"{type(exc).__name__}: {exc}"
            result[key] = {"error": error if len(error) < 20_000 else error[:20_000] + " ...",
                           "traceback": traceback.format_exc(limit=8)[-5000:]}
            return None
        if isinstance(value, tuple):
            value[0]["seconds"] = time.perf_counter() - t0
            result[key] = value[0]
        else:
            value["seconds"] = time.perf_counter() - t0
            result[key] = value
        return value

    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description:<36}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            published = attempt("publish", "publish", publish_scenario, args, tmp / "publish", progress)
            events = published[1] if published else None
            if events is None and only & {"one", "two"}:
                task = progress.add_task("build events", total=args.events)
                events = list(h.ticking(build_events(args.events, args.customers), progress, task))
            records = h.encoded(defaults, events) if events else None  # the topics' names: default prefix
            one = attempt("one", "one_worker", one_worker_scenario, args, tmp / "one", events, records, progress)
            one_rate = one["projection"]["events_per_s"] if one else None
            attempt("two", "two_workers", two_workers_scenario, args, tmp / "two", events, records, one_rate,
                    progress)
            events = records = published = None
            attempt("memory", "memory", memory_scenario, args, tmp / "memory", progress)
            attempt("long", "long_histories", long_scenario, args, tmp / "long", progress)
            attempt("idle", "idle_holding_broker", idle_scenario, args, tmp / "idle", progress)
    finally:
        if args.keep:
            console.print(f"[dim]kept {tmp}[/dim]")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["total_s"] = time.perf_counter() - t_start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000, help="events for publish, 1 and 2 workers (200000)")
    parser.add_argument("--customers", type=int, default=20_000, help="their distinct customers (20000)")
    parser.add_argument("--latency-samples", type=int, default=200, help="single events timed (200)")
    parser.add_argument("--latency-gap-ms", type=float, default=20, help="pause between them (20 ms)")
    parser.add_argument("--idle-seconds", type=float, default=10, help="idle CPU window (10 s)")
    parser.add_argument("--idle-probe-events", type=int, default=200,
                        help="idle (Tansu): events projected before the idle window (200)")
    parser.add_argument("--raw-repeats", type=int, default=3,
                        help="raw baseline runs per scenario; the median counts (3)")
    parser.add_argument("--stagger", type=float, default=0,
                        help="two workers: start the second this many seconds after the first is up (0: together)")
    parser.add_argument("--memory-customers", type=int, default=100_000, help="memory: distinct customers (100000)")
    parser.add_argument("--memory-events", type=int, default=0, help="memory: events (default 1.2 x customers)")
    parser.add_argument("--heavy-customers", type=int, default=20, help="long histories: customers (20)")
    parser.add_argument("--heavy-events", type=int, default=3000,
                        help="long histories: events each (3000); as many customers get a tenth of that")
    parser.add_argument("--background-events", type=int, default=60_000,
                        help="long histories: background events over --customers (60000)")
    parser.add_argument("--only", default="", help=f"comma-separated scenarios to run, of {','.join(SCENARIOS)}")
    parser.add_argument("--skip", default="", help="comma-separated scenarios to skip")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (stores, worker logs)")
    args = parser.parse_args(argv)
    unknown = {s for s in (args.only + "," + args.skip).split(",") if s} - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}")
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up like Ctrl-C
    result = _clean(run(args))
    console.print(report(result))
    for key in ("one_worker", "two_workers", "memory", "long_histories"):
        part = result.get(key) or {}
        for warning in part.get("warnings", []):
            console.print(f"[yellow]{key}: {escape(warning)}[/yellow]")
        if "error" in part:
            console.print(f"[red]{key}: {escape(part['error'])}[/red]")
    RESULTS.mkdir(exist_ok=True)
    data = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    path = RESULTS / f"run-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(data)
    (RESULTS / "run-latest.json").write_bytes(data)
    console.print(f"results: {path.relative_to(h.ROOT)} (and run-latest.json)")
    targets.publish()
    ok = all("error" not in (result.get(k) or {}) for k in ("publish", "one_worker", "two_workers", "memory",
                                                               "long_histories"))
    ok &= all((result.get(k) or {}).get("projection", {}).get("complete", True)
              for k in ("one_worker", "memory", "long_histories"))
    ok &= (result.get("two_workers") or {}).get("complete", True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
