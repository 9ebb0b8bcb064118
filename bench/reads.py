"""Read latency at scale: a customer's timeline, flags and journeys and the analyst metrics query on a store holding
10 million timeline rows, through the HTTP API and the CLI, each beside the raw chdb query on the same table in the
same run.

    python -m bench.reads [--rows 10000000] [--customers-sample 200] [--no-variants] ...   (--help for all)

Method (details and how to read the figures: bench/README.md, "Reads at scale").

* **Store.** A fresh embedded ClickHouse (chdb) directory, ``projections.migrate.migrate`` applied, rows loaded
  straight into the projection tables with ``insert_arrow`` (what the worker's sink calls), no broker. The rows come
  from the real pipeline, then are copied column-wise: a *template* of realistic events (``bench.workload``'s 21
  types over all 11 channels; each template customer has a skewed number of events spread over one year, a few
  "heavy" customers 2,000 each; every customer has a postal address of their own) is encoded and decoded as the
  worker does it (``schemas.codec.encode`` / ``schemas.wire.decode_fast``, so v1 events are upcast) and run through
  the worker's ``projections.engine.Engine`` in batches of 20,000 records, derived events fed back like
  ``omnitrail.derived``. That gives every table's rows (timeline, quotes, feedback, identity links, flags,
  consistency, journeys) as the worker would insert them. The template is then copied K times column-wise with
  pyarrow: copy ``j`` renames the customers (``cust-<j><n>``) and makes event ids, identifiers and journey ids unique
  (``<id>.<j>``) and offsets (``offset * K + j``); everything else (times, payloads, summaries) is the template's.
  Rows are inserted in log order, copies interleaved, in batches of ``--batch-rows`` (250,000), so every part
  holds all customers, as the worker's inserts do. The timeline is cut at exactly ``--rows`` rows.
* **Re-deliveries.** After the main load the bench waits for background merges to settle (``--settle-seconds``),
  then re-inserts ``--redeliveries`` slices of the log (each ``--redelivery-rows`` timeline rows, the same share of
  every other table) as separate inserts: a worker replaying batches after crashes. These duplicates sit in fresh
  parts, so ``FINAL`` has real work, as on a live store that keeps receiving small inserts.
* **Customers.** ``--customers-sample`` customers drawn uniformly (fixed seed), the same ones, in the same order, on
  every path; ``--heavy-sample`` of the 2,000-event customers on top, for the timeline only. Each path first runs
  ``WARM`` look-ups of other customers.
* **Paths**, for each query: *raw in-process*, the plain chdb point query on the same table (``SELECT <the same
  columns> FROM <table> WHERE customer_id = X ORDER BY <the same order>``: no ``FINAL``, no identity subquery, no
  API) through a clickhouse-connect chdb client in the bench process, rows fetched into Python. It runs before the
  service starts and again after it stopped (one process owns a chdb directory): the baseline is both samples
  pooled. For metrics, raw is the named query's own statement with ``FINAL`` removed. *named in-process*: the named
  query (``services.queries.run_query``) on a read-only connection in the bench process: the SQL and the row shaping
  without HTTP. *raw via /v1/sql*: the raw statement through ``POST /v1/sql`` of the service: raw SQL plus the HTTP
  path. *API*: ``GET /v1/timeline/{c}``, ``/v1/customer_flags/{c}``, ``/v1/journeys/{c}``, ``/v1/metrics?days=30``
  of ``omnitrail serve`` (a subprocess that owns the store), one keep-alive ``httpx`` client. *API, recommended*:
  ``python -m bench.reads --serve-recommended PORT``: one process owning the store with the unchanged app and,
  on a second port, the same app whose read connections carry ``RECOMMENDED_SETTINGS``; look-ups through both are
  interleaved: what the recommended change would give, without editing the code. *CLI*: ``omnitrail timeline C
  --json`` (etc.) as subprocesses against the running service, fewer samples (each pays process start-up); plus
  ``omnitrail --help`` and ``python -c pass`` (median of 5) and ``python -X importtime -c 'import services.cli'``.
* **Target**: timeline API p99 <= 2 x raw in-process p99 (same customers, same run). CLI targets from the issue:
  ``omnitrail --help`` <= 0.2 s and ``omnitrail timeline C --json`` <= 0.3 s (medians).
* **Investigation** (in process, before the service starts, ``--investigation-sample`` of the customers): the
  timeline look-up written several ways (``FINAL``, ``FINAL PREWHERE``, ``FINAL`` with settings, dedup by ``LIMIT 1
  BY``, the named query as is / with ``PREWHERE`` / as recommended, the identity subquery alone), flags and journeys
  likewise, each with its latency, whether it returns exactly the FINAL query's rows, and ``EXPLAIN indexes = 1``;
  the metrics query's ``UNION ALL`` parts alone with and without FINAL. Unless ``--no-variants``, the timeline rows
  copied into tables that differ only in index granularity (``VARIANTS``), each merged to one part and given the
  same re-deliveries with merges stopped, and looked up the same way.

Results: a table on stdout, JSON in ``bench/results/reads-<UTC time>.json`` and ``reads-latest.json``, and the
``reads`` key plus its target rows merged into ``bench/results/latest.json``. The service is stopped on exit,
errors and Ctrl-C (or SIGTERM) included; the store's temp dir is removed unless ``--keep``.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from bench import harness as h
from bench import summary as targets
from bench.ingest import Service, settings_env
from bench.workload import START, build_events, customer_id
from consumers.kafka import partition_for
from projections.engine import Engine, Record
from projections.migrate import migrate
from projections.origin import Origin
from projections.store import connect
from schemas import events as ev
from schemas.channels import Channel
from schemas.codec import encode
from schemas.envelope import Event
from schemas.identifiers import identifier
from schemas.wire import decode_fast
from services.queries import run_query
from services.readonly import readonly_client
from services.settings import Settings
from services.simulate import IDENTITY_SHARE, IDENTITY_VARIANTS
from services.stack import free_port

RESULTS = Path(__file__).parent / "results"
FIGURE_PREFIX = "reads"
TARGET_RATIO = 2.0
HELP_TARGET_S, CLI_TIMELINE_TARGET_S = 0.2, 0.3
ENGINE_BATCH = 20_000   # the worker's batch size
DAYS = 365              # every template customer's events are spread over this many days
HEAVY_EVENTS = 2_000    # events of each heavy customer
WARM = 10               # look-ups of other customers before each timed series
METRICS_DAYS = 30       # what GET /v1/metrics asks for by default
COPY_SUFFIXED = ("event_id", "identifier", "journey_id", "violation_id")
console = Console(width=None if sys.stdout.isatty() else 170)


# --- the template: realistic rows from the real pipeline ----------------------------------------------------------
def address_of(c: int, moved: int = 0) -> ev.PostalAddress:
    """Customer ``c``'s own postal address (``moved``: after how many moves)."""
    streets = ("Kerkstraat", "Prinsengracht", "Oudegracht", "Coolsingel", "Grote Markt", "Dorpsstraat", "Stationsweg")
    cities = ("Amsterdam", "Utrecht", "Rotterdam", "Groningen", "Zwolle", "Breda", "Delft")
    k = c * 3 + moved
    return ev.PostalAddress(street=streets[k % 7], house_number=str(1 + k // 7 % 400),
                            postcode=f"{1000 + k // 2800 % 9000} {'ABCDEFGH'[k % 8]}{'JKLMNPRS'[k // 8 % 8]}",
                            city=cities[k // 7 % 7])


def event_counts(customers: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Events per template customer: lognormal (median ~13, mean ~28, p99 ~200, capped at 1,500), and one in 1,000
    customers (at least one) a heavy one with ``HEAVY_EVENTS``. Returns the counts and the heavy customers."""
    counts = np.minimum(np.ceil(rng.lognormal(2.6, 1.2, customers)), 1_500).astype(np.int64)
    heavy = rng.choice(customers, max(1, customers // 1000), replace=False)
    counts[heavy] = HEAVY_EVENTS
    return counts, np.sort(heavy)


def template_events(customers: int, seed: int) -> tuple[list, np.ndarray, np.ndarray]:
    """The template's events in log (= time) order: ``bench.workload`` payloads, each customer's events at sorted
    random times within ``DAYS`` days, each customer's mail and address events at the customer's own address."""
    rng = np.random.default_rng(seed)
    counts, heavy = event_counts(customers, rng)
    who = np.repeat(np.arange(customers), counts)
    at_ms = rng.integers(0, DAYS * 86_400_000, len(who))
    order = np.argsort(at_ms, kind="stable")
    who, at_ms = who[order], at_ms[order]
    events = []
    for e, c, ms in zip(build_events(len(who), customers, seed=seed, who=who.tolist(), id_prefix="ev"),
                        who.tolist(), at_ms.tolist()):
        update: dict = {"time": START + timedelta(milliseconds=ms)}
        if e.name in (ev.MailSent.name, ev.MailReturned.name):
            update["data"] = e.data.model_copy(update={"address": address_of(c, ms % 2)})
        elif e.name == ev.AddressChanged.name:
            update["data"] = e.data.model_copy(update={"address": address_of(c, 1), "previous": address_of(c)})
        events.append(e.model_copy(update=update))
    events += anonymous_first(events, customers, seed)
    events.sort(key=lambda e: e.time)  # stable: the template's own order stays
    return events, counts, heavy


VARIANT_WEIGHTS = (6, 2, 2)  # linked, relinked, unlinked: the simulator's (services/simulate.py, identities)
WRITES_AGAIN = 0.6           # share that writes again under the handle after the link, as in the simulator


def anonymous_first(events: list, customers: int, seed: int) -> list:
    """The simulator's anonymous first contacts, for its share (``IDENTITY_SHARE``) of the template's customers: a
    conversation on Twitter or WhatsApp under the customer's handle an hour before the customer's first own event,
    then ``IdentityLinked`` of the handle, for most of them a later conversation under the handle too; then, by
    variant, the handle stays (``linked``), is linked to another customer (``relinked``) or is unlinked by the
    customer (``unlinked``) some days later. So the reads resolve real identity links: rows recorded under a handle
    that is the customer's now, under one that is someone else's now or nobody's, and links with no rows under them
    (every customer's postal addresses). Its own random stream: the rest of the template stays as it was."""
    rng = np.random.default_rng(seed + 1)
    first: dict[str, object] = {}
    for e in events:
        first.setdefault(e.subject, e.time)
    count = max(len(IDENTITY_VARIANTS), round(customers * IDENTITY_SHARE))
    weights = np.array(VARIANT_WEIGHTS) / sum(VARIANT_WEIGHTS)
    out = []
    for k, c in enumerate(rng.choice(customers, count, replace=False).tolist()):
        variant = IDENTITY_VARIANTS[k] if k < len(IDENTITY_VARIANTS) else rng.choice(IDENTITY_VARIANTS, p=weights)
        channel, kind = ((Channel.TWITTER, "twitter") if c % 2 else (Channel.WHATSAPP, "whatsapp"))
        value = f"@anon{c}" if kind == "twitter" else f"+3160{c:07d}"
        handle = identifier(kind, value)
        at = first[customer_id(c)] - timedelta(hours=1)
        n = iter(range(10))

        def make(payload, subject: str, minutes: float, conversation: str | None = None) -> Event:
            return Event.of(payload, customer=subject, channel=channel, source=f"/bench/{channel.value}",
                            id=f"anon-{c}-{next(n)}", time=at + timedelta(minutes=minutes), correlationid=conversation)

        def conversation(minutes: float, name: str) -> list[Event]:
            return [make(ev.MessageReceived(conversation_id=name, text="Where is my refund?", handle=value), handle,
                         minutes, name),
                    make(ev.MessageSent(conversation_id=name, agent="webcare-anna",
                                        text="Could you DM us your customer number?"), handle, minutes + 5, name)]

        out += [*conversation(0, f"anon-{c}"), make(ev.IdentityLinked(kind=kind, value=value), customer_id(c), 30)]
        if rng.random() < WRITES_AGAIN:
            out += conversation(float(rng.integers(90, 2 * 1440)), f"anon-{c}-again")
        later = float(rng.integers(3, 60)) * 1440
        if variant == "relinked":  # it was someone else's
            other = (c + 1 + int(rng.integers(customers - 1))) % customers
            out.append(make(ev.IdentityLinked(kind=kind, value=value), customer_id(other), later))
        elif variant == "unlinked":
            out.append(make(ev.IdentityUnlinked(kind=kind, value=value), customer_id(c), later))
    return out


def template_tables(settings: Settings, events: list, progress: Progress) -> tuple[dict[str, pa.Table], dict]:
    """Every projection table's rows for ``events`` as the worker makes them: encoded and decoded like the worker
    reads them, applied by the engine in batches of ``ENGINE_BATCH``, derived events read back in the next batch."""
    engine = Engine(rules=settings.rules)
    states: dict[str, dict] = {}
    offsets: dict[tuple[str, int], int] = {}
    parts: dict[str, list[pa.Table]] = {}
    failed, derived_n = 0, 0

    def record(event, topic: str) -> Record:
        rec = encode(event, settings.event_mode)
        partition = partition_for(rec.key, settings.partitions)
        offset = offsets.get((topic, partition), 0)
        offsets[(topic, partition)] = offset + 1
        origin = Origin(topic, partition, offset)
        return Record(decode_fast(rec.value, rec.headers), origin, origin)

    task = progress.add_task("template: engine over the template events", total=len(events))
    pending: list = []
    for start in range(0, len(events) + ENGINE_BATCH, ENGINE_BATCH):
        batch = [record(e, settings.derived_topic) for e in pending]
        batch += [record(e, settings.channel_topic(e.channel)) for e in events[start:start + ENGINE_BATCH]]
        if not batch:
            break
        applied = engine.apply(batch, states)
        failed += len(applied.failed)
        pending = applied.derived
        derived_n += len(pending)
        for table, data in engine.tables(applied).items():
            parts.setdefault(table, []).append(data)
        progress.advance(task, min(ENGINE_BATCH, max(0, len(events) - start)))
    if failed:
        raise RuntimeError(f"the engine refused {failed} template events")
    return {t: pa.concat_tables(p).combine_chunks() for t, p in parts.items()}, {"derived_events": derived_n}


# --- copies: the template K times, column-wise --------------------------------------------------------------------
def copy_rows(table: pa.Table, positions: np.ndarray, copies: int) -> pa.Table:
    """Rows ``positions`` of the template ``table`` copied ``copies`` times in log order (position p is template row
    p // copies in copy p % copies): copy j's customers are ``cust-<j><n>`` (template customer ``cust-<n>``), its
    event ids, identifiers and journey ids ``<id>.<j>``, its offsets ``offset * copies + j``."""
    r, j = positions // copies, positions % copies
    rows = table.take(pa.array(r))
    tag = pc.utf8_lpad(pa.array(j).cast(pa.string()), len(str(copies - 1)), "0")
    columns = []
    for name in rows.column_names:
        col = rows[name]
        if name == "customer_id":  # cust-<copy><template number>: sort-order neighbours differ, as real ones do;
            # a subject that is an identifier (an anonymous contact's handle) is suffixed like the identifiers
            col = pc.if_else(pc.starts_with(col, "cust-"),
                             pc.binary_join_element_wise(pc.utf8_slice_codeunits(col, 0, 5), tag,
                                                         pc.utf8_slice_codeunits(col, 5), ""),
                             pc.binary_join_element_wise(col, tag, "."))
        elif name in COPY_SUFFIXED:
            col = pc.binary_join_element_wise(col, tag, ".")
        elif name == "offset":
            col = pc.add(pc.multiply(col, pa.scalar(copies, pa.uint64())), pa.array(j, pa.uint64()))
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=rows.schema)


def sizes(template: dict[str, pa.Table], copies: int, rows: int) -> dict[str, int]:
    """Rows per table: the timeline cut at ``rows``, every other table K full copies."""
    return {t: min(rows, d.num_rows * copies) if t == "timeline" else d.num_rows * copies for t, d in template.items()}


def load(client, template: dict[str, pa.Table], copies: int, total: dict[str, int], batch_rows: int,
         progress: Progress, into: dict[str, str] | None = None, tables: list[str] | None = None) -> dict:
    """Insert every table's copies in log order, ``batch_rows`` rows per insert (the other tables' batches cover the
    same share of the log as the timeline's). ``into`` maps a table to another target table."""
    out = {}
    share = batch_rows / total["timeline"]
    for table in tables or list(template):
        n, step = total[table], max(1, round(total[table] * share))
        task = progress.add_task(f"load {(into or {}).get(table, table)}", total=n)
        t0, inserts = time.perf_counter(), 0
        starts = range(0, n, step)
        with ThreadPoolExecutor(1) as pool:  # the next batch is copied while this one is inserted
            make = lambda start: copy_rows(template[table], np.arange(start, min(n, start + step)), copies)  # noqa
            coming = pool.submit(make, starts[0])
            for k in range(len(starts)):
                data = coming.result()
                if k + 1 < len(starts):
                    coming = pool.submit(make, starts[k + 1])
                client.insert_arrow((into or {}).get(table, table), data)
                inserts += 1
                progress.advance(task, data.num_rows)
        seconds = time.perf_counter() - t0
        out[table] = {"rows": n, "inserts": inserts, "seconds": seconds, "rows_per_s": n / seconds}
    return out


def redeliver(client, template: dict[str, pa.Table], copies: int, total: dict[str, int], slices: list[float],
              timeline_rows: int, into: dict[str, str] | None = None, tables: list[str] | None = None) -> dict:
    """Re-insert the rows of each log slice (starting at share ``f`` of the log, ``timeline_rows`` timeline rows
    long, the same share of every other table), one insert per table and slice: batches a worker replays."""
    out = {}
    for table in tables or list(template):
        n = total[table]
        length = max(1, round(n * timeline_rows / total["timeline"]))
        rows = 0
        for f in slices:
            start = min(int(f * n), max(0, n - length))
            data = copy_rows(template[table], np.arange(start, min(n, start + length)), copies)
            client.insert_arrow((into or {}).get(table, table), data)
            rows += data.num_rows
        out[table] = rows
    return out


# --- store shape ---------------------------------------------------------------------------------------------------
def parts_of(client, table: str) -> dict:
    rows = client.query("SELECT count(), sum(rows), sum(bytes_on_disk), max(level) FROM system.parts "
                        "WHERE active AND database = currentDatabase() AND table = {t:String}",
                        parameters={"t": table}).result_rows[0]
    return {"parts": rows[0], "rows": rows[1], "mib_on_disk": round(rows[2] / 2**20, 1), "max_level": rows[3]}


def settle(client, tables: list[str], timeout: float) -> dict:
    """Wait until no merge runs and the tables' part counts stay put for two polls (at most ``timeout`` s)."""
    t0, before = time.monotonic(), None
    quiet = 0
    while time.monotonic() - t0 < timeout:
        merging = client.query("SELECT count() FROM system.merges WHERE database = currentDatabase()").result_rows[0][0]
        now = tuple(parts_of(client, t)["parts"] for t in tables)
        quiet = quiet + 1 if not merging and now == before else 0
        if quiet >= 2:
            break
        before = now
        time.sleep(1.0)
    return {"seconds": round(time.monotonic() - t0, 1), "settled": quiet >= 2}


def duplicates(client, table: str) -> int:
    """Rows that FINAL collapses now (duplicates not merged away yet)."""
    return client.query(f"SELECT (SELECT count() FROM {table}) - (SELECT count() FROM {table} FINAL)").result_rows[0][0]


# --- the reads ----------------------------------------------------------------------------------------------------
class _Recorder:
    """A stand-in client that records the statements a named query sends (and answers with no rows)."""

    def __init__(self):
        self.calls: list[tuple[str, dict]] = []

    def query(self, sql: str, parameters: dict | None = None, **_):
        self.calls.append((sql, dict(parameters or {})))
        return type("Result", (), {"result_rows": [], "column_names": []})()


def recorded(fn: Callable, *args, **kwargs) -> tuple[str, dict]:
    """The (last) statement and parameters ``fn(client, ...)`` sends to the store."""
    rec = _Recorder()
    fn(rec, *args, **kwargs)
    return rec.calls[-1]


def inline(sql: str, parameters: dict) -> str:
    """``sql`` with its ``{name:Type}`` parameters written as literals (for ``POST /v1/sql``)."""
    from clickhouse_connect.driver.binding import format_query_value
    return re.sub(r"\{(\w+):[^{}]+\}", lambda m: str(format_query_value(parameters[m[1]])), sql)


def without_final(sql: str) -> str:
    return re.sub(r"\s+FINAL\b", "", sql)


@dataclass(frozen=True)
class Read:
    """One read: its named query and parameters, the raw statement beside it, its API path and CLI arguments."""

    name: str                                  # as reported
    query: str                                 # the named query (services.queries)
    table: str
    params: Callable[[str | None], dict]       # named query parameters for a customer (None: not per customer)
    raw: Callable[[str | None], tuple[str, dict]]
    api: Callable[[str | None], str]
    cli: Callable[[str | None], list[str]]
    per_customer: bool = True


def reads() -> dict[str, Read]:
    from projections.flags import queries as flag_queries
    from projections.journeys import queries as journey_queries
    from projections.timeline import queries as timeline_queries

    def point(columns, table: str, order: str, limit: str = "") -> Callable[[str | None], tuple[str, dict]]:
        sql = (f"SELECT {', '.join(columns)} FROM {table} WHERE customer_id = {{customer:String}} "
               f"ORDER BY {order}{limit}")
        return lambda c: (sql, {"customer": c})

    quote = lambda c: urllib.parse.quote(c, safe="")  # noqa: E731
    metrics_sql, metrics_params = recorded(journey_queries.channel_metrics, days=METRICS_DAYS)
    return {
        "timeline": Read("timeline", "timeline", "timeline", lambda c: {"customer_id": c},
                         point(timeline_queries.COLUMNS, "timeline", "time, source, event_id", " LIMIT 10000"),
                         lambda c: f"/v1/timeline/{quote(c)}", lambda c: ["timeline", c, "--json"]),
        "customer_flags": Read("customer_flags", "customer_flags", "address_flags", lambda c: {"customer_id": c},
                               point(flag_queries.COLUMNS, "address_flags", "updated_at, address_hash"),
                               lambda c: f"/v1/customer_flags/{quote(c)}",
                               lambda c: ["flags", "--customer", c, "--json"]),
        "journeys": Read("journeys", "journeys", "journeys", lambda c: {"customer_id": c},
                         point(journey_queries.JOURNEY_COLUMNS, "journeys", "started_at, journey_id"),
                         lambda c: f"/v1/journeys/{quote(c)}", lambda c: ["journeys", c, "--json"]),
        "metrics": Read(f"metrics (days={METRICS_DAYS})", "metrics", "timeline, journeys, feedback",
                        lambda c: {"days": METRICS_DAYS}, lambda c: (without_final(metrics_sql), metrics_params),
                        lambda c: f"/v1/metrics?days={METRICS_DAYS}",
                        lambda c: ["metrics", "--days", str(METRICS_DAYS), "--json"], per_customer=False),
    }


def named_sql(read: Read, customer: str | None) -> tuple[str, dict]:
    """The (first) statement the named query sends for ``customer``: the recorder answers no rows, so a read that
    would check identifiers next (``projections.identities.queries.customer_rows``) stops there."""
    from services.queries import QUERIES
    return recorded(QUERIES[read.query].run, **read.params(customer))


# --- what the recommendations change (bench/README.md, "Reads at scale") ------------------------------------------
RECOMMENDED_SETTINGS = {"optimize_move_to_prewhere_if_final": "1"}
MARK = "#bench-recommended"  # a read URL ending in it gets RECOMMENDED_SETTINGS (serve_recommended)


def recommended_subjects(subjects: str) -> str:
    """The identity subquery without FINAL on identity_links: its argMax over the log position picks the same
    newest row whether or not re-delivered duplicates are collapsed first."""
    return subjects.replace("FROM identity_links FINAL", "FROM identity_links")


def recommended_connect(original: Callable) -> Callable:
    """``projections.store.connect`` for a URL ending in ``MARK``: the URL without it, and the connection settings
    with ``RECOMMENDED_SETTINGS`` added before ``readonly`` (after it the session refuses settings)."""
    def connect_marked(url: str, settings: dict[str, str] | None = None):
        if not url.endswith(MARK):
            return original(url, settings)
        settings = dict(settings or {})
        last = {"readonly": settings.pop("readonly")} if "readonly" in settings else {}
        return original(url.removesuffix(MARK), {**settings, **RECOMMENDED_SETTINGS, **last})
    return connect_marked


def serve_recommended(port: int) -> None:
    """One process owning the store with two services (``python -m bench.reads --serve-recommended PORT``): the
    service as it is (``omnitrail serve``'s app) on ``api_port``, and on ``port`` the same app whose read-only
    connections carry ``RECOMMENDED_SETTINGS``. Same engine, same data, same moment: look-ups can be interleaved."""
    import logging

    import projections.store as store
    import services.readonly as readonly
    from services.cli.operate import http_app
    from services.http.app import create_app
    from services.http.server import HttpServer

    logging.basicConfig(level="WARNING")
    settings = Settings()
    store.connect = recommended_connect(store.connect)  # services.readonly opens its connections through it
    as_is = http_app(settings)
    changed = create_app(settings, pool=readonly.ReadPool(settings.read_url + MARK, settings.api_query_seconds))
    side = HttpServer(changed, settings.api_host, port).start()
    try:
        HttpServer(as_is, settings.api_host, settings.api_port).run()
    finally:
        side.stop()


# --- timing ---------------------------------------------------------------------------------------------------------
def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = fn()
    return time.perf_counter() - t0, n


def series(paths: dict[str, Callable[[str | None], int]], customers: list, warm: list, progress: Progress | None,
           label: str) -> dict[str, dict]:
    """Time every path for every customer (``None`` for a query without one), the paths interleaved per customer in
    a rotating order (none always runs first on a customer); ``warm`` customers first, untimed. Per path: latency
    summary, rows returned (p50, max) and the raw seconds."""
    for c in warm:
        for fn in paths.values():
            fn(c)
    names = list(paths)
    seconds: dict[str, list[float]] = {p: [] for p in names}
    rows: dict[str, list[int]] = {p: [] for p in names}
    task = progress.add_task(label, total=len(customers)) if progress else None
    for i, c in enumerate(customers):
        for p in names[i % len(names):] + names[:i % len(names)]:
            s, n = timed(lambda: paths[p](c))
            seconds[p].append(s)
            rows[p].append(n)
        if progress:
            progress.advance(task)
    return {p: {**h.summary(seconds[p]), "n": len(seconds[p]), "rows_p50": h.pct(rows[p], 50),
                "rows_max": max(rows[p]), "seconds": seconds[p]} for p in names}


def pooled(*parts: dict) -> dict:
    values = [s for p in parts for s in p["seconds"]]
    return {**h.summary(values), "n": len(values), "rows_p50": parts[0]["rows_p50"], "rows_max": parts[0]["rows_max"]}


# --- in-process paths ------------------------------------------------------------------------------------------------
def raw_path(client, read: Read) -> Callable[[str | None], int]:
    def run(c: str | None) -> int:
        sql, params = read.raw(c)
        return len(client.query(sql, parameters=params).result_rows)
    return run


def named_path(client, read: Read) -> Callable[[str | None], int]:
    return lambda c: len(run_query(client, read.query, read.params(c)))


def explain(client, sql: str, params: dict) -> dict:
    """``EXPLAIN indexes = 1``: parts and granules the primary key selected (of all), whether the customer filter
    runs as PREWHERE, and the plan text."""
    text = "\n".join(r[0] for r in client.query(f"EXPLAIN indexes = 1 {sql}", parameters=params).result_rows)
    parts = re.findall(r"Parts: (\d+)/(\d+)", text)
    granules = re.findall(r"Granules: (\d+)/(\d+)", text)
    return {"parts": "/".join(parts[-1]) if parts else None, "granules": "/".join(granules[-1]) if granules else None,
            "prewhere": "Prewhere filter" in text, "plan": text}


def with_final(sql: str, table: str, prewhere: bool = False) -> str:
    return sql.replace(f" FROM {table} WHERE ", f" FROM {table} FINAL {'PREWHERE' if prewhere else 'WHERE'} ", 1)


def prewhere(sql: str, table: str) -> str:
    """The named query's ``FROM <table> FINAL WHERE <customer filter>`` as ``... FINAL PREWHERE ...``: the filter
    runs before the FINAL merge. Exact when the filter is on a sorting-key column (all versions of a key share it)."""
    return sql.replace(f" FROM {table} FINAL WHERE ", f" FROM {table} FINAL PREWHERE ", 1)


Variant = Callable[[str | None], tuple[str, dict]]
RESOLVED = "subjects resolved in the one query"  # the timeline read as it was: SUBJECTS in its WHERE


def timeline_variants(read: Read, table: str = "timeline") -> dict[str, Variant]:
    """The timeline look-up written several ways (same columns, order and limit), for the investigation."""
    from projections.timeline.queries import COLUMNS

    cols = ", ".join(COLUMNS)
    where = f"FROM {table} {{final}}WHERE customer_id = {{{{customer:String}}}}"
    base = f"SELECT {cols} {where} ORDER BY time, source, event_id LIMIT 10000"

    def sql(text: str) -> Variant:
        return lambda c: (text, {"customer": c})

    final = base.format(final="FINAL ")
    out = {
        "raw: no FINAL": sql(base.format(final="")),
        "FINAL": sql(final),
        "FINAL PREWHERE customer_id = c": sql(final.replace("FINAL WHERE", "FINAL PREWHERE")),
        "FINAL, optimize_move_to_prewhere_if_final=1":
            sql(final + " SETTINGS optimize_move_to_prewhere_if_final = 1"),
        "FINAL, do_not_merge_across_partitions_select_final=1":
            sql(final + " SETTINGS do_not_merge_across_partitions_select_final = 1"),
        "no FINAL, LIMIT 1 BY (time, source, event_id)":
            sql(f"SELECT {cols} {where.format(final='')} ORDER BY time, source, event_id, projected_at DESC "
                "LIMIT 1 BY time, source, event_id LIMIT 10000"),
    }
    if table == "timeline":
        out["named query, its first statement (FINAL WHERE customer_id IN subjects)"] = lambda c: named_sql(read, c)
        out["named query with PREWHERE"] = lambda c: (prewhere(named_sql(read, c)[0], table), named_sql(read, c)[1])
        out["named query, optimize_move_to_prewhere_if_final=1"] = lambda c: recommended_sql(read, c)
        with contextlib.suppress(ImportError):
            from projections.identities.queries import SUBJECTS
            resolved = (f"SELECT {cols} FROM timeline FINAL WHERE customer_id IN ({SUBJECTS}) "
                        "ORDER BY time, source, event_id LIMIT 10000")
            out[f"{RESOLVED}, optimize_move_to_prewhere_if_final=1"] = sql(
                f"{resolved} SETTINGS optimize_move_to_prewhere_if_final = 1")
            out["identity subquery alone (subjects of c)"] = sql(f"SELECT * FROM ({SUBJECTS})")
            out["identity subquery alone, identity_links without FINAL"] = sql(
                f"SELECT * FROM ({recommended_subjects(SUBJECTS)})")
        with contextlib.suppress(ImportError):
            from projections.identities.queries import EVER
            out["identity subquery alone (c and every identifier it ever had)"] = sql(f"SELECT * FROM ({EVER})")
    return out


def point_variants(read: Read) -> dict[str, Variant]:
    """A per-customer read raw, with FINAL (WHERE and PREWHERE), and as the named query sends it (and with
    PREWHERE)."""
    return {"raw: no FINAL": read.raw,
            "FINAL": lambda c: (with_final(read.raw(c)[0], read.table), read.raw(c)[1]),
            "FINAL PREWHERE customer_id = c": lambda c: (with_final(read.raw(c)[0], read.table, True),
                                                         read.raw(c)[1]),
            "named query": lambda c: named_sql(read, c),
            "named query with PREWHERE": lambda c: (prewhere(named_sql(read, c)[0], read.table),
                                                    named_sql(read, c)[1]),
            "named query, optimize_move_to_prewhere_if_final=1": lambda c: recommended_sql(read, c),
            f"{RESOLVED}, optimize_move_to_prewhere_if_final=1": lambda c: resolved_sql(read, c)}


def resolved_sql(read: Read, customer: str | None) -> tuple[str, dict]:
    """The raw point query with FINAL and the subjects resolved in its WHERE (``SUBJECTS``): one query answering
    what the named query answers."""
    from projections.identities.queries import SUBJECTS
    sql, params = read.raw(customer)
    sql = sql.replace(f" FROM {read.table} WHERE customer_id = {{customer:String}} ",
                      f" FROM {read.table} FINAL WHERE customer_id IN ({SUBJECTS}) ", 1)
    return f"{sql} SETTINGS optimize_move_to_prewhere_if_final = 1", params


def recommended_sql(read: Read, customer: str | None) -> tuple[str, dict]:
    """The named query's statement with ``RECOMMENDED_SETTINGS`` (as a SETTINGS clause)."""
    sql, params = named_sql(read, customer)
    return f"{sql} SETTINGS {', '.join(f'{k} = {v}' for k, v in RECOMMENDED_SETTINGS.items())}", params


def investigate(client, read: Read, variants: dict[str, Variant], customers: list, warm: list, progress: Progress,
                reference: str | None = None) -> dict:
    """Latency of each variant (interleaved per customer, statements written beforehand); whether each returns the
    same rows as ``reference`` (default: the first FINAL variant) for every customer; EXPLAIN indexes=1 for the
    customer with the median number of rows."""
    statements = {name: {c: make(c) for c in [*warm, *customers]} for name, make in variants.items()}
    answers: dict[str, dict] = {name: {} for name in variants}

    def path(name: str) -> Callable[[str | None], int]:
        def run(c: str | None) -> int:
            rows = client.query(statements[name][c][0], parameters=statements[name][c][1]).result_rows
            answers[name][c] = rows
            return len(rows)
        return run

    timing = series({name: path(name) for name in variants}, customers, warm, progress,
                    f"investigate {read.name}: {len(variants)} variants")
    reference = reference or next(n for n in variants if "FINAL" in n and not n.startswith("raw"))
    ranked = sorted(customers, key=lambda c: len(answers[reference][c]))
    median_customer = ranked[len(ranked) // 2]
    out = {}
    for name in variants:
        # what reads the customer's subjects (its linked identifiers too) is compared with the one query that
        # resolves them; the rest with the plain FINAL look-up
        ref = next((n for n in variants if n.startswith(RESOLVED)), reference) if name.startswith(
            ("named", RESOLVED)) else reference
        if name.startswith("identity"):
            same = None
        else:  # named queries return customer_id last; the timeline variants do too (its COLUMNS)
            same = all(answers[name][c] == answers[ref][c] for c in customers)
        ex = {} if name.startswith("identity") else explain(client, *statements[name][median_customer])
        out[name] = {"latency": strip(timing[name]), "same_rows_as": ref, "same_rows": same,
                     "explain_customer": median_customer, **{f"explain_{k}": v for k, v in ex.items()}}
    return out


ANSWER_KEYS = {"timeline": ("event_id", "customer_id"), "customer_flags": ("address_hash", "customer_id"),
               "journeys": ("journey_id", "customer_id")}


def as_one_query(client, read: Read, answers: dict) -> dict:
    """Did the API answer each customer as the one query that resolves the subjects in its WHERE
    (``resolved_sql``) does now? Compared on the rows' keys, in order; also how many of the customers had rows
    recorded under an identifier."""
    keys = ANSWER_KEYS[read.name]
    sql, _ = resolved_sql(read, None)
    columns = re.match(r"SELECT (.*?) FROM ", sql)[1].split(", ")
    same, under = 0, 0
    for customer, rows in answers.items():
        expected = [tuple(row[columns.index(k)] for k in keys)
                    for row in client.query(*resolved_sql(read, customer)).result_rows]
        same += [tuple(row[k] for k in keys) for row in rows] == expected
        under += any(row["customer_id"] != customer for row in rows)
    return {"same": same == len(answers), "customers": len(answers), "same_customers": same,
            "with_rows_under_identifiers": under}


def metrics_parts(client, runs: int, progress: Progress) -> dict:
    """Where the metrics query's time goes: each part of its UNION ALL (``projections.journeys.queries._PARTS``)
    run alone, with FINAL as it is and without; and the timeline part with the ``days`` window applied before the
    FINAL merge (``PREWHERE time >= ...``, exact: time is in the timeline's sorting key). Median of ``runs``."""
    from projections.journeys import queries as journey_queries

    parts_sql = getattr(journey_queries, "_PARTS", None)
    if parts_sql is None:
        return {"skipped": "projections.journeys.queries._PARTS not found"}
    _, params = recorded(journey_queries.channel_metrics, days=METRICS_DAYS)
    newest = client.query(f"SELECT {journey_queries._NEWEST}").result_rows[0][0]
    since = f"toDateTime64('{newest - timedelta(days=METRICS_DAYS - 1)}', 3, 'UTC')"
    statements = {}
    for k, part in enumerate(parts_sql.split("UNION ALL")):
        table = re.search(r"FROM (\w+) FINAL", part)[1]
        label = f"part {k + 1} ({table})"
        statements[f"{label}, FINAL"] = part
        statements[f"{label}, no FINAL"] = without_final(part)
        if table == "timeline":
            statements[f"{label}, FINAL PREWHERE time >= newest day - {METRICS_DAYS - 1}"] = part.replace(
                "FROM timeline FINAL WHERE ", f"FROM timeline FINAL PREWHERE time >= {since} WHERE ", 1)
    task = progress.add_task("investigate metrics: its parts", total=len(statements) * runs)
    out = {}
    for name, sql in statements.items():
        seconds = []
        for _ in range(runs):
            t0 = time.perf_counter()
            client.query(sql, parameters=params)
            seconds.append(time.perf_counter() - t0)
            progress.advance(task)
        out[name] = {"median_ms": statistics.median(seconds) * 1000, "runs": runs}
    return out


# --- through the service and the CLI -------------------------------------------------------------------------------
def api_path(http: httpx.Client, read: Read, answers: dict | None = None) -> Callable[[str | None], int]:
    """GET the read's API path; the rows go into ``answers[customer]`` when given."""
    def run(c: str | None) -> int:
        resp = http.get(read.api(c))
        if resp.status_code != 200:
            raise RuntimeError(f"GET {read.api(c)}: {resp.status_code} {resp.text[:300]}")
        rows = orjson.loads(resp.content)["rows"]
        if answers is not None:
            answers[c] = rows
        return len(rows)
    return run


def sql_path(http: httpx.Client, read: Read) -> Callable[[str | None], int]:
    def run(c: str | None) -> int:
        resp = http.post("/v1/sql", content=orjson.dumps({"sql": inline(*read.raw(c))}),
                         headers={"content-type": "application/json"})
        if resp.status_code != 200:
            raise RuntimeError(f"POST /v1/sql ({read.name}): {resp.status_code} {resp.text[:300]}")
        return len(orjson.loads(resp.content)["rows"])
    return run


class Serve(Service):
    """The HTTP service as a subprocess running ``command`` (``omnitrail serve``, or the bench's what-if server)."""

    def __init__(self, settings: Settings, log: Path, command: list[str]):
        super().__init__(settings, log, in_process=False)
        self.command = command

    def start(self, timeout: float = 120.0) -> Serve:
        t0 = time.perf_counter()
        self.proc = h.start_service(self.command, settings_env(self.settings), self.log, self.url, timeout)
        self.up_s = time.perf_counter() - t0
        return self


IMPORTS_OF_NOTE = ("services.settings", "consumers.worker.config", "projections.stateful", "pyarrow", "numpy",
                   "schemas.envelope", "pydantic", "typer", "rich", "services.reader", "clickhouse_connect")


def import_times(settings: Settings) -> dict:
    """``python -X importtime -c 'import services.cli'``: the CLI's import time, all of it and the cumulative time
    of some modules of note (nested: pyarrow includes numpy) where the import chain first reaches them."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import services.cli"], cwd=h.ROOT,
                          env=settings_env(settings), capture_output=True, text=True, timeout=120)
    cumulative: dict[str, int] = {}
    total = 0
    for line in done.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| *(\S+)", line)
        if m:
            total += int(m[1])
            cumulative.setdefault(m[3], int(m[2]))
    return {"total_s": total / 1e6,
            "modules_s": {k: round(cumulative[k] / 1e6, 3) for k in IMPORTS_OF_NOTE if k in cumulative}}


def omnitrail() -> str:
    exe = Path(sys.executable).parent / "omnitrail"
    return str(exe) if exe.exists() else shutil.which("omnitrail") or "omnitrail"


def cli_series(settings: Settings, argvs: list[list[str]], progress: Progress, label: str,
               parse: bool = True, command: list[str] | None = None) -> dict:
    """Run ``omnitrail <argv>`` for each argv (against the running service), timing each process from start to
    exit; every run must exit 0 (and print JSON rows when ``parse``)."""
    env = settings_env(settings)
    seconds, rows = [], []
    task = progress.add_task(label, total=len(argvs))
    for argv in argvs:
        t0 = time.perf_counter()
        done = subprocess.run([*(command or [omnitrail()]), *argv], env=env, capture_output=True,
                              stdin=subprocess.DEVNULL, timeout=300)
        seconds.append(time.perf_counter() - t0)
        if done.returncode != 0:
            raise RuntimeError(f"omnitrail {' '.join(argv)} exited {done.returncode}: "
                               f"{done.stderr.decode(errors='replace')[-500:]}")
        if parse:
            rows.append(len(orjson.loads(done.stdout)))
        progress.advance(task)
    out = {**h.summary(seconds), "n": len(seconds), "median_s": statistics.median(seconds)}
    if rows:
        out |= {"rows_p50": h.pct(rows, 50), "rows_max": max(rows)}
    return out


# --- the benchmark --------------------------------------------------------------------------------------------------
def sample_customers(template_customers: int, copies: int, heavy: np.ndarray, args, seed: int
                     ) -> tuple[list[str], list[str], list[str]]:
    """Uniformly drawn customers, heavy ones, and others for warming up (all distinct)."""
    r = random.Random(seed)
    width = len(str(copies - 1))
    name = lambda c, j: f"cust-{j:0{width}d}{customer_id(c)[5:]}"  # noqa: E731 (copy_rows' naming)
    numbers = r.sample(range(template_customers * copies), args.customers_sample + WARM)
    uniform = [name(n // copies, n % copies) for n in numbers]
    heavy_ids = [name(int(heavy[r.randrange(len(heavy))]), r.randrange(copies)) for _ in range(args.heavy_sample)]
    return uniform[WARM:], list(dict.fromkeys(heavy_ids)), uniform[:WARM]


def strip(s: dict) -> dict:
    return {k: v for k, v in s.items() if k != "seconds"}


def bench(args, tmp: Path, progress: Progress) -> dict:
    settings = Settings(clickhouse_url=f"chdb://{tmp / 'store'}", state_dir=tmp / "state", api_port=free_port(),
                        api_host="127.0.0.1")
    url = settings.store_url
    out: dict = {"rows": args.rows, "phases_s": {}}
    clock = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        out["phases_s"][name] = round(now - clock, 1)
        clock = now

    # 1. the template and the store
    template_customers = args.template_customers or min(3000, max(200, args.rows // 300))
    events, counts, heavy = template_events(template_customers, args.seed)
    template, info = template_tables(settings, events, progress)
    copies = max(1, -(-args.rows // template["timeline"].num_rows))
    total = sizes(template, copies, args.rows)
    out["template"] = {"customers": template_customers, "events": len(events), **info,
                       "rows": {t: d.num_rows for t, d in template.items()},
                       "events_per_customer": {"p50": float(np.percentile(counts, 50)),
                                               "mean": float(counts.mean()), "p99": float(np.percentile(counts, 99)),
                                               "max": int(counts.max()), "heavy_customers": len(heavy)}}
    out["copies"], out["customers"] = copies, template_customers * copies
    phase("template")
    rng = random.Random(args.seed)
    slices = [rng.uniform(0, 1) for _ in range(args.redeliveries)]
    tables = list(template)
    client = connect(url)
    try:
        migrate(client)
        out["load"] = load(client, template, copies, total, args.batch_rows, progress)
        phase("load")
        out["parts_after_load"] = {t: parts_of(client, t) for t in tables}
        out["settle"] = settle(client, tables, args.settle_seconds)
        phase("settle")
        out["redelivered_rows"] = redeliver(client, template, copies, total, slices, args.redelivery_rows)
        out["store"] = {t: parts_of(client, t) | {"duplicates_for_final": duplicates(client, t)} for t in tables}
        phase("redeliver")
    finally:
        client.close()

    customers, heavy_customers, warm = sample_customers(template_customers, copies, heavy, args, args.seed)
    metrics_runs = [None] * args.metrics_samples
    all_reads = reads()
    results: dict[str, dict] = {name: {} for name in all_reads}

    def who(read: Read) -> list:
        return customers if read.per_customer else metrics_runs

    def warmers(read: Read) -> list:
        return warm if read.per_customer else [None]

    # 2. in process, before the service: raw and named, then the investigation
    client, ro = connect(url), readonly_client(url, settings.api_query_seconds)
    try:
        for name, read in all_reads.items():
            s = series({"raw": raw_path(client, read), "named": named_path(ro, read)}, who(read), warmers(read),
                       progress, f"in process: {read.name}, raw and named")
            results[name]["raw_before"], results[name]["named_in_process"] = s["raw"], strip(s["named"])
        tl = all_reads["timeline"]
        s = series({"raw": raw_path(client, tl), "named": named_path(ro, tl)}, heavy_customers, warm, progress,
                   "in process: heavy customers' timelines")
        out["timeline_heavy"] = {"raw_before": s["raw"], "named_in_process": strip(s["named"])}
        phase("in_process")
        if not args.no_investigation:
            some = customers[:args.investigation_sample]
            out["investigation"] = {
                "timeline": investigate(client, tl, timeline_variants(tl), some, warm, progress),
                **{name: investigate(client, all_reads[name], point_variants(all_reads[name]), some, warm,
                                     progress) for name in ("customer_flags", "journeys")}}
            out["metrics_parts"] = metrics_parts(client, args.metrics_samples, progress)
            phase("investigation")
    finally:
        ro.close()
        client.close()

    # 3. the service (the only process holding the store now) and the CLI
    def through_service(service: Serve, urls: dict[str, str], with_sql: bool) -> None:
        """API look-ups through each of ``urls`` (label -> base URL), interleaved per customer, and raw SQL
        through the first one's ``POST /v1/sql``."""
        clients = {k: httpx.Client(base_url=u, timeout=settings.api_query_seconds + 30) for k, u in urls.items()}
        try:
            for c in clients.values():
                c.get("/health")
            first = next(iter(clients.values()))
            for name, read in [*all_reads.items(), ("timeline_heavy", tl)]:
                answers: dict[str, dict] = {k: {} for k in clients}
                paths = {k: api_path(c, read, answers[k]) for k, c in clients.items()}
                if with_sql:
                    paths["raw_via_sql_api"] = sql_path(first, read)
                heavy = name == "timeline_heavy"
                s = series(paths, heavy_customers if heavy else who(read), warm if heavy else warmers(read),
                           progress, f"{' and '.join(paths)}: {'heavy timelines' if heavy else read.name}")
                for k, v in s.items():
                    (out["timeline_heavy"] if heavy else results[name])[k] = strip(v)
                if with_sql and not heavy and read.per_customer:
                    api_answers[name] = answers[next(iter(clients))]
                if len(clients) > 1:  # do the services answer alike?
                    first_answers, *others = answers.values()
                    (out["timeline_heavy"] if heavy else results[name])["same_answers"] = all(
                        other == first_answers for other in others)
                service.check()
        finally:
            for c in clients.values():
                c.close()

    api_answers: dict[str, dict] = {}
    service = Serve(settings, tmp / "serve.log", [sys.executable, "-m", "services", "serve"]).start()
    try:
        out["service_up_s"] = service.up_s
        through_service(service, {"api": service.url}, True)
        out["service_memory"] = h.memory(service.pid)
        phase("service")
        out["cli"] = {"help": cli_series(settings, [["--help"]] * 5, progress, "CLI: omnitrail --help", False),
                      "python_startup": cli_series(settings, [[]] * 5, progress, "CLI: python -c pass", False,
                                                   command=[sys.executable, "-c", "pass"]),
                      "imports": import_times(settings)}
        for name, read in all_reads.items():
            n = args.cli_samples if name == "timeline" else max(1, args.cli_samples // 2)
            runs = [read.cli(c) for c in (customers[:n] if read.per_customer else [None] * args.cli_metrics_samples)]
            results[name]["cli"] = cli_series(settings, runs, progress, f"CLI: omnitrail {' '.join(runs[0][:1])}")
        service.check()
        phase("cli")
    finally:
        service.stop()
    if not args.no_recommended:
        port = free_port()
        service = Serve(settings, tmp / "serve-recommended.log",
                        [sys.executable, "-m", "bench.reads", "--serve-recommended", str(port)]).start()
        try:
            through_service(service, {"api_same_process": service.url,
                                      "api_recommended": f"http://{settings.api_host}:{port}"}, False)
            service.check()
        finally:
            service.stop()
        out["recommended_changes"] = {"read-only connections": RECOMMENDED_SETTINGS}
        phase("service_recommended")

    # 4. in process again: the raw baseline after the service
    client = connect(url)
    try:
        for name, read in all_reads.items():
            s = series({"raw": raw_path(client, read)}, who(read), warmers(read), progress,
                       f"in process: {read.name}, raw (after)")
            results[name]["raw_after"] = s["raw"]
            results[name]["raw"] = pooled(results[name]["raw_before"], s["raw"])
            for k in ("raw_before", "raw_after"):
                results[name][k] = strip(results[name][k])
        s = series({"raw": raw_path(client, tl)}, heavy_customers, warm, progress, "in process: heavy, raw (after)")
        out["timeline_heavy"]["raw"] = pooled(out["timeline_heavy"]["raw_before"], s["raw"])
        out["timeline_heavy"]["raw_before"] = strip(out["timeline_heavy"]["raw_before"])
        out["timeline_heavy"]["raw_after"] = strip(s["raw"])
        for name, answers in api_answers.items():
            results[name]["answers_as_one_query"] = as_one_query(client, all_reads[name], answers)
        phase("raw_after")

        # 5. alternative timeline tables with the same rows
        if not args.no_variants:
            out["variants"] = variants(client, template, copies, total, slices, args, customers, warm, progress)
            phase("variants")
    finally:
        client.close()

    out["reads"] = results
    out["customers_sample"], out["heavy_sample"] = len(customers), len(heavy_customers)
    tl_result = results["timeline"]
    out["ratio"] = tl_result["api"]["p99_ms"] / tl_result["raw"]["p99_ms"]
    out["target_ratio"] = TARGET_RATIO
    return out


# --- alternative timeline tables -----------------------------------------------------------------------------------
VARIANTS = {"index_granularity = 8192 (as now)": 8192, "index_granularity = 1024": 1024}


def with_granularity(engine: str, granularity: int) -> str:
    if "index_granularity =" in engine:
        return re.sub(r"index_granularity = \d+", f"index_granularity = {granularity}", engine)
    return f"{engine} SETTINGS index_granularity = {granularity}"


def variants(client, template: dict[str, pa.Table], copies: int, total: dict[str, int], slices: list[float], args,
             customers: list, warm: list, progress: Progress) -> dict:
    """The timeline's rows copied into tables that differ only in ``VARIANTS`` (index granularity), each merged to
    one part (``OPTIMIZE FINAL``: no duplicates left), then the same re-delivered slices inserted and merges stopped.
    Both then hold the same parts (one merged part plus the re-deliveries), so the look-ups compare the layouts, not
    the luck of background merges."""
    engine = client.query("SELECT engine_full FROM system.tables WHERE database = currentDatabase() "
                          "AND name = 'timeline'").result_rows[0][0]
    out: dict = {"timeline_engine": engine, "tables": {}}
    tl = reads()["timeline"]
    tables = {}
    for k, (label, granularity) in enumerate(VARIANTS.items()):
        table = tables[label] = f"timeline_variant_{k}"
        task = progress.add_task(f"variant table {label}: copy, OPTIMIZE FINAL, re-deliveries", total=None)
        t0 = time.perf_counter()
        client.command(f"DROP TABLE IF EXISTS {table} SYNC")
        client.command(f"CREATE TABLE {table} AS timeline ENGINE = {with_granularity(engine, granularity)}")
        client.command(f"INSERT INTO {table} SELECT * FROM timeline")
        client.command(f"OPTIMIZE TABLE {table} FINAL")
        client.command(f"SYSTEM STOP MERGES {table}")
        redeliver(client, template, copies, total, slices, args.redelivery_rows, into={"timeline": table},
                  tables=["timeline"])
        out["tables"][label] = {"table": table, "engine": with_granularity(engine, granularity),
                                "build_s": round(time.perf_counter() - t0, 1),
                                "store": parts_of(client, table) | {"duplicates_for_final": duplicates(client, table)}}
        progress.update(task, total=1, completed=1)
    keep = ("raw: no FINAL", "FINAL", "FINAL PREWHERE customer_id = c")
    both = {f"{label}: {n}": v for label, table in tables.items()
            for n, v in timeline_variants(tl, table).items() if n in keep}
    out["lookups"] = investigate(client, tl, both, customers, warm, progress, f"{next(iter(VARIANTS))}: FINAL")
    for table in tables.values():
        client.command(f"DROP TABLE {table} SYNC")
    return out


# --- results ---------------------------------------------------------------------------------------------------------
def _ms(s: dict | None) -> str:
    return "" if not s else f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f}"


def target_rows(result: dict) -> list[dict]:
    rows_label = f"{result.get('rows', 0):,} timeline rows"
    if "error" in result:
        why = "FAILED: " + result["error"].splitlines()[0][:120]
        return [targets._row(f"{FIGURE_PREFIX}: timeline API p99 vs raw chdb point query p99 ({rows_label})",
                             text=why, target=f"ratio <= {TARGET_RATIO:g}"),
                targets._row(f"{FIGURE_PREFIX}: omnitrail --help, median s", text=why,
                             target=f"<= {HELP_TARGET_S} s"),
                targets._row(f"{FIGURE_PREFIX}: omnitrail timeline C --json via the service, median s", text=why,
                             target=f"<= {CLI_TIMELINE_TARGET_S} s")]
    r = result["reads"]
    tl = r["timeline"]
    rows = [targets._row(
        f"{FIGURE_PREFIX}: GET /v1/timeline/{{c}} p99 (p50) ms vs raw chdb point query, same run ({rows_label}, "
        f"{result['customers_sample']} customers)", tl["api"]["p99_ms"], tl["raw"]["p99_ms"], result["ratio"],
        f"ratio <= {TARGET_RATIO:g}", result["ratio"] <= TARGET_RATIO,
        text=f"{tl['api']['p99_ms']:.1f} ({tl['api']['p50_ms']:.1f})",
        baseline_text=f"{tl['raw']['p99_ms']:.1f} ({tl['raw']['p50_ms']:.1f})", unit="ms")]
    if rec := tl.get("api_recommended"):
        ratio = rec["p99_ms"] / tl["raw"]["p99_ms"]
        same = tl["api_same_process"]
        rows.append(targets._row(
            f"{FIGURE_PREFIX}: the same with {', '.join(f'{k}={v}' for k, v in RECOMMENDED_SETTINGS.items())} on "
            f"the read connections (what-if server; unchanged app in the same process: p99 {same['p99_ms']:.1f}, "
            f"p50 {same['p50_ms']:.1f})", rec["p99_ms"], tl["raw"]["p99_ms"], ratio,
            f"report (target ratio <= {TARGET_RATIO:g})", text=f"{rec['p99_ms']:.1f} ({rec['p50_ms']:.1f})",
            baseline_text=f"{tl['raw']['p99_ms']:.1f} ({tl['raw']['p50_ms']:.1f})", unit="ms"))
    for name, label in (("customer_flags", "GET /v1/customer_flags/{c}"), ("journeys", "GET /v1/journeys/{c}"),
                        ("metrics", f"GET /v1/metrics?days={METRICS_DAYS}")):
        x = r[name]
        rows.append(targets._row(f"{FIGURE_PREFIX}: {label} p99 (p50) ms vs raw (metrics: its SQL without FINAL)",
                                 x["api"]["p99_ms"], x["raw"]["p99_ms"], x["api"]["p99_ms"] / x["raw"]["p99_ms"],
                                 text=f"{x['api']['p99_ms']:.1f} ({x['api']['p50_ms']:.1f})",
                                 baseline_text=f"{x['raw']['p99_ms']:.1f} ({x['raw']['p50_ms']:.1f})", unit="ms"))
    help_s, cli_tl = result["cli"]["help"]["median_s"], tl["cli"]["median_s"]
    rows.append(targets._row(f"{FIGURE_PREFIX}: omnitrail --help, median of {result['cli']['help']['n']} (s)", help_s,
                             target=f"<= {HELP_TARGET_S} s", met=help_s <= HELP_TARGET_S, text=f"{help_s:.2f}"))
    rows.append(targets._row(f"{FIGURE_PREFIX}: omnitrail timeline C --json via the running service, median of "
                             f"{tl['cli']['n']} (s)", cli_tl, target=f"<= {CLI_TIMELINE_TARGET_S} s",
                             met=cli_tl <= CLI_TIMELINE_TARGET_S, text=f"{cli_tl:.2f}"))
    return rows


def merge_latest(result: dict) -> dict:
    """Put the reads result and its target rows into ``latest.json`` (other parts left as they are)."""
    return h.merge_latest("reads", result, target_rows(result), FIGURE_PREFIX + ":")


def report(r: dict) -> list[Table]:
    store = r["store"]["timeline"]
    t = Table(title=f"omnitrail reads bench: {r['rows']:,} timeline rows ({store['parts']} parts, "
                    f"{store['duplicates_for_final']:,} duplicates for FINAL), {r['customers']:,} customers. "
                    f"ms p50 / p99 over {r['customers_sample']} customers (metrics: "
                    f"{r['reads']['metrics']['api']['n']} runs); ratio = p99 / raw p99", title_justify="left")
    for name in ("read (rows p50 / max)", "raw in process", "named in process", "raw via /v1/sql", "API",
                 "ratio", "what-if: as is", "what-if: recommended", "ratio "):
        t.add_column(name, justify="left" if name.startswith("read") else "right")

    def ratio(x: dict, key: str, target: bool) -> str:
        if not x.get(key):
            return ""
        value = x[key]["p99_ms"] / x["raw"]["p99_ms"]
        return f"{value:.2f}" + (f" ({'met' if value <= TARGET_RATIO else 'NOT met'})" if target else "")

    hv = r["timeline_heavy"]
    for name, x in [*r["reads"].items(), (f"timeline, {r['heavy_sample']} heavy", hv)]:
        t.add_row(f"{name} ({x['api']['rows_p50']} / {x['api']['rows_max']})", _ms(x["raw"]),
                  _ms(x["named_in_process"]), _ms(x["raw_via_sql_api"]), _ms(x["api"]),
                  ratio(x, "api", name == "timeline"), _ms(x.get("api_same_process")), _ms(x.get("api_recommended")),
                  ratio(x, "api_recommended", name == "timeline"))
    tl = r["reads"]["timeline"]
    t.add_section()
    t.add_row("timeline raw: before / after the services", _ms(tl["raw_before"]), "", "", _ms(tl["raw_after"]),
              *[""] * 4)
    same = {name: x["same_answers"] for name, x in [*r["reads"].items(), ("timeline heavy", hv)] if "same_answers" in x}
    if same:
        t.add_row("what-if: recommended answers = as-is answers", *[""] * 6,
                  ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()), "")
    checked = {name: x["answers_as_one_query"] for name, x in r["reads"].items() if "answers_as_one_query" in x}
    if checked:
        t.add_row("API answers = one query resolving the subjects (customers with rows under an identifier)", "", "",
                  "", ", ".join(f"{k} {'yes' if v['same'] else 'NO'} ({v['with_rows_under_identifiers']})"
                                for k, v in checked.items()), *[""] * 4)
    cli = r["cli"]
    c = Table(title="CLI against the running service: seconds per process, median (max)", title_justify="left")
    for name in ("command", "runs", "median (max) s", "target"):
        c.add_column(name, justify="left" if name == "command" else "right")
    c.add_row("python -c pass (interpreter start-up)", str(cli["python_startup"]["n"]),
              f"{cli['python_startup']['median_s']:.2f} ({cli['python_startup']['max_ms'] / 1000:.2f})", "")
    c.add_row("omnitrail --help", str(cli["help"]["n"]),
              f"{cli['help']['median_s']:.2f} ({cli['help']['max_ms'] / 1000:.2f})", f"<= {HELP_TARGET_S}")
    for name, x in r["reads"].items():
        argv = "timeline C --json" if name == "timeline" else {"customer_flags": "flags --customer C --json",
                                                              "journeys": "journeys C --json"}.get(
                                                                  name, f"metrics --days {METRICS_DAYS} --json")
        c.add_row(f"omnitrail {argv}", str(x["cli"]["n"]),
                  f"{x['cli']['median_s']:.2f} ({x['cli']['max_ms'] / 1000:.2f})",
                  f"<= {CLI_TIMELINE_TARGET_S}" if name == "timeline" else "")
    imports = cli["imports"]
    c.add_row("python -X importtime -c 'import services.cli': all imports", "1", f"{imports['total_s']:.2f}", "")
    c.add_row(escape("  of which (cumulative): " + ", ".join(f"{k} {v:.2f}" for k, v in imports["modules_s"].items())),
              "", "", "")
    tables = [t, c]
    if inv := r.get("investigation"):
        v = Table(title="investigation (in process, the same customers, interleaved): ms p50 / p99; same rows as the "
                        "FINAL query for every customer (named-query variants: as the one query resolving the "
                        "subjects; its first statement alone also holds rows of identifiers the customer no longer "
                        "has, left out after); EXPLAIN indexes=1 of the median customer: parts and granules "
                        "the primary key selected, customer filter as PREWHERE", title_justify="left")
        for name in ("query", "variant", "ms p50 / p99", "same rows", "parts", "granules", "PREWHERE"):
            v.add_column(name, justify="left" if name in ("query", "variant") else "right")
        variant = r.get("variants")
        for q, found in [*inv.items(), *([("tables: 1 merged part + re-deliveries", variant["lookups"])]
                                          if variant else [])]:
            for name, x in found.items():
                same = "" if x["same_rows"] is None else "yes" if x["same_rows"] else "no"
                v.add_row(q, escape(name), _ms(x["latency"]), same, x.get("explain_parts") or "-",
                          x.get("explain_granules") or "-", "" if "explain_prewhere" not in x else
                          "yes" if x["explain_prewhere"] else "no")
            v.add_section()
        tables.append(v)
    if (parts := r.get("metrics_parts")) and "skipped" not in parts:
        m = Table(title=f"metrics (days={METRICS_DAYS}): each part of its UNION ALL alone, in process, ms (median of "
                        f"{next(iter(parts.values()))['runs']})", title_justify="left")
        m.add_column("part")
        m.add_column("ms", justify="right")
        for name, x in parts.items():
            m.add_row(escape(name), f"{x['median_ms']:,.0f}")
        tables.append(m)
    return tables


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reads", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="timeline rows in the store (10000000)")
    parser.add_argument("--customers-sample", type=int, default=200, help="customers looked up per path (200)")
    parser.add_argument("--heavy-sample", type=int, default=20, help="heavy customers' timelines looked up (20)")
    parser.add_argument("--investigation-sample", type=int, default=100,
                        help="customers of the sample looked up per investigated variant (100)")
    parser.add_argument("--metrics-samples", type=int, default=3, help="metrics queries per path (3)")
    parser.add_argument("--cli-samples", type=int, default=20,
                        help="CLI runs of the timeline (20; flags and journeys half as many)")
    parser.add_argument("--cli-metrics-samples", type=int, default=3, help="CLI runs of metrics (3)")
    parser.add_argument("--template-customers", type=int, default=0,
                        help="customers of the template (default: rows / 300, between 200 and 3000)")
    parser.add_argument("--batch-rows", type=int, default=250_000, help="timeline rows per insert (250000)")
    parser.add_argument("--redeliveries", type=int, default=5, help="log slices inserted twice (5)")
    parser.add_argument("--redelivery-rows", type=int, default=20_000, help="timeline rows per slice (20000)")
    parser.add_argument("--settle-seconds", type=float, default=150, help="longest wait for merges to settle (150)")
    parser.add_argument("--no-investigation", action="store_true", help="skip the timeline/flags/journeys variants")
    parser.add_argument("--no-variants", action="store_true", help="skip the alternative timeline tables")
    parser.add_argument("--no-recommended", action="store_true",
                        help="skip the service run with the recommended changes applied")
    parser.add_argument("--serve-recommended", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (store, service log)")
    args = parser.parse_args(argv)
    if args.serve_recommended:
        serve_recommended(args.serve_recommended)
        return 0
    if args.rows < 1000 or args.customers_sample < 1 or args.batch_rows < 1000:
        parser.error("--rows and --batch-rows must be at least 1000, --customers-sample at least 1")
    return h.recorded_run("reads", lambda tmp, progress: bench(args, tmp, progress), {"rows": args.rows},
                          args.keep, merge_latest, report, console)


if __name__ == "__main__":
    raise SystemExit(main())
