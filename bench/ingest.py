"""HTTP ingest benchmark: events/s through ``POST /v1/events`` in batches of 100 against a raw produce baseline in the
same run, and the latency of single-event requests.

    python -m bench.ingest [--events N] [--concurrency C] [--repeats R] [--in-process] [--profile]

Method. R cycles (default 3), each on a fresh noida-db broker (topics created with ``services.topics.ensure_topics``)
with N realistic validated events (``bench.workload.build_events``, 21 types over all 11 channels, fixed seed; each
phase gets the same events under its own event ids). The figures are those of the cycle with the median ratio; every
cycle's ratio is in the table and the JSON (one cycle's ratio swings by up to ~1.5x on this shared 2-core machine).

* **raw produce**: the events pre-encoded with ``schemas.codec.encode`` in the settings' event mode and produced to
  their channel topics by a bare producer from ``consumers.kafka.producer`` configured like the service's (idempotent,
  ``acks=all``, ``linger.ms=5``), waiting for every acknowledgement. Run once before and once after the HTTP phase;
  the baseline is their mean (the broker holds more data the later a phase runs, and noida-db's saves cost in
  proportion to the data it holds).
* **HTTP ingest**: the real service as ``omnitrail serve`` in a subprocess (``--in-process``: ``HttpServer`` in a
  thread of the bench process instead), with a write key for every channel. C client threads (default 16: many
  channel systems posting at once), each with its own keep-alive ``http.client`` connection (the lightest client:
  it shares the 2 cores with the server and the broker, and httpx cost ~9 µs of CPU per event), POST the events
  as ``application/cloudevents-batch+json`` batches of 100 (bodies serialized with orjson before the clock starts);
  every answer must be 202 with ``accepted == 100``.
* **single events**: one client POSTs single structured events (``application/cloudevents+json``) one after the
  other; p50/p99/max of the request time.

Afterwards the channel topics' end offsets must add up to every event sent (raw runs, HTTP batches, singles and
warm-ups). Ratio = HTTP events/s / raw events/s (target >= 0.25). Load-independent companions: the server's CPU
µs per event (all its threads, from ``/proc``) beside the raw producer's, and how long the server was runnable but
waiting for a CPU (``schedstat``: other load on the machine). ``--profile`` samples the server with
``py-spy record --gil --nonblocking`` during the timed HTTP phase (subprocess server only) and attributes the samples
to the service's steps (validation, encode, publish, ...); the run is marked ``profiled``.

Results: a table on stdout, JSON in ``bench/results/ingest-<UTC time>.json`` and ``ingest-latest.json``, and the
``ingest`` key plus the ingest target rows merged into ``bench/results/latest.json``. The broker and the server
are stopped on exit, errors and Ctrl-C (or SIGTERM) included.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import orjson
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from bench import harness as h
from bench import summary as targets
from bench.workload import build_events
from consumers import kafka
from schemas.channels import Channel
from schemas.codec import BATCH_CONTENT_TYPE, STRUCTURED_CONTENT_TYPE, Record, encode
from schemas.envelope import Event
from services.credentials import Credentials
from services.settings import Settings
from services.stack import free_port
from services.topics import ensure_topics

RESULTS = Path(__file__).parent / "results"
BATCH = 100
TARGET_RATIO = 0.25
FIGURE_PREFIX = "HTTP ingest"
console = Console(width=None if sys.stdout.isatty() else 150)


# --- raw produce --------------------------------------------------------------------------------------------------
def service_producer(settings: Settings):
    """A producer configured like the service's (``services.http.ingest.Ingest``)."""
    return kafka.producer(settings.kafka_bootstrap, **{"delivery.timeout.ms": 10_000})


def produce_raw(settings: Settings, records: list[tuple[str, Record]], warm: list[tuple[str, Record]],
                progress: Progress, label: str) -> dict:
    """Produce pre-encoded records, wait for every acknowledgement; the seconds after a flushed warm-up."""
    producer = service_producer(settings)
    errors = h.produce_all(producer, warm)
    task = progress.add_task(label, total=len(records))
    t0, cpu0 = time.perf_counter(), h.cpu_seconds(os.getpid())
    errors += h.produce_all(producer, h.ticking(records, progress, task, 5000))
    seconds, cpu = time.perf_counter() - t0, h.cpu_seconds(os.getpid()) - cpu0
    if errors:
        raise RuntimeError(f"raw produce: {len(errors)} errors (first: {errors[0]})")
    return {"events": len(records), "seconds": seconds, "events_per_s": len(records) / seconds,
            "bench_cpu_us_per_event": cpu / len(records) * 1e6}


# --- the service ----------------------------------------------------------------------------------------------------
def settings_env(settings: Settings) -> dict[str, str]:
    """The OMNITRAIL_ environment that rebuilds ``settings`` in another process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNITRAIL_")}
    for name, value in settings.model_dump(mode="json", exclude={"store_url"}, exclude_none=True).items():
        env[f"OMNITRAIL_{name.upper()}"] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return env


class Service:
    """The HTTP service: ``omnitrail serve`` as a subprocess, or ``HttpServer`` in a thread of this process."""

    def __init__(self, settings: Settings, log: Path, in_process: bool):
        self.settings, self.log, self.in_process = settings, log, in_process
        self.proc: subprocess.Popen | None = None
        self.server = None
        self.url = settings.api_url
        self.up_s = 0.0

    @property
    def pid(self) -> int:
        return os.getpid() if self.in_process else self.proc.pid

    def start(self, timeout: float = 60.0) -> Service:
        t0 = time.perf_counter()
        if self.in_process:
            from services.http.app import create_app
            from services.http.server import HttpServer
            self.server = HttpServer(create_app(self.settings), self.settings.api_host, self.settings.api_port).start()
            self.url = self.server.url
        else:
            self.proc = h.start_service([sys.executable, "-m", "services", "serve"], settings_env(self.settings),
                                        self.log, self.url, timeout)
        self.up_s = time.perf_counter() - t0
        return self

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"omnitrail serve exited with code {self.proc.returncode}:\n{h.log_excerpt(self.log)}")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def batch_bodies(events: list[Event]) -> list[bytes]:
    return [orjson.dumps([e.model_dump(mode="json", exclude_none=True) for e in events[i:i + BATCH]])
            for i in range(0, len(events), BATCH)]


def client(url: str, secret: str, content_type: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, headers={"authorization": f"Bearer {secret}",
                                                           "content-type": content_type})


def post_batches(url: str, secret: str, bodies: list[bytes], sizes: list[int], concurrency: int,
                 progress: Progress | None, label: str) -> dict:
    """POST the bodies from ``concurrency`` threads (each its own keep-alive client, bodies dealt round-robin);
    every answer must be 202 accepting the whole batch."""
    task = progress.add_task(label, total=sum(sizes)) if progress else None
    latencies: list[float] = []
    failures: list[str] = []
    start = threading.Barrier(concurrency + 1)
    address = httpx.URL(url)
    headers = {"authorization": f"Bearer {secret}", "content-type": BATCH_CONTENT_TYPE}

    def run(k: int) -> None:
        mine = []
        conn = http.client.HTTPConnection(address.host, address.port, timeout=60)
        try:
            conn.request("GET", "/health")  # connect before the clock starts
            conn.getresponse().read()
            start.wait()
            for body, size in zip(bodies[k::concurrency], sizes[k::concurrency]):
                t0 = time.perf_counter()
                try:
                    conn.request("POST", "/v1/events", body, headers)
                    resp = conn.getresponse()
                    content = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")
                    return
                mine.append(time.perf_counter() - t0)
                if resp.status != 202 or orjson.loads(content).get("accepted") != size:
                    failures.append(f"{resp.status}: {content[:300]!r}")
                    return
                if progress:
                    progress.advance(task, size)
        finally:
            conn.close()
        latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(k,), name=f"client-{k}", daemon=True) for k in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if failures:
        raise RuntimeError(f"{label}: {len(failures)} request(s) failed, first: {failures[0]}")
    n = sum(sizes)
    return {"events": n, "requests": len(bodies), "seconds": seconds, "events_per_s": n / seconds,
            "requests_per_s": len(bodies) / seconds, "concurrency": concurrency,
            "request_ms": h.summary(latencies)}


def post_singles(url: str, secret: str, events: list[Event], progress: Progress) -> dict:
    bodies = [orjson.dumps(e.model_dump(mode="json", exclude_none=True)) for e in events]
    task = progress.add_task("HTTP: single events, one at a time", total=len(bodies))
    latencies = []
    with client(url, secret, STRUCTURED_CONTENT_TYPE) as c:
        c.get("/health")
        for body in bodies:
            t0 = time.perf_counter()
            resp = c.post("/v1/events", content=body)
            latencies.append(time.perf_counter() - t0)
            if resp.status_code != 202 or orjson.loads(resp.content).get("accepted") != 1:
                raise RuntimeError(f"single event: {resp.status_code}: {resp.text[:300]}")
            progress.advance(task)
    return {"events": len(bodies), **h.summary(latencies)}


# --- profile ----------------------------------------------------------------------------------------------------------
# Where the server's samples go. A sample counts for the first of the service's own steps found on its stack (scanning
# from the leaf up); a sample in none of them for the first framework part found the same way.
STEPS = [
    ("validation: read_events -> wire.decode_http (msgspec) or from_http (pydantic)",
     r"^(read_events|decode_http|from_http|parse_event) \("),
    ("encode: Ingest.records -> schemas.codec.encode", r"^(Ingest\.records|encode) \(.*(ingest|codec)\.py"),
    ("publish: producer.produce + futures (Ingest.publish)", r"^Ingest\.publish \("),
    ("delivery reports: poller thread -> call_soon_threadsafe",
     r"^(Ingest\._poll|Ingest\.publish\.<locals>\.report) \("),
    ("admit + write key (EventResult per event, auth)",
     r"^(admit|Auth\.write_key|Credentials\.\w+|WriteKey\.refusal) \("),
    ("read_body (request stream)", r"^read_body \("),
    ("response: IngestResult validate + serialize", r"^(serialize_response|_prepare_response_content|"
                                                    r"jsonable_encoder|JSONResponse\.\w+|\w*Response\.render) \("),
]
FRAMEWORK = [
    ("uvicorn + h11 (HTTP parsing, ASGI glue)", r"\((h11|uvicorn)/"),
    ("asyncio event loop (selectors, handles, futures)", r"\((asyncio|selectors)[/.]"),
    ("FastAPI / Starlette / anyio (routing, middleware, DI)", r"\((fastapi|starlette|anyio)/|services/http/app\.py"),
]


def profile_summary(raw_path: Path, top: int = 15) -> dict:
    """Collapsed py-spy stacks (``--gil``: only the thread holding the GIL is sampled) -> share of samples per step
    of the service (see ``STEPS``), per thread and per function (inclusive and self)."""
    cats: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    threads: collections.Counter = collections.Counter()
    total = 0
    steps = [(name, re.compile(p)) for name, p in STEPS]
    framework = [(name, re.compile(p)) for name, p in FRAMEWORK]
    for line in raw_path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        n = int(count)
        thread, *frames = stack.split(";")
        total += n
        threads[thread.partition(": ")[2] or thread] += n
        for f in set(frames):
            inclusive[f] += n
        if frames:
            own[frames[-1]] += n
        leaf_up = frames[::-1]
        cats[next((name for f in leaf_up for name, p in steps if p.search(f)), None)
             or next((name for f in leaf_up for name, p in framework if p.search(f)), "other")] += n
    share = lambda c, k=None: {name: round(v / total * 100, 1) for name, v in c.most_common(k)}  # noqa: E731
    return {"samples": total, "gil_only": True, "steps_pct": share(cats), "threads_pct": share(threads),
            "top_inclusive_pct": share(inclusive, top), "top_self_pct": share(own, top)}


def schedstat(pid: int) -> tuple[float, float]:
    """Seconds on a CPU and seconds runnable but waiting for one, all threads of ``pid`` (``schedstat``)."""
    run = wait = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError):
            fields = Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()
            run, wait = run + int(fields[0]), wait + int(fields[1])
    return run / 1e9, wait / 1e9


@contextlib.contextmanager
def profiled(pid: int, out: Path, rate: int = 100):
    """py-spy record (collapsed stacks; it pauses the process for each sample) of ``pid`` while the block runs."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise RuntimeError("--profile needs py-spy: pip install py-spy (or make setup, whose test extra has it)")
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", str(rate), "--nonblocking", "--gil",
                             "--threads", "--format", "raw", "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    time.sleep(1.0)  # attach
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if not out.exists():
            raise RuntimeError(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}")


# --- the run ----------------------------------------------------------------------------------------------------------
def end_offsets(settings: Settings) -> int:
    return sum(h.topic_records(settings, topic) for topic in settings.channel_topics)


def bench(args, tmp: Path, progress: Progress) -> dict:
    """``--repeats`` cycles, each on a fresh broker; the figures of the cycle with the median ratio, and every
    cycle's ratio (one cycle's ratio swings by up to ~1.5x with whatever else the 2 cores are doing)."""
    n = args.events - args.events % BATCH
    task = progress.add_task("build + validate events", total=n)
    events = list(h.ticking(build_events(n, args.customers, id_prefix="bench"), progress, task, 5000))
    cycles = [cycle(args, events, tmp / f"cycle-{i}", progress) for i in range(args.repeats)]
    median = sorted(cycles, key=lambda c: c["ratio"])[len(cycles) // 2]
    return median | {"repeats": len(cycles), "cycle_ratios": [round(c["ratio"], 3) for c in cycles],
                     "cycle_http_events_per_s": [round(c["http_events_per_s"]) for c in cycles],
                     "cycle_raw_events_per_s": [round(c["raw_events_per_s"]) for c in cycles]}


def cycle(args, events: list[Event], tmp: Path, progress: Progress) -> dict:
    """Raw produce, HTTP ingest, single events and raw produce again, on one fresh broker."""
    tmp.mkdir(parents=True)
    n, warm_n = len(events), BATCH * 2
    warm = {p: list(build_events(warm_n, args.customers, seed=3, id_prefix=f"bench-warm-{p}"))
            for p in ("raw1", "http", "raw2")}
    singles = list(build_events(args.singles, args.customers, seed=5, id_prefix="bench-single"))
    out: dict = {"events": n, "batch": BATCH, "concurrency": args.concurrency, "customers": args.customers,
                 "server": "in-process (HttpServer thread)" if args.in_process else "subprocess (omnitrail serve)"}
    with h.fresh_broker(tmp / "broker") as broker:
        settings = Settings(state_dir=tmp / "state", kafka_bootstrap=broker.bootstrap,
                            clickhouse_url=f"chdb://{tmp / 'store'}", api_port=free_port(), api_host="127.0.0.1",
                            api_require_tokens=False)
        out["event_mode"] = settings.event_mode
        ensure_topics(settings)
        sent = 0

        def raw(phase: str, label: str) -> dict:
            nonlocal sent
            t0 = time.perf_counter()  # the same events under their own ids in each phase
            records = [(settings.channel_topic(e.channel),
                        encode(e.model_copy(update={"id": f"{phase}-{e.id}"}), settings.event_mode)) for e in events]
            encode_s = time.perf_counter() - t0
            warm_records = [(settings.channel_topic(e.channel), encode(e, settings.event_mode)) for e in warm[phase]]
            settle = h.wait_quiet(broker)
            meter = h.CpuMeter({"broker": broker.pid(), "bench": os.getpid()})
            result = produce_raw(settings, records, warm_records, progress, label) | meter.stop()
            sent += len(records) + len(warm_records)
            return {**result, "encode_s": encode_s, "encode_events_per_s": len(records) / encode_s,
                    "broker_settle_s": settle, "broker_data_mib": h.broker_data_mib(broker)}

        out["raw_before"] = raw("raw1", "raw produce (before)")
        _, secret = Credentials(settings.credentials_path).create_key([c.value for c in Channel], "/")
        service = Service(settings, tmp / "serve.log", args.in_process).start()
        try:
            out["server_up_s"] = service.up_s
            bodies = batch_bodies([e.model_copy(update={"id": f"http-{e.id}"}) for e in events])
            sizes = [BATCH] * len(bodies)  # n is a multiple of BATCH
            out["batch_body_bytes_mean"] = sum(map(len, bodies)) / len(bodies)
            warm_bodies = batch_bodies(warm["http"])
            post_batches(service.url, secret, warm_bodies, [BATCH] * len(warm_bodies), 1, None, "warm-up")
            sent += warm_n
            settle = h.wait_quiet(broker)
            pids = {"broker": broker.pid(), "bench": os.getpid()} | ({} if args.in_process else
                                                                     {"server": service.pid})
            meter = h.CpuMeter(pids)
            threads0 = {} if args.in_process else h.thread_cpu(service.pid)
            sched0 = None if args.in_process else schedstat(service.pid)
            label = f"HTTP: batches of {BATCH}, {args.concurrency} client(s)"
            profile_raw = tmp / "profile.txt"
            with profiled(service.pid, profile_raw) if args.profile and not args.in_process \
                    else contextlib.nullcontext():
                http = post_batches(service.url, secret, bodies, sizes, args.concurrency, progress, label)
            out["http"] = http | meter.stop() | {"broker_settle_s": settle}
            out["http"]["profiled"] = bool(args.profile and not args.in_process)
            if not args.in_process:
                run_s, wait_s = (b - a for a, b in zip(sched0, schedstat(service.pid)))
                out["http"]["server_on_cpu_pct"] = run_s / http["seconds"] * 100
                out["http"]["server_runnable_waiting_pct"] = wait_s / http["seconds"] * 100
                used = {k: v - threads0.get(k, 0.0) for k, v in h.thread_cpu(service.pid).items()}
                out["http"]["server_cpu_us_per_event"] = sum(used.values()) / n * 1e6
                out["http"]["server_threads_cpu_us_per_event"] = {
                    k: round(v / n * 1e6, 1) for k, v in sorted(used.items(), key=lambda kv: -kv[1]) if v > 0}
            sent += n
            service.check()
            if args.profile and not args.in_process:
                out["profile"] = profile_summary(profile_raw)
                if args.profile_out:
                    shutil.copy(profile_raw, args.profile_out)
            settle = h.wait_quiet(broker)
            out["single"] = post_singles(service.url, secret, singles, progress) | {"broker_settle_s": settle}
            sent += len(singles)
            service.check()
        finally:
            service.stop()
        out["raw_after"] = raw("raw2", "raw produce (after)")
        offsets = end_offsets(settings)
        out["verify"] = {"events_sent": sent, "channel_end_offsets": offsets, "ok": offsets == sent}
        if offsets != sent:
            raise RuntimeError(f"the channel topics hold {offsets:,} records; {sent:,} events were acknowledged")
    raw_rates = [out["raw_before"]["events_per_s"], out["raw_after"]["events_per_s"]]
    out["raw_events_per_s"] = sum(raw_rates) / 2
    out["http_events_per_s"] = out["http"]["events_per_s"]
    out["ratio"] = out["http_events_per_s"] / out["raw_events_per_s"]
    out["target_ratio"] = TARGET_RATIO
    return out


def target_rows(result: dict) -> list[dict]:
    if "error" in result:
        why = "FAILED: " + result["error"].splitlines()[0][:120]
        return [targets._row(f"{FIGURE_PREFIX}: POST /v1/events, batches of {BATCH}, events/s vs raw produce",
                             text=why, target=f"ratio >= {TARGET_RATIO}"),
                targets._row(f"{FIGURE_PREFIX}: single-event request p99 (p50) ms", text=why)]
    single = result["single"]
    return [
        targets._row(f"{FIGURE_PREFIX}: POST /v1/events, batches of {BATCH} ({result['concurrency']} clients, "
                     f"{result['server'].split(' ')[0]} server, median of {result['repeats']} cycles), events/s vs raw "
                     "produce (same cycle)",
                     result["http_events_per_s"], result["raw_events_per_s"], result["ratio"],
                     f"ratio >= {TARGET_RATIO}", result["ratio"] >= TARGET_RATIO, unit="/s"),
        targets._row(f"{FIGURE_PREFIX}: single-event request p99 (p50) ms, {single['events']} sequential",
                     single["p99_ms"], text=f"{single['p99_ms']:.1f} ({single['p50_ms']:.1f})", unit="ms"),
    ]


def merge_latest(result: dict) -> dict:
    """Put the ingest result and its target rows into ``latest.json`` (other parts left as they are)."""
    return h.merge_latest("ingest", result, target_rows(result), FIGURE_PREFIX)


def report(r: dict) -> Table:
    t = Table(title=f"omnitrail HTTP ingest bench: {r['events']:,} events, {r['server']}, event mode "
                    f"{r['event_mode']}")
    for name in ("measure", "HTTP ingest", "raw produce", "ratio"):
        t.add_column(name, justify="right" if name != "measure" else "left")
    http, before, after = r["http"], r["raw_before"], r["raw_after"]
    t.add_row(f"events/s (batches of {BATCH}, {r['concurrency']} clients; raw: mean of before/after)",
              f"{r['http_events_per_s']:,.0f}", f"{r['raw_events_per_s']:,.0f}",
              f"{r['ratio']:.3f} (target >= {TARGET_RATIO}: {'met' if r['ratio'] >= TARGET_RATIO else 'NOT met'})")
    t.add_row(f"ratio of each of the {r['repeats']} cycles (fresh broker each; the median cycle is shown)",
              " / ".join(f"{x:,}" for x in r["cycle_http_events_per_s"]),
              " / ".join(f"{x:,}" for x in r["cycle_raw_events_per_s"]), " / ".join(map(str, r["cycle_ratios"])))
    t.add_row("raw produce before / after, events/s", "", f"{before['events_per_s']:,.0f} / "
              f"{after['events_per_s']:,.0f}", "")
    t.add_row("seconds", f"{http['seconds']:.1f}", f"{before['seconds']:.1f} / {after['seconds']:.1f}", "")
    t.add_row(f"batch request ms p50 / p99 (body {r['batch_body_bytes_mean'] / 1024:.0f} KiB)",
              f"{http['request_ms']['p50_ms']:.1f} / {http['request_ms']['p99_ms']:.1f}", "", "")
    if "server_pct_of_one_core" in http:
        t.add_row("server CPU % of a core", f"{http['server_pct_of_one_core']:.0f}", "", "")
    t.add_row("bench (clients / producer) CPU % of a core", f"{http['bench_pct_of_one_core']:.0f}",
              f"{before['bench_pct_of_one_core']:.0f} / {after['bench_pct_of_one_core']:.0f}", "")
    t.add_row("broker CPU % of a core", f"{http['broker_pct_of_one_core']:.0f}",
              f"{before['broker_pct_of_one_core']:.0f} / {after['broker_pct_of_one_core']:.0f}", "")
    if "server_cpu_us_per_event" in http:
        raw_cpu = (before["bench_cpu_us_per_event"] + after["bench_cpu_us_per_event"]) / 2
        t.add_row("CPU µs per event (server, all threads; raw: bench process); ratio = raw / server",
                  f"{http['server_cpu_us_per_event']:.0f}", f"{raw_cpu:.0f}",
                  f"{raw_cpu / http['server_cpu_us_per_event']:.3f}")
        t.add_row("server: on a CPU / runnable but waiting for one, % of the phase (all threads)",
                  f"{http['server_on_cpu_pct']:.0f} / {http['server_runnable_waiting_pct']:.0f}", "", "")
    s = r["single"]
    t.add_row(f"single event request ms p50 / p99 / max ({s['events']} sequential)",
              f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f} / {s['max_ms']:.1f}", "", "")
    v = r["verify"]
    t.add_row("channel topics' end offsets = events sent", f"{v['channel_end_offsets']:,} = {v['events_sent']:,}",
              "", "ok" if v["ok"] else "MISMATCH")
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events per phase, a multiple of 100 (100000)")
    parser.add_argument("--customers", type=int, default=20_000, help="their distinct customers (20000)")
    parser.add_argument("--concurrency", type=int, default=16, help="client threads posting batches (16)")
    parser.add_argument("--repeats", type=int, default=3, help="cycles on fresh brokers; the median ratio counts (3)")
    parser.add_argument("--singles", type=int, default=500, help="single events timed one at a time (500)")
    parser.add_argument("--in-process", action="store_true",
                        help="run the service in a thread of the bench process instead of `omnitrail serve`")
    parser.add_argument("--profile", action="store_true", help="py-spy the server during the timed HTTP phase")
    parser.add_argument("--profile-out", type=Path, help="also keep py-spy's collapsed stacks here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    args = parser.parse_args(argv)
    if args.events < BATCH or args.singles < 1 or args.concurrency < 1 or args.repeats < 1:
        parser.error(f"--events must be at least {BATCH}, --singles, --concurrency and --repeats at least 1")
    return h.recorded_run("ingest", lambda tmp, progress: bench(args, tmp, progress), {"events": args.events},
                          args.keep, merge_latest, reports, console)


def reports(result: dict) -> list:
    prof = result.get("profile")
    return [report(result), *([profile_table(prof)] if prof else [])]


def profile_table(prof: dict) -> Table:
    t = Table(title=f"server profile: py-spy --gil, {prof['samples']:,} samples of the thread holding the GIL")
    t.add_column("where", overflow="fold")
    t.add_column("% of samples", justify="right")
    for name, share in prof["steps_pct"].items():
        t.add_row(escape(name), f"{share:.1f}")
    t.add_section()
    for name, share in list(prof["top_self_pct"].items())[:10]:
        t.add_row(escape(f"self: {name}"), f"{share:.1f}")
    return t


if __name__ == "__main__":
    raise SystemExit(main())
