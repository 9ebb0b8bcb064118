"""Commands that run and operate omnitrail: the local stack, topics, status, the worker and the HTTP service,
migrations, rebuilds, dead letters, published contracts."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape

from services.cli import columns
from services.cli.apps import app, deadletter_app, schemas_app, stack_app
from services.cli.render import JSON, err, fail, load_settings, out, print_json, require_kafka, show

if TYPE_CHECKING:
    from services.settings import Settings


@app.command()
def topics() -> None:
    """Create omnitrail's Kafka topics (one per channel, and the dead-letter topic) if they are missing."""
    from services.topics import all_topics, ensure_topics

    settings = load_settings()
    require_kafka(settings)
    try:
        created = ensure_topics(settings)
    except ConnectionError as exc:
        fail(str(exc))
    for name in all_topics(settings):
        out.print(f"{name}: {'created' if name in created else 'exists'}")


# --- the local stack -----------------------------------------------------------------------------------------------
@stack_app.command("up")
def stack_up() -> None:
    """Start the local broker (noida-db) on the bootstrap address and create the topics."""
    from services.stack import local_broker
    from services.topics import ensure_topics

    settings = load_settings()
    broker = local_broker(settings)
    was_running = broker.pid() is not None
    try:
        broker.start()
        ensure_topics(settings)
    except (RuntimeError, TimeoutError, ConnectionError) as exc:
        fail(str(exc))
    out.print(f"broker {'already running' if was_running else 'started'} on {broker.bootstrap} "
              f"(pid {broker.pid()}, data in {broker.data_dir})")


@stack_app.command("down")
def stack_down() -> None:
    """Stop the local broker (SIGINT: it saves its data first)."""
    from services.stack import local_broker

    stopped = local_broker(load_settings()).stop()
    out.print("broker stopped" if stopped else "broker was not running")


@stack_app.command("status")
def stack_status() -> None:
    """Show whether the local broker and the worker's read API are up."""
    from projections.redact import redact_url
    from services.reader import api_call
    from services.stack import local_broker

    settings = load_settings()
    broker = local_broker(settings)
    pid = broker.pid()
    out.print(f"broker: {'running, pid ' + str(pid) if pid else 'stopped'} ({broker.bootstrap})")
    out.print(f"worker read API: {'up' if api_call(settings, '/health', 2) else 'down'} ({settings.api_url})")
    out.print(f"clickhouse: {redact_url(settings.store_url)}")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")] = False) -> None:
    """Consumer lag per partition and how fresh the projections are."""
    from datetime import UTC, datetime

    from projections.redact import redact_url
    from services.reader import ReaderError, read
    from services.status import consumer_lag, retention_problems, retention_warning

    settings = load_settings()
    store = redact_url(settings.read_url)  # where status reads the projections from
    try:
        lags = consumer_lag(settings)
        retention = retention_problems(settings)
    except ConnectionError as exc:
        fail(str(exc))
    try:
        [fresh] = read(settings, "freshness")
    except ReaderError as exc:
        fail(f"cannot read the projections from {store}: {exc}")
    last = fresh["last_projected"]
    fresh["age_seconds"] = (datetime.now(UTC) - datetime.fromisoformat(last)).total_seconds() if last else None
    rows = [{"topic": p.topic, "partition": p.partition, "committed": p.committed, "end": p.end, "lag": p.lag}
            for p in lags]
    total = sum(p.lag for p in lags)
    # The stall alarm: records wait, and nothing was projected for a while (or ever).
    stalled = total > 0 and (fresh["age_seconds"] is None or fresh["age_seconds"] > settings.stall_seconds)
    if as_json:
        return print_json({"partitions": rows, "total_lag": total, "stalled": stalled, "projections": fresh,
                           "store": store, "retention_problems": retention})
    show([r for r in rows if r["end"]], columns.PARTITIONS, "Partitions with data", False)
    out.print(f"total lag: {sum(p.lag for p in lags)} record(s)")
    age = "n/a" if last is None else f"{fresh['age_seconds']:.1f} s ago"
    out.print(f"timeline: {fresh['rows']} rows, newest event {fresh['newest_event']}, last projected {last} ({age})")
    out.print(f"store: {store}")
    for problem in retention:
        err.print(f"[bold yellow]warning:[/] {escape(retention_warning(problem))}", highlight=False)
    if stalled:
        err.print(f"[bold red]stalled:[/] {total} record(s) wait and nothing was projected for over "
                  f"{settings.stall_seconds:.0f} s: is a worker running (`omnitrail worker`), and can it write to "
                  "the store? See its log.")


# --- projections -----------------------------------------------------------------------------------------------------
@app.command()
def migrate() -> None:
    """Apply the projections' pending migrations."""
    from projections.migrate import migrate as apply
    from projections.store import StoreLocked, connect

    settings = load_settings()
    try:
        client = connect(settings.store_url)
    except StoreLocked as exc:
        fail(f"{exc}; the worker applies migrations itself when it starts")
    applied = apply(client)
    for m in applied:
        out.print(f"applied {m.projection}/{m.version:04d}_{m.name}")
    out.print(f"{len(applied)} migration(s) applied; the store is up to date")


@app.command()
def worker(loglevel: Annotated[str, typer.Option("--log-level", "--loglevel",
                                                 help="Log level: warning (quiet), info, debug")] = "warning") -> None:
    """Run the projection worker: topics -> projections, plus the HTTP service (ingest, reads) on api_host:api_port."""
    from consumers.worker.service import run
    from services.http.server import HttpServer

    settings = load_settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = HttpServer(http_app(settings), settings.api_host, settings.api_port)

    def ready() -> None:  # the HTTP service (and its /health) comes up once the worker owns its partitions
        server.start()
        err.print(f"worker ready: consuming {len(settings.topics.worker_sources)} topics of {settings.topic_prefix} "
                  f"from {settings.kafka_bootstrap} as {settings.consumer_group}; agent desk and API on "
                  f"{server.url} (--log-level info for more)", highlight=False)

    try:
        run(settings.worker_config(), ready, loglevel)
    except ConnectionError as exc:
        fail(str(exc))
    finally:
        server.stop()  # its store connections closed before the interpreter exits (see consumers.worker.service)


def http_app(settings: Settings):
    """The HTTP service for ``settings``, or a clear exit when it must not start (see ``services.http.auth``)."""
    from projections.store import StoreLocked, connect
    from services.credentials import Credentials
    from services.http.app import create_app
    from services.http.auth import is_loopback

    credentials = Credentials(settings.credentials_path)
    if not is_loopback(settings.api_host) and not any(t for t in credentials.tokens() if not t.revoked):
        fail(f"the HTTP service would listen on {settings.api_host}, beyond loopback, where reads need tokens; "
             f"create one first with `omnitrail tokens create` (credentials: {settings.credentials_path})")
    if settings.embedded_store:
        try:
            connect(settings.store_url).close()  # fail now, naming the owner, rather than on the first read
        except StoreLocked as exc:
            fail(str(exc))
    return create_app(settings, credentials=credentials)


@app.command()
def serve() -> None:
    """Run the HTTP service alone (ingest and reads), for deployments with a ClickHouse server.

    With the embedded store the worker runs the service itself (one process owns the store)."""
    from consumers.worker.memory import tune_gc
    from services.http.server import HttpServer

    settings = load_settings()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = HttpServer(http_app(settings), settings.api_host, settings.api_port)
    tune_gc()  # as the worker does, which runs this service too: see tune_gc for what ingest gains
    err.print(f"omnitrail HTTP service on {settings.api_url} (OpenAPI: {settings.api_url}/docs); Ctrl-C stops it")
    server.run()


@app.command()
def replay(
    projection: Annotated[str, typer.Argument(help="Projection: timeline, quotes, feedback, flags, consistency, journeys")],
    drop_old: Annotated[bool, typer.Option("--drop-old", help="Drop the version kept by the last rebuild")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Compare the rebuilt version with the previous one")] = False,
) -> None:
    """Rebuild a projection from the log into a new table version and switch readers to it, while the worker runs."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from projections.replay import ReplayError, drop_old as drop, verify as compare
    from projections.store import StoreLocked, connect
    from services.reader import ReaderError, api_call
    from services.replay import Replays, new_rebuild

    settings = load_settings()
    remote = settings.embedded_store and api_call(settings, "/health", 2) is not None

    def call(method: str, path: str) -> dict:
        try:
            answer = api_call(settings, "/v1" + path, 60, method)
        except ReaderError as exc:
            fail(str(exc))
        if answer is None:
            fail(f"the worker at {settings.api_url} stopped answering")
        return answer

    try:
        client = None if remote else connect(settings.store_url)
    except StoreLocked as exc:
        fail(f"{exc}; and no worker read API answers at {settings.api_url}")
    try:
        if drop_old:
            dropped = call("POST", f"/replay/{projection}/drop-old")["dropped"] if remote else drop(client, projection)
            return out.print("previous version dropped" if dropped else "there was no previous version")
        if verify:
            diffs = call("GET", f"/replay/{projection}/verify")["differences"] if remote else compare(client, projection)
            if diffs:
                show(diffs, ["customer_id", "current", "previous"], "Customers whose rows differ", False)
                raise typer.Exit(1)
            return out.print(f"parity: {projection} matches its previous version for every customer "
                             "(row counts and checksums)")
        if remote:
            call("POST", f"/replay/{projection}")

            def status() -> dict:
                return call("GET", "/replay")["replay"]

            def cancel() -> None:
                call("DELETE", "/replay")
        else:
            from consumers.worker.memory import tune_gc

            tune_gc()
            rebuild = new_rebuild(settings, projection, client)
            threading.Thread(target=Replays.run_quietly, args=(rebuild,), daemon=True).start()
            status, cancel = rebuild.progress.as_dict, rebuild.cancel
        bar_columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} records"),
                   TextColumn("{task.fields[rate]:,.0f} events/s"), TimeRemainingColumn(),
                   TextColumn("{task.fields[where]}")]
        try:
            with Progress(*bar_columns, console=err) as bar:
                task = bar.add_task(f"rebuild {projection}", total=None, rate=0, where="")
                while (p := status())["state"] in ("starting", "rebuilding", "switching"):
                    behind = [f"{k}@{v}/{p['ends'][k]}" for k, v in p["positions"].items() if v < p["ends"].get(k, 0)]
                    bar.update(task, completed=p["events"], total=p["total"] or None, rate=p["rate"],
                               description=f"{p['state']} {projection}", where=" ".join(behind[:3]))
                    time.sleep(0.3)
        except KeyboardInterrupt:
            cancel()
            fail(f"interrupted; run `omnitrail replay {projection}` again to resume from the last checkpoint", 130)
        if p["state"] != "done":
            fail(f"rebuild {p['state']}: {p['error'] or 'see the worker log'}")
        out.print(f"rebuilt {projection} from {p['events']:,} records at {p['rate']:,.0f} events/s; readers now "
                  f"see the new version; the previous one is kept until `omnitrail replay {projection} --drop-old`")
    except ReplayError as exc:
        fail(str(exc))




# --- schemas -----------------------------------------------------------------------------------------------------------
@schemas_app.command("publish")
def schemas_publish() -> None:
    """Write the JSON Schemas of new event types into schemas/json (published ones are never rewritten)."""
    from schemas.published import publish

    try:
        written = publish()
    except RuntimeError as exc:
        fail(str(exc))
    out.print(f"{len(written)} schema(s) written" + "".join(f"\n  {p}" for p in written))




# --- dead letters ------------------------------------------------------------------------------------------------------


def parse_since(since: str | None):
    """An RFC 3339 time option (UTC if no zone), or ``fail`` with exit code 2."""
    from services.deadletter import parse_time

    if since is None:
        return None
    parsed = parse_time(since)
    if parsed is None:
        fail(f"--since: not an RFC 3339 time: {since!r}", 2)
    return parsed


@deadletter_app.command("list")
def deadletter_list(
    reason: Annotated[Optional[str], typer.Option(help="Only dead letters whose reason contains this (any case)")] = None,
    since: Annotated[Optional[str], typer.Option(help="Only those dead-lettered at or after this RFC 3339 time")] = None,
    as_json: JSON = False,
) -> None:
    """The dead letters still pending: not replayed yet, or dead-lettered again after a replay."""
    from services.deadletter import DeadLetterError, list_dead_letters

    settings = load_settings()
    require_kafka(settings)
    try:
        letters = list_dead_letters(settings, reason=reason, since=parse_since(since))
    except DeadLetterError as exc:
        fail(str(exc))
    if as_json:
        return print_json([d.to_dict() for d in letters])
    show([{"dlq": f"{d.dlq_partition}:{d.dlq_offset}",
           "dead_lettered_at": d.dead_lettered_at.isoformat(timespec="seconds") if d.dead_lettered_at else "?",
           "origin": f"{d.topic or '?'}[{d.partition}]@{d.offset}", "key": d.key, "size": d.value_size,
           "reason": d.reason, "value": d.preview} for d in letters],
         columns.DEAD_LETTERS, f"Pending dead letters in {settings.deadletter_topic}", False)


@deadletter_app.command("discard")
def deadletter_discard(
    which: Annotated[list[str], typer.Argument(help="Dead letters as DLQ_PARTITION:DLQ_OFFSET (see `deadletter list`)")],
    reason: Annotated[str, typer.Option("--reason", help="Why it can never be fixed (kept in the audit trail)")],
) -> None:
    """Discard dead letters that can never be fixed: they leave the pending list for the audit topic, never lost."""
    from services.deadletter import DeadLetterError, discard_dead_letters

    chosen = set()
    for text in which:
        partition, _, offset = text.partition(":")
        if not (partition.isdigit() and offset.isdigit()):
            fail(f"{text!r} is not DLQ_PARTITION:DLQ_OFFSET (e.g. 0:17, as `omnitrail deadletter list` shows)", 2)
        chosen.add((int(partition), int(offset)))
    settings = load_settings()
    require_kafka(settings)
    try:
        count = discard_dead_letters(settings, chosen, reason)
    except DeadLetterError as exc:
        fail(str(exc))
    out.print(f"discarded {count} dead letter(s); they are kept, with the reason, in {settings.topics.discarded}")


@deadletter_app.command("replay")
def deadletter_replay(
    since: Annotated[Optional[str], typer.Option(help="Only those dead-lettered at or after this RFC 3339 time; "
                                                      "older ones stay pending")] = None,
) -> None:
    """Re-produce each pending dead letter once to its original topic; what still fails is dead-lettered again."""
    from rich.progress import Progress

    from services.deadletter import DeadLetterError, replay_dead_letters

    settings = load_settings()
    require_kafka(settings)
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task("replaying dead letters", total=None)
        try:
            report = replay_dead_letters(settings, since=parse_since(since),
                                         progress=lambda done, total: progress.update(task, completed=done,
                                                                                      total=total))
        except DeadLetterError as exc:
            fail(str(exc))
    out.print(f"replayed {report.replayed} dead letter(s)", highlight=False)
    for topic, count in sorted(report.by_topic.items()):
        out.print(f"  {topic}: {count}", highlight=False)
    for count, what in ((report.skipped, "dead-lettered before --since"),
                        (report.unreplayable, "without an origin topic (dlq_topic header)"),
                        (report.deferred, "deferred to the next replay (cursor metadata full)")):
        if count:
            out.print(f"left pending: {count} {what}", highlight=False)




@app.command()
def openapi(check: Annotated[bool, typer.Option("--check", help="Fail if the checked-in document is stale")] = False
            ) -> None:
    """Write the HTTP service's OpenAPI document to services/http/openapi.json (checked in, like the schemas)."""
    from services.http.openapi import DOCUMENT, current

    text = current()
    if check:
        if not DOCUMENT.exists() or DOCUMENT.read_text() != text:
            fail(f"{DOCUMENT} is stale; run `omnitrail openapi` and commit it")
        return out.print(f"{DOCUMENT} is current")
    DOCUMENT.write_text(text)
    out.print(f"wrote {DOCUMENT}")
