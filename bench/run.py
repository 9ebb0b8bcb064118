"""omnitrail benchmark: publish rate, projection throughput and produce->visible latency, each beside a raw baseline.

    python -m bench.run [--events 20000] [--customers 1000] [--latency-samples 200] [--latency-gap-ms 20] [--keep]

One run starts a fresh noida-db broker (free port, temp dir), creates the topics, and measures:

1. **Publish rate.** N realistic events (21 event types over all 11 channels, ~1000 customers, fixed seed) are
   built with ``Event.of`` (pydantic validation), then published with ``Publisher.publish_many`` (CloudEvents
   encode + idempotent ``acks=all`` produce + wait for every delivery report). The raw baseline produces the same
   records, encoded beforehand, with a bare confluent-kafka ``Producer`` with the Publisher's settings (same
   idempotence, acks, linger) into a second set of topics with the same partitioning, so the worker's topics
   hold exactly N events. Each producer sends the first 10% (at most 1000) of the events untimed: a new
   idempotent producer first fetches a producer id and metadata (up to ~0.5 s on noida-db). The baseline runs
   first, so any slowdown of a fuller broker counts against omnitrail, not the baseline. Ratio = omnitrail
   events/s / raw events/s (1.0 = the SDK costs nothing; 0.5 = it halves the rate). Reported twice: publish
   only (events built beforehand), and build (validation) + publish.

2. **Projection throughput.** With all N events on the topics, ``omnitrail worker`` starts as a subprocess on the
   bench's broker, state dir (fresh chdb store) and a free API port. Counting rows over the read API would need
   one ``GET /timeline/<customer>`` per customer, and the HTTP server lives inside the worker, so heavy polling
   would slow what it measures. Instead:
   * the timeline table's ``projected_at DEFAULT now64(3)`` stamps every insert with the store's clock. After
     the run (worker stopped) the bench opens the store and reads count, first and last insert time of the N
     rows: *steady rate* = (N - rows of the first insert) / (last insert - first insert), i.e. the rate once
     the consumer runs, without startup; *end-to-end* = worker spawn -> last insert (Python start, migrations,
     group join included);
   * completion is seen through the read API, cheaply: faust processes each partition in offset order and
     writes batches one after another, so once the event at the highest offset of a partition is visible,
     the whole partition is. The bench polls just those <= 33 "tail" customers (``?since=`` keeps answers
     small) every 0.5 s; the progress bar follows the consumer group's committed offsets (a broker call);
   * the final count (``FINAL``, with a duplicate check) proves all N events are in the timeline.
   The raw baseline consumes the same topics with a bare confluent-kafka ``Consumer`` (partitions assigned, no
   group join) in batches of ``batch_size`` (as the worker) and inserts minimal rows (key, id header, broker
   timestamp, origin, raw value; no decode, validation or summary) with the same ``insert_arrow`` call into a
   scratch ``ReplacingMergeTree`` in a second chdb dir, in the bench process, with the same ``projected_at``
   stamp, so both steady rates are computed the same way. Ratio = worker / raw: the share of the achievable
   consume+store rate that the worker (faust/aiokafka, decode, validation, projection) keeps.

3. **Produce->visible latency.** With the worker caught up, events are published one at a time
   (``Publisher.publish``, i.e. after the broker's ack) to existing customers, ``--latency-gap-ms`` apart; after
   each the bench polls that customer's ``GET /timeline/<customer>?since=...`` back to back until the event is
   in the answer. Reported: p50/p99/max of publish-start -> visible through the read API (what a caller sees),
   of publish-start -> stored (its ``projected_at``), and of the publish ack alone. The worker waits up to
   ``batch_seconds`` (0.2 s) to fill a batch, which sets the floor of these figures.

Figures depend on what else runs on the machine (the JSON records the load average at start); compare ratios
from one run rather than absolute rates across runs. Results: a Rich table on stdout, JSON in
``bench/results/<UTC timestamp>.json`` and ``bench/results/latest.json``. Every process started here (worker:
SIGTERM; broker: ``stop()``) is stopped on exit, errors and Ctrl-C included.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from projections.store import connect
from schemas import events as ev
from schemas.channels import Channel
from schemas.codec import Record, encode
from schemas.envelope import Event
from services.publisher import Publisher
from services.settings import Settings
from services.stack import LocalBroker, free_port
from services.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_SOURCE = "/bench/latency"
SWEEP_S = 0.5  # read API polling period while the worker catches up
console = Console()

# --- realistic events --------------------------------------------------------------------------------------------
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
ADDRESSES = [ev.PostalAddress(street=s, house_number=str(n), postcode=p, city=c) for s, n, p, c in [
    ("Kerkstraat", 12, "1017 GC", "Amsterdam"), ("Prinsengracht", 263, "1016 GV", "Amsterdam"),
    ("Oudegracht", 158, "3511 AZ", "Utrecht"), ("Coolsingel", 40, "3011 AD", "Rotterdam"),
    ("Grote Markt", 3, "9711 LV", "Groningen")]]
QUEUES = ("general", "billing", "payments", "reservations", "retention")
PAGES = ("hotels/ams", "account", "invoices", "faq/moving", "offers/autumn", "bookings")
MESSAGING = (Channel.WEBCHAT, Channel.WHATSAPP, Channel.TWITTER, Channel.FACEBOOK)
TEXTS = ("Where is my refund?", "My letters go to my old address.", "Can I change my booking?", "Thanks, solved!")
INTERACTIONS = [  # (weight, channel or channels to pick from, payload factory(rng, event number))
    (8, Channel.WEB, lambda r, i: ev.WebPageViewed(session_id=f"s-{i // 4}",
                                                   url=f"https://portal.example/{r.choice(PAGES)}")),
    (4, Channel.PHONE, lambda r, i: ev.CallStarted(call_id=f"C-{i}", queue=r.choice(QUEUES))),
    (2, Channel.PHONE, lambda r, i: ev.CallTransferred(call_id=f"C-{i - 1}", from_queue=r.choice(QUEUES),
                                                       to_queue=r.choice(QUEUES), reason="needs a specialist")),
    (4, Channel.PHONE, lambda r, i: ev.CallEnded(call_id=f"C-{i - 2}", duration_seconds=r.randint(20, 2400),
                                                 resolved=r.random() < 0.7)),
    (3, Channel.EMAIL, lambda r, i: ev.EmailReceived(message_id=f"E-{i}", subject=r.choice(TEXTS), body="...")),
    (3, Channel.EMAIL, lambda r, i: ev.EmailSent(message_id=f"E-{i}", in_reply_to=f"E-{i - 1}",
                                                 subject="Re: your question", body="Dear customer, ...")),
    (5, MESSAGING, lambda r, i: ev.MessageReceived(conversation_id=f"conv-{i // 6}", text=r.choice(TEXTS),
                                                   handle=f"@user{i % 997}")),
    (5, MESSAGING, lambda r, i: ev.MessageSent(conversation_id=f"conv-{i // 6}", agent="webcare-anna",
                                               text="Sorry to hear that! Could you DM us your customer number?")),
    (3, Channel.MAIL, lambda r, i: ev.MailSent(letter_id=f"L-{i}", address=r.choice(ADDRESSES),
                                               subject="Annual statement")),
    (1, Channel.MAIL, lambda r, i: ev.MailReturned(letter_id=f"L-{i - 1}", address=r.choice(ADDRESSES),
                                                   reason=r.choice(list(ev.ReturnReason)))),
    (2, Channel.STORE, lambda r, i: ev.StoreVisited(store_id=f"store-{i % 40}", purpose="new phone contract")),
    (2, Channel.WEB, lambda r, i: ev.BookingMade(booking_id=f"B-{i}", product="HOTEL-AMS-DBL-3N",
                                                 amount=Decimal(r.randint(9000, 60000)) / 100,
                                                 discount_code=r.choice(("", "", "AUTUMN15")))),
    (1, Channel.PARTNER, lambda r, i: ev.BookingChanged(booking_id=f"B-{i - 3}", change="rebooked by agency")),
    (2, Channel.SURVEY, lambda r, i: ev.FeedbackGiven(survey_id=f"S-{i}", metric=ev.FeedbackMetric.NPS,
                                                      score=r.randint(0, 10), about_channel="phone")),
    (2, Channel.PHONE, lambda r, i: ev.PriceQuoted(subject="HOTEL-AMS-DBL-3N",
                                                   amount=Decimal(r.randint(9000, 60000)) / 100)),
    (1, Channel.WEB, lambda r, i: ev.OfferMade(subject="AUTUMN15", terms="15% off stays before December")),
    (1, Channel.WEBCHAT, lambda r, i: ev.AnswerGiven(subject="moving", answer="Change it under Account.")),
    (1, Channel.PHONE, lambda r, i: ev.CaseOpened(case_id=f"K-{i}", intent="billing-dispute")),
    (1, Channel.PHONE, lambda r, i: ev.CaseResolved(case_id=f"K-{i - 5}", resolution="credit note issued")),
    (1, Channel.WEB, lambda r, i: ev.AddressChanged(address=ADDRESSES[i % 5], previous=ADDRESSES[(i + 1) % 5])),
    (1, Channel.WEB, lambda r, i: ev.IdentityLinked(kind="email", value=f"user{i}@example.com")),
]


def customer_id(n: int) -> str:
    return f"cust-{n:05d}"


def build_events(n: int, customers: int, seed: int = 7) -> Iterator[Event]:
    """``n`` validated events, customers' clocks moving forward from ``START``; ~30% carry a journey id."""
    r = random.Random(seed)
    clock = [START + timedelta(minutes=r.randrange(60 * 24 * 7)) for _ in range(customers)]
    weights = [w for w, _, _ in INTERACTIONS]
    for i in range(n):
        c = r.randrange(customers)
        clock[c] += timedelta(seconds=r.randint(60, 86_400))
        _, channels, make = r.choices(INTERACTIONS, weights)[0]
        channel = channels if isinstance(channels, Channel) else r.choice(channels)
        yield Event.of(make(r, i), customer=customer_id(c), channel=channel, source=f"/bench/{channel.value}",
                       id=f"bench-{i}", time=clock[c],
                       correlationid=f"journey-{c}-{i // 200}" if r.random() < 0.3 else None)


# --- helpers -----------------------------------------------------------------------------------------------------
def ticking(items: Iterable, progress: Progress, task, every: int = 500) -> Iterator:
    """Yield ``items``, advancing a progress task as they are consumed."""
    k = 0
    for k, item in enumerate(items, 1):
        yield item
        if k % every == 0:
            progress.advance(task, every)
    progress.advance(task, k % every)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def summary(values_s: list[float]) -> dict:
    ms = [v * 1000 for v in values_s]
    return {"p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), "max_ms": max(ms), "mean_ms": sum(ms) / len(ms)}


def api_get(settings: Settings, path: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(settings.api_url + path, timeout=timeout) as resp:
        return orjson.loads(resp.read())


def visible(settings: Settings, customer: str, event_id: str, since: str) -> bool:
    """Is ``event_id`` in the customer's timeline (rows at or after ``since``) as the read API serves it?"""
    query = urllib.parse.urlencode({"since": since, "limit": 1000})
    rows = api_get(settings, f"/timeline/{urllib.parse.quote(customer, safe='')}?{query}")["rows"]
    return any(row["event_id"] == event_id for row in rows)


def insert_span(client, table: str, where: str) -> dict:
    """Rows, first/last insert time (``projected_at``) and steady rate of the rows matching ``where``."""
    rows, first, last = client.query(
        f"SELECT count(), toUnixTimestamp64Milli(min(projected_at)), toUnixTimestamp64Milli(max(projected_at)) "
        f"FROM {table} FINAL WHERE {where}").result_rows[0]
    first_rows = client.query(f"SELECT count() FROM {table} WHERE {where} "
                              f"AND toUnixTimestamp64Milli(projected_at) = {first}").result_rows[0][0]
    span = (last - first) / 1000
    return {"rows": rows, "first_insert_ms": first, "last_insert_ms": last, "first_insert_rows": first_rows,
            "span_s": span, "events_per_s": (rows - first_rows) / span if span > 0 else float("nan")}


def producer_config(settings: Settings) -> dict:
    """A bare producer with the Publisher's settings (see ``services.publisher``)."""
    return {"bootstrap.servers": settings.kafka_bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 5, "log.connection.close": False, "delivery.timeout.ms": 30_000}


def produce_raw(settings: Settings, records: list[tuple[str, Record]], warm: int, progress: Progress) -> float:
    """Produce pre-encoded records with a bare Producer, wait for all acks; return the seconds the records
    after the first ``warm`` took (those warm the producer up, as in ``publish_phase``)."""
    errors = []
    producer = Producer(producer_config(settings))

    def produce_all(items: Iterable[tuple[str, Record]]) -> None:
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
    produce_all(ticking(records[warm:], progress, task))
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"raw produce: {len(errors)} errors (first: {errors[0]})")
    return elapsed


def all_partitions(settings: Settings) -> list[TopicPartition]:
    return [TopicPartition(t, p) for t in settings.channel_topics for p in range(settings.partitions)]


# --- phases ------------------------------------------------------------------------------------------------------
def publish_phase(settings: Settings, n: int, customers: int, progress: Progress) -> tuple[dict, list[Event]]:
    raw_settings = settings.model_copy(update={"topic_prefix": f"{settings.topic_prefix}-raw"})
    ensure_topics(raw_settings)
    task = progress.add_task("build + validate events", total=n)
    t0 = time.perf_counter()
    events = list(ticking(build_events(n, customers), progress, task))
    build_s = time.perf_counter() - t0
    records = [(raw_settings.channel_topic(e.channel), encode(e, settings.event_mode)) for e in events]
    # A new idempotent producer first gets a producer id and topic metadata (noida-db: up to ~0.5 s), so each
    # producer sends the first `warm` events untimed; the rates are over the other `timed` events.
    warm = min(1000, n // 10)
    timed = n - warm
    raw_s = produce_raw(raw_settings, records, warm, progress)
    with Publisher(settings) as publisher:
        publisher.publish_many(events[:warm])
        task = progress.add_task("publish: Publisher.publish_many", total=timed)
        t0 = time.perf_counter()
        publisher.publish_many(ticking(events[warm:], progress, task))
        publish_s = time.perf_counter() - t0
    sdk_s = build_s * timed / n + publish_s
    return {
        "events": n, "customers": customers, "warm_up_events": warm, "timed_events": timed,
        "build_validate_s": build_s, "build_validate_events_per_s": n / build_s, "publish_many_s": publish_s,
        "raw_produce_s": raw_s, "publish_many_events_per_s": timed / publish_s,
        "sdk_events_per_s": timed / sdk_s, "raw_events_per_s": timed / raw_s,
        "ratio_publish_many": raw_s / publish_s, "ratio_sdk": raw_s / sdk_s,
        "bytes_per_event": sum(len(r.value) + len(r.key) + sum(len(k) + len(v) for k, v in r.headers)
                               for _, r in records) / n,
    }, events


def raw_projection(settings: Settings, n: int, store_url: str, progress: Progress) -> tuple[dict, dict]:
    """Bare consume of the channel topics + Arrow insert of minimal rows. Also returns each partition's tail
    record (customer, event id, time), which tells the worker phase when everything is visible."""
    client = connect(store_url)
    client.command("""CREATE TABLE raw_timeline (
        customer_id String, time DateTime64(3, 'UTC'), event_id String, topic LowCardinality(String),
        partition UInt32, offset UInt64, data String, projected_at DateTime64(3, 'UTC') DEFAULT now64(3))
        ENGINE = ReplacingMergeTree ORDER BY (customer_id, time, event_id)""")
    schema = pa.schema([("customer_id", pa.string()), ("time", pa.timestamp("ms", tz="UTC")),
                        ("event_id", pa.string()), ("topic", pa.string()), ("partition", pa.uint32()),
                        ("offset", pa.uint64()), ("data", pa.string())])
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "omnitrail-bench-raw",
                         "enable.auto.commit": False, "log.connection.close": False})
    task = progress.add_task("project: raw consume + insert", total=n)
    tails: dict[tuple[str, int], tuple[str, str, str]] = {}
    got, t0 = 0, time.time()
    try:
        consumer.assign([TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING) for tp in all_partitions(settings)])
        deadline = time.monotonic() + 60
        while got < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"raw consumer read only {got}/{n} events")
            msgs = [m for m in consumer.consume(settings.batch_size, timeout=0.5) if not m.error()]
            if not msgs:
                continue
            cols = {name: [] for name in schema.names}
            for m in msgs:
                hdrs = dict(m.headers())
                key = m.key().decode()
                cols["customer_id"].append(key)
                cols["time"].append(m.timestamp()[1])
                cols["event_id"].append(hdrs["ce_id"].decode())
                cols["topic"].append(m.topic())
                cols["partition"].append(m.partition())
                cols["offset"].append(m.offset())
                cols["data"].append(m.value().decode())
                tails[(m.topic(), m.partition())] = (key, hdrs["ce_id"].decode(), hdrs["ce_time"].decode())
            client.insert_arrow("raw_timeline", pa.table(cols, schema=schema))
            got += len(msgs)
            progress.advance(task, len(msgs))
        elapsed = time.time() - t0
        span = insert_span(client, "raw_timeline", "1")
    finally:
        consumer.close()
        client.close()
    return {**span, "consumed": got, "end_to_end_s": elapsed}, tails


class Worker:
    """``omnitrail worker`` as a subprocess on the bench's broker, state dir and API port."""

    def __init__(self, settings: Settings, log: Path):
        env = {**os.environ, "OMNITRAIL_STATE_DIR": str(settings.state_dir),
               "OMNITRAIL_KAFKA_BOOTSTRAP": settings.kafka_bootstrap, "OMNITRAIL_API_PORT": str(settings.api_port)}
        self.log = log
        self.started = time.time()
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "services", "worker"], cwd=ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"the worker exited with {self.proc.returncode}; log {self.log}:\n{tail}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def worker_phase(settings: Settings, worker: Worker, n: int, tails: dict, progress: Progress) -> dict:
    """Wait for the read API, then until every partition's tail event is visible through it."""
    while True:
        worker.check()
        try:
            api_get(settings, "/health", 1)
            break
        except OSError:
            if time.time() - worker.started > 60:
                raise TimeoutError("the worker's read API did not come up within 60 s") from None
            time.sleep(0.05)
    health_s = time.time() - worker.started
    task = progress.add_task("project: omnitrail worker", total=n)
    group = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.consumer_group,
                      "log.connection.close": False})  # never subscribes: only reads the group's commits
    remaining, next_sweep = dict(tails), 0.0
    try:
        while remaining:
            worker.check()
            if time.time() - worker.started > 180:
                raise TimeoutError(f"{len(remaining)} partition(s) not projected within 180 s")
            committed = group.committed(all_partitions(settings), timeout=5)
            progress.update(task, completed=sum(max(tp.offset, 0) for tp in committed))
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + SWEEP_S
                for tp, (customer, event_id, since) in list(remaining.items()):
                    if visible(settings, customer, event_id, since):
                        del remaining[tp]
            time.sleep(0.1)
    finally:
        group.close()
    progress.update(task, completed=n)
    return {"health_s": health_s, "all_visible_s": time.time() - worker.started, "partitions": len(tails)}


def latency_phase(settings: Settings, customers: int, samples: int, gap: float, progress: Progress) -> dict:
    task = progress.add_task("latency: publish -> visible", total=samples)
    ack, seen, sent_at = [], [], {}
    with Publisher(settings) as publisher:
        publisher.publish(Event.of(ev.MessageReceived(conversation_id="latency-warm-up"), customer=customer_id(0),
                                   channel=Channel.WEBCHAT, source=LATENCY_SOURCE))  # new producer: see above
        for k in range(samples):
            customer = customer_id(k * 7919 % customers)
            now = datetime.now(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # the timeline stores milliseconds
            event = Event.of(ev.MessageReceived(conversation_id=f"latency-{k}", text="latency probe"),
                             customer=customer, channel=Channel.WEBCHAT, source=LATENCY_SOURCE,
                             id=f"latency-{k}", time=now)
            sent_at[event.id] = time.time()
            t0 = time.perf_counter()
            publisher.publish(event)
            ack.append(time.perf_counter() - t0)
            while not visible(settings, customer, event.id, now.isoformat()):
                if time.perf_counter() - t0 > 30:
                    raise TimeoutError(f"{event.id} not visible after 30 s")
            seen.append(time.perf_counter() - t0)
            progress.advance(task)
            time.sleep(gap)
    return {"samples": samples, "gap_ms": gap * 1000, "visible": summary(seen), "ack": summary(ack),
            "_sent_at": sent_at}


def verify(settings: Settings, n: int, latency: dict) -> dict:
    """Open the worker's store (worker stopped): all N events there, once; the inserts' timing."""
    client = connect(settings.store_url)
    try:
        # Only the published events: derived events (flags, violations) also land on the timeline.
        bulk = f"source != '{LATENCY_SOURCE}' AND NOT startsWith(source, '/omnitrail/projections/')"
        span = insert_span(client, "timeline", bulk)
        raw_rows, distinct = client.query(
            f"SELECT count(), uniqExact(source, event_id) FROM timeline WHERE {bulk}").result_rows[0]
        stored = dict(client.query(f"SELECT event_id, toUnixTimestamp64Milli(projected_at) FROM timeline FINAL "
                                   f"WHERE source = '{LATENCY_SOURCE}'").result_rows)
    finally:
        client.close()
    sent_at = latency.pop("_sent_at")
    latency["stored"] = summary([stored[i] / 1000 - t for i, t in sent_at.items() if i in stored])
    latency["stored_rows"] = len(stored)
    return {**span, "distinct_events": distinct, "rows_before_final": raw_rows,
            "complete": distinct == n == span["rows"]}


# --- main --------------------------------------------------------------------------------------------------------
def report(r: dict) -> Table:
    pub, proj, raw, lat = r["publish"], r["projection"], r["projection_raw"], r["latency"]
    t = Table(title=f"omnitrail bench: {r['params']['events']:,} events, {r['params']['customers']:,} customers",
              caption=f"{r['started']}, {r['host']['cpus']} CPUs, noida-db + chdb, total {r['total_s']:.0f} s; "
                      "ratio = omnitrail / raw", title_justify="left", caption_justify="left")
    for col in ("measure", "omnitrail", "raw", "ratio"):
        t.add_column(col, justify="left" if col == "measure" else "right")
    ms = lambda s: " / ".join(f"{s[k]:.{int(s[k] < 10)}f}" for k in ("p50_ms", "p99_ms", "max_ms"))  # noqa: E731
    t.add_row("publish events/s (publish_many)", f"{pub['publish_many_events_per_s']:,.0f}",
              f"{pub['raw_events_per_s']:,.0f}", f"{pub['ratio_publish_many']:.2f}")
    t.add_row("publish events/s (build + publish)", f"{pub['sdk_events_per_s']:,.0f}",
              f"{pub['raw_events_per_s']:,.0f}", f"{pub['ratio_sdk']:.2f}")
    t.add_row("project events/s (steady)", f"{proj['events_per_s']:,.0f}", f"{raw['events_per_s']:,.0f}",
              f"{proj['events_per_s'] / raw['events_per_s']:.2f}")
    t.add_row("project s, start -> all stored", f"{proj['stored_s']:.2f}", f"{raw['end_to_end_s']:.2f}", "")
    t.add_row("worker s, API up / all visible", f"{proj['health_s']:.1f} / {proj['all_visible_s']:.1f}", "", "")
    t.add_row("produce->visible ms p50/p99/max", ms(lat["visible"]), "", "")
    t.add_row("produce->stored ms p50/p99/max", ms(lat["stored"]), "", "")
    t.add_row("publish ack ms p50/p99/max", ms(lat["ack"]), "", "")
    t.add_row("rows stored (FINAL / distinct)", f"{proj['rows']:,} / {proj['distinct_events']:,}", f"{raw['rows']:,}",
              "ok" if proj["complete"] else "[red]MISSING[/red]")
    return t


def run(args: argparse.Namespace) -> dict:
    started = datetime.now(UTC)
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="omnitrail-bench-"))
    port = free_port()
    settings = Settings(state_dir=tmp / "state", kafka_bootstrap=f"127.0.0.1:{port}", api_port=free_port())
    broker = LocalBroker(tmp / "broker", port)
    worker = None
    result: dict = {"started": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                             "python": platform.python_version(), "loadavg_at_start": os.getloadavg()},
                    "params": {"events": args.events, "customers": args.customers,
                               "latency_samples": args.latency_samples, "latency_gap_ms": args.latency_gap_ms,
                               "partitions": settings.partitions, "batch_size": settings.batch_size,
                               "batch_seconds": settings.batch_seconds, "event_mode": settings.event_mode,
                               "broker": "noida-db", "store": "chdb"}}
    console.print(f"[dim]work dir {tmp}; broker 127.0.0.1:{port}; read API {settings.api_url}[/dim]")
    try:
        with Progress(SpinnerColumn(), TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console) as progress:
            broker.start()
            ensure_topics(settings)
            result["publish"], _ = publish_phase(settings, args.events, args.customers, progress)
            result["projection_raw"], tails = raw_projection(settings, args.events,
                                                             f"chdb://{tmp / 'raw-clickhouse'}", progress)
            worker = Worker(settings, tmp / "worker.log")
            proj = worker_phase(settings, worker, args.events, tails, progress)
            result["latency"] = latency_phase(settings, args.customers, args.latency_samples,
                                              args.latency_gap_ms / 1000, progress)
        worker_started, code = worker.started, worker.stop()
        worker = None
        if code not in (0, -signal.SIGTERM):
            console.print(f"[yellow]worker exited with {code}[/yellow]")
        proj |= verify(settings, args.events, result["latency"])
        proj["stored_s"] = proj["last_insert_ms"] / 1000 - worker_started
        result["projection"] = proj
    finally:
        if worker is not None:
            worker.stop()
        broker.stop()
        if args.keep:
            console.print(f"[dim]kept {tmp}[/dim]")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    result["total_s"] = time.perf_counter() - t_start
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events to publish and project (default 20000)")
    parser.add_argument("--customers", type=int, default=1_000, help="distinct customers (default 1000)")
    parser.add_argument("--latency-samples", type=int, default=200, help="single events timed (default 200)")
    parser.add_argument("--latency-gap-ms", type=float, default=20, help="pause between them (default 20 ms)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (broker data, stores, worker log)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` cleans up like Ctrl-C
    result = run(args)
    console.print(report(result))
    RESULTS.mkdir(exist_ok=True)
    data = orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
    path = RESULTS / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_bytes(data)
    (RESULTS / "latest.json").write_bytes(data)
    console.print(f"results: {path.relative_to(ROOT)} (and bench/results/latest.json)")
    return 0 if result["projection"]["complete"] else 1


if __name__ == "__main__":
    sys.exit(main())
