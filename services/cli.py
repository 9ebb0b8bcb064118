"""The ``omnitrail`` command line. Each command builds the one ``Settings`` object and passes it down."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text
from rich.table import Table

if TYPE_CHECKING:
    from services.settings import Settings

app = typer.Typer(help="omnitrail: event-sourced omnichannel customer-interaction log.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
stack_app = typer.Typer(help="The local stack: a Kafka-protocol broker on loopback.", no_args_is_help=True)
schemas_app = typer.Typer(help="Published JSON Schemas of the event types.", no_args_is_help=True)
keys_app = typer.Typer(help="Write keys: what channel producers send to POST /v1/events.", no_args_is_help=True)
tokens_app = typer.Typer(help="Read tokens: what analysts and the CLI send to the read API.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(schemas_app, name="schemas")
app.add_typer(keys_app, name="keys")
app.add_typer(tokens_app, name="tokens")
# soft_wrap: messages stay one line each (for scripts and grep); tables still fit the terminal.
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def load_settings() -> Settings:
    """This command's settings. Imported on use, like everything a command needs: `omnitrail --help` stays fast."""
    from services.settings import Settings

    return Settings()


def require_kafka(settings: Settings) -> None:
    """Exit non-zero at once, naming the fix, when Kafka is unreachable."""
    from consumers.kafka import require

    try:
        require(settings.kafka_bootstrap)
    except ConnectionError as exc:
        fail(str(exc))


def print_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)  # the message may quote user input
    raise typer.Exit(code)


# --- producing -----------------------------------------------------------------------------------------------------
@app.command()
def emit(
    type_: Annotated[Optional[str], typer.Option("--type", "-t", help="Event type, e.g. MailReturned")] = None,
    customer: Annotated[Optional[str], typer.Option("--customer", "-c", help="Customer id (subject)")] = None,
    channel: Annotated[Optional[str], typer.Option(help="Channel, e.g. mail, phone, twitter")] = None,
    data: Annotated[str, typer.Option(help="Payload as a JSON object")] = "{}",
    id_: Annotated[Optional[str], typer.Option("--id", help="Event id (default: a new UUID)")] = None,
    time_: Annotated[Optional[str], typer.Option("--time", help="RFC 3339 time (default: now)")] = None,
    correlation_id: Annotated[Optional[str], typer.Option(help="Journey or case id")] = None,
    causation_id: Annotated[Optional[str], typer.Option(help="Id of the event that caused this one")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="JSONL file of events ('-' = stdin)")] = None,
    as_json: JSON = False,
) -> None:
    """Publish one event from options, or many from a JSONL file. Nothing is published if any input is invalid."""
    from schemas.envelope import InvalidEvent
    from services.emit import event_from_input, events_from_jsonl
    from services.publisher import Publisher, PublishError

    settings = load_settings()
    if file is not None:
        if type_ or customer or channel:
            fail("give either --file or --type/--customer/--channel, not both", 2)
        # Bytes, not text: a line that is not UTF-8 is one bad line, named like any other.
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes() if file.is_file() else None
        if data is None:
            fail(f"no such file: {file}", 2)
        events, errors = events_from_jsonl(data.splitlines(), settings.source)
    else:
        missing = [n for n, v in (("--type", type_), ("--customer", customer), ("--channel", channel)) if not v]
        if missing:
            fail(f"missing {', '.join(missing)} (or use --file)", 2)
        try:
            obj = {"type": type_, "customer": customer, "channel": channel, "data": orjson.loads(data),
                   "id": id_, "time": time_, "correlationid": correlation_id, "causationid": causation_id}
            events, errors = [event_from_input({k: v for k, v in obj.items() if v is not None}, settings.source)], []
        except orjson.JSONDecodeError as exc:
            events, errors = [], [f"--data: not valid JSON: {exc}"]
        except InvalidEvent as exc:
            events, errors = [], exc.problems
    if errors:
        for problem in errors:
            err.print(f"[red]invalid:[/red] {escape(problem)}", highlight=False)
        fail(f"{len(errors)} problem(s); nothing was published")
    require_kafka(settings)
    try:
        with Publisher(settings) as publisher:
            count = publisher.publish_many(events)
    except PublishError as exc:
        fail(str(exc))
    published = [{"id": e.id, "source": e.source, "type": e.type, "subject": e.subject, "channel": e.channel.value}
                 for e in events]
    if as_json:
        return print_json(published)
    out.print(f"published {count} event(s)")
    for e in published[:20]:
        out.print(f"  {e['id']}  {e['type']}  {e['subject']}  ({e['channel']})", highlight=False, markup=False)
    if count > 20:
        out.print(f"  ... and {count - 20} more (--json lists every id)")


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
    show([r for r in rows if r["end"]], ["topic", "partition", "committed", "end", "lag"],
         "Partitions with data", False)
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
    from services.http.server import HttpServer

    settings = load_settings()
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = HttpServer(http_app(settings), settings.api_host, settings.api_port)
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
        columns = [TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} records"),
                   TextColumn("{task.fields[rate]:,.0f} events/s"), TimeRemainingColumn(),
                   TextColumn("{task.fields[where]}")]
        try:
            with Progress(*columns, console=err) as bar:
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


@app.command("sql")
def sql_command(statement: Annotated[str, typer.Argument(help="One SQL statement, e.g. 'SELECT count() FROM timeline'")],
                as_json: JSON = False) -> None:
    """Run one read-only SQL query on the projections (through the worker while it owns the embedded store)."""
    from services.reader import ReaderError, sql

    try:
        result = sql(load_settings(), statement)
    except ReaderError as exc:
        fail(str(exc))
    rows = [dict(zip(result["columns"], row)) for row in result["rows"]]
    show(rows, result["columns"], "Result", as_json)


# --- reading ---------------------------------------------------------------------------------------------------------
@app.command()
def whois(identifier: Annotated[str, typer.Argument(
              help="kind:value, e.g. twitter:@jan, whatsapp:+31612345678, email:jan@example.com, address:1234AB-1")],
          as_json: JSON = False) -> None:
    """The customer an identifier belongs to now, and its history of links and unlinks."""
    rows = query("whois", identifier=identifier)
    if as_json:
        return print_json(rows)
    if not rows:
        return out.print(Text(f"{identifier} was never linked to a customer"))  # Text: data, not markup
    [found] = rows
    owner = found["customer_id"]
    out.print(Text(f"{found['identifier']} belongs to {owner}" if owner else
                   f"{found['identifier']} belongs to nobody now (unlinked)"))
    show(found["history"], ["time", "action", "customer_id", "type", "channel", "event_id"], "Links", False)


@app.command()
def timeline(
    customer: Annotated[str, typer.Argument(help="Customer id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
    since: Annotated[Optional[str], typer.Option(help="Only events at or after this RFC 3339 time (UTC if no zone)")] = None,
) -> None:
    """Show a customer's interactions on every channel, in time order."""
    rows = query("timeline", customer_id=customer, since=since)
    if as_json:
        return print_json(rows)
    print_timeline(customer, rows)


def print_timeline(customer: str, rows: list[dict]) -> None:
    table = Table(title=Text(f"Timeline of {customer} ({len(rows)} events)"), title_justify="left")  # data, not markup
    for name in ("time", "channel", "kind", "summary"):
        table.add_column(name, overflow="fold", no_wrap=name != "summary")
    for row in rows:
        table.add_row(row["time"][:19].replace("T", " ") + " UTC", row["channel"], row["kind"], Text(row["summary"]))
    out.print(table)


def show(rows: list[dict], columns: list[str], title: str, as_json: bool) -> None:
    """Rows as JSON, or as a table of the given columns."""
    if as_json:
        return print_json(rows)
    table = Table(title=Text(f"{title} ({len(rows)})"), title_justify="left")  # titles hold customer ids: not markup
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*(Text(", ".join(map(str, v)) if isinstance(v, list) else "" if v is None else str(v))
                        for v in (row.get(c) for c in columns)))  # Text: values are data, not markup
    out.print(table)


def query(name: str, **params) -> list[dict]:
    """Rows of a named query; a warning on stderr when the projections are behind the log because no worker runs
    (the embedded store read directly; with a ClickHouse server, whenever Kafka reports lag)."""
    from services.reader import ReaderError, api_call, read
    from services.status import consumer_lag

    settings = load_settings()
    try:
        rows = read(settings, name, **params)
    except ReaderError as exc:
        fail(str(exc))
    if settings.embedded_store and api_call(settings, "/health", 1):
        return rows  # a worker serves this store: it is consuming (`omnitrail status` shows how far behind)
    try:
        behind = sum(p.lag for p in consumer_lag(settings, timeout=2))
    except ConnectionError:
        err.print("[yellow]warning:[/yellow] cannot tell whether this is current: Kafka is unreachable at "
                  f"{settings.kafka_bootstrap}", highlight=False)
    else:
        if behind:
            err.print(f"[yellow]warning:[/yellow] the projections are {behind:,} events behind the log: this read "
                      "leaves them out (is `omnitrail worker` running? `omnitrail status` shows the lag)",
                      highlight=False)
    return rows




@app.command()
def flags(suppression: Annotated[bool, typer.Option(help="Only the addresses mail producers must not send to")] = False,
          customer: Annotated[Optional[str], typer.Option(help="Only this customer's flags, open or cleared")] = None,
          as_json: JSON = False) -> None:
    """Addresses flagged undeliverable because letters keep coming back."""
    if suppression:
        show(query("suppression"), ["address_hash", "address", "customer_id"], "Suppression list", as_json)
    elif customer:
        show(query("customer_flags", customer_id=customer), FLAG_COLUMNS, f"Address flags of {customer}", as_json)
    else:
        show(query("flags"), FLAG_COLUMNS, "Open address flags", as_json)


FLAG_COLUMNS = ["customer_id", "address", "status", "returns", "first_return", "last_return", "actions"]


@app.command()
def consistency(customer: Annotated[Optional[str], typer.Option(help="Only this customer's violations")] = None,
                subject: Annotated[Optional[str], typer.Option(help="Only this product, offer or topic")] = None,
                as_json: JSON = False) -> None:
    """Different prices, offers or answers given on different channels, and a per-subject channel summary."""
    violations = query("consistency", customer_id=customer, subject=subject)
    # The summary is across customers: with --customer it covers the subjects of that customer's violations only.
    subjects = {(v["kind"], v["subject"]) for v in violations}
    summary = [r for r in query("consistency_summary") if (subject is None or r["subject"] == subject)
               and (customer is None or (r["kind"], r["subject"]) in subjects)]
    if as_json:
        return print_json({"violations": violations, "summary": summary})
    show(violations, ["detected_at", "customer_id", "kind", "subject", "channels", "values"], "Violations", False)
    show(summary, list(summary[0]) if summary else ["kind", "subject", "channel"], "Per subject and channel", False)


@app.command()
def journeys(customer: Annotated[str, typer.Argument(help="Customer id")], as_json: JSON = False) -> None:
    """A customer's journeys: channels, switches, contacts, transfers, repeat contacts, resolution."""
    show(query("journeys", customer_id=customer), JOURNEY_COLUMNS, f"Journeys of {customer}", as_json)


JOURNEY_COLUMNS = ["journey_id", "started_at", "channels", "channel_switches", "contacts", "transfers",
                   "repeat_contacts", "resolved", "resolution_seconds", "first_contact_resolution"]


@app.command()
def metrics(channel: Annotated[Optional[str], typer.Option(help="Only this channel")] = None,
            days: Annotated[Optional[int], typer.Option(help="Only the last N days of data")] = None,
            as_json: JSON = False) -> None:
    """Per channel and day: volume, response times, first-contact resolution, NPS, CES, CSAT."""
    from schemas.channels import Channel

    if channel is not None and channel not in {c.value for c in Channel}:
        fail(f"unknown channel {channel!r}; the channels are {', '.join(c.value for c in Channel)}", 2)
    show(query("metrics", channel=channel, days=days), METRIC_COLUMNS, "Channel metrics (use --json for the counts)",
         as_json)


METRIC_COLUMNS = ["channel", "day", "volume", "response_p50_seconds", "response_p90_seconds", "fcr_share", "nps",
                  "ces", "csat"]


@app.command()
def alerts(follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new alerts")] = False,
           as_json: JSON = False) -> None:
    """Derived events (flags, cleared flags, mail to flagged addresses, violations), each with the team to act."""
    import uuid

    from projections.timeline.fold import summary
    from schemas.codec import DecodeError, decode

    from consumers import kafka

    settings = load_settings()
    require_kafka(settings)
    consumer = kafka.consumer(settings.kafka_bootstrap, f"alerts-{uuid.uuid4().hex}",
                              **{"session.timeout.ms": settings.session_timeout_ms})
    consumer.subscribe([settings.derived_topic])
    idle = 0.0
    try:
        while follow or idle < 3.0:  # without --follow: stop once the topic has been quiet for 3 s
            messages = consumer.consume(100, 0.5)
            idle = 0.0 if messages else idle + 0.5
            for msg in messages:
                if msg.error() is not None:
                    continue
                try:
                    event = decode(msg.value(), msg.headers())
                except DecodeError as exc:
                    err.print(f"[yellow]undecodable alert at offset {msg.offset()}: {escape(exc.reason)}[/yellow]")
                    continue
                if as_json:
                    sys.stdout.write(event.model_dump_json() + "\n")
                else:
                    out.print(f"{event.time:%Y-%m-%d %H:%M} [bold]team {event.channel.value}[/bold] "
                              f"customer {escape(event.subject)}: {escape(summary(event))}", highlight=False)
                sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


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


# --- the demo ------------------------------------------------------------------------------------------------------------
@app.command()
def demo(keep_running: Annotated[bool, typer.Option(help="Run until Ctrl-C after printing")] = True) -> None:
    """Start the local stack and a worker, publish the demo stories, print the demo customers' timelines."""
    from services import demo as stories
    from services.publisher import Publisher
    from services.reader import api_call, read, read_timeline
    from services.stack import local_broker, port_open
    from services.topics import ensure_topics

    settings = load_settings()
    broker = local_broker(settings)
    started_broker = broker.pid() is None
    if api_call(settings, "/health", 2):
        fail(f"a worker already answers at {settings.api_url}; stop it first (or set OMNITRAIL_API_PORT)")
    if port_open(settings.api_host, settings.api_port):
        fail(f"port {settings.api_host}:{settings.api_port} for the agent desk and API is taken by another program; "
             "stop it, or set OMNITRAIL_API_PORT to a free port")
    worker_proc = None
    try:
        try:
            broker.start()
        except RuntimeError as exc:  # the broker's port is taken by another program
            fail(f"{exc}; stop it, or set OMNITRAIL_KAFKA_BOOTSTRAP to a free loopback address (e.g. 127.0.0.1:29093)")
        ensure_topics(settings)
        out.print(f"broker on {broker.bootstrap}; starting the worker (log: {settings.state_dir / 'worker.log'})")
        log = open(settings.state_dir / "worker.log", "ab")
        worker_proc = subprocess.Popen([sys.executable, "-m", "services", "worker", "--log-level", "info"],
                                       stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not api_call(settings, "/health", 2):
            if worker_proc.poll() is not None or time.monotonic() > deadline:
                fail(f"the worker did not start; see {settings.state_dir / 'worker.log'}")
            time.sleep(0.2)
        events = sorted(stories.all_events(), key=lambda e: e.time)  # as the channels would have sent them
        with Publisher(settings) as publisher:
            publisher.publish_many(events)
        out.print(f"published {len(events)} demo events")
        # Everything is projected once the workers' group has no lag: rows are stored and derived events are on
        # the derived topic before offsets are committed, so no lag means the derived events are projected too.
        deadline = time.monotonic() + 60
        while (behind := projected_lag(settings)) and time.monotonic() < deadline:
            time.sleep(0.3)
        if behind:
            err.print(f"[yellow]warning:[/yellow] the worker is still {behind} events behind after 60 s; what "
                      f"follows may be incomplete (see {settings.state_dir / 'worker.log'})")
        timelines = {c: read_timeline(settings, c) for c in stories.CUSTOMERS}
        for customer in stories.CUSTOMERS:
            print_timeline(customer, timelines[customer])
        show(read(settings, "customer_flags", customer_id=stories.RETURNED_MAIL_CUSTOMER), FLAG_COLUMNS,
             f"Address flags of {stories.RETURNED_MAIL_CUSTOMER}", False)
        show(read(settings, "consistency"), ["detected_at", "customer_id", "kind", "subject", "channels", "values"],
             "Consistency violations", False)
        for customer in stories.CUSTOMERS:
            show(read(settings, "journeys", customer_id=customer), JOURNEY_COLUMNS, f"Journeys of {customer}", False)
        show(read(settings, "metrics"), METRIC_COLUMNS, "Channel metrics per day", False)
        out.print(f"\nAgent desk: {settings.api_url}/customers/{stories.RETURNED_MAIL_CUSTOMER} (search, customer "
                  f"pages, {settings.api_url}/analyst for the analyst page)")
        if keep_running:
            out.print(f"The worker keeps running: open the agent desk, try `omnitrail timeline "
                      f"{stories.HOTEL_CUSTOMER}` in another shell, or emit events. Ctrl-C stops everything this "
                      "command started.")
            signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as cleanly as Ctrl-C
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        if worker_proc is not None and worker_proc.poll() is None:
            worker_proc.send_signal(signal.SIGTERM)
            try:
                worker_proc.wait(30)
            except subprocess.TimeoutExpired:
                worker_proc.kill()
        if started_broker:
            broker.stop()
        out.print("stopped")


def projected_lag(settings: Settings) -> int:
    """Events the workers have not projected yet (any error reading it counts as not caught up)."""
    from services.status import consumer_lag

    try:
        return sum(p.lag for p in consumer_lag(settings, timeout=5))
    except ConnectionError:
        return 1


# --- the simulator ---------------------------------------------------------------------------------------------------
@app.command()
def simulate(
    customers: Annotated[int, typer.Option(help="Number of customers (at least 4: one per story)")] = 100,
    days: Annotated[int, typer.Option(help="Days of traffic to generate")] = 7,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same events and truth")] = 1,
    rate: Annotated[float, typer.Option(help="Events per second when publishing (0 = as fast as possible)")] = 0,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Directory for events.jsonl and truth.json "
                                                    "(default: <state dir>/simulation)")] = None,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish the events to Kafka")] = True,
) -> None:
    """Generate realistic omnichannel traffic with known stories, write it and its ground truth, and publish it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from services.publisher import Publisher, PublishError
    from services.simulate import simulate as generate
    from services.simulate import write_simulation

    if rate < 0:
        fail("--rate must be 0 or more", 2)
    settings = load_settings()
    try:
        sim = generate(customers, days, seed)
    except ValueError as exc:
        fail(str(exc), 2)
    events_path, truth_path = write_simulation(sim, out_dir or settings.state_dir / "simulation")
    published = 0
    if publish:
        chunk = max(1, min(500, int(rate / 5))) if rate else 500  # paced: about five chunks a second
        started = time.monotonic()
        try:
            with Publisher(settings) as publisher, Progress(
                    TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=err) as progress:
                task = progress.add_task("publish", total=len(sim.events))
                for i in range(0, len(sim.events), chunk):
                    published += publisher.publish_many(sim.events[i:i + chunk])
                    progress.update(task, completed=published)
                    if rate:
                        time.sleep(max(0.0, started + published / rate - time.monotonic()))
        except PublishError as exc:
            fail(f"{exc} ({published} published before)")
    truth = sim.truth
    out.print(f"{len(sim.events)} events for {customers} customers over {days} day(s), seed {seed}: "
              + ", ".join(f"{c} {n}" for c, n in truth["per_channel"].items()), highlight=False)
    out.print(f"truth: {sum(len(f) for f in truth['flags'].values())} flag(s), {len(truth['violations'])} "
              f"violation(s), {truth['journey_metrics']['journeys']} journeys; stories: "
              + ", ".join(f"{k} {v}" for k, v in truth["stories"].items()), highlight=False)
    out.print(f"published {published} event(s)" if publish else "not published (--no-publish)")
    out.print(f"events: {events_path}\ntruth:  {truth_path}", highlight=False)


# --- dead letters ------------------------------------------------------------------------------------------------------
deadletter_app = typer.Typer(help="Records the worker could not process: list them, replay them after a fix.",
                             no_args_is_help=True)
app.add_typer(deadletter_app, name="deadletter")


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
    table = Table(title=f"Pending dead letters in {settings.deadletter_topic} ({len(letters)})", title_justify="left")
    for name in ("dlq", "dead-lettered at", "origin", "key", "size", "reason", "value"):
        table.add_column(name, overflow="fold", no_wrap=name in ("dlq", "dead-lettered at", "size"))
    for d in letters:
        table.add_row(*map(Text, (  # Text: keys, reasons and values are data, not markup
            f"{d.dlq_partition}:{d.dlq_offset}",
            d.dead_lettered_at.isoformat(timespec="seconds") if d.dead_lettered_at else "?",
            f"{d.topic or '?'}[{d.partition}]@{d.offset}", d.key or "", str(d.value_size), d.reason, d.preview)))
    out.print(table)


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


# --- credentials -----------------------------------------------------------------------------------------------------
def credentials_store():
    from services.credentials import Credentials

    return Credentials(load_settings().credentials_path)


@keys_app.command("create")
def keys_create(
    channel: Annotated[list[str], typer.Option("--channel", help="A channel the key may publish to (repeatable)")],
    source: Annotated[str, typer.Option("--source", help="The CloudEvents source prefix it may use, e.g. /telephony/")],
    as_json: JSON = False,
) -> None:
    """Create a write key bound to channels and a source prefix; its secret is printed once, never stored."""
    from services.credentials import CredentialError

    try:
        key, secret = credentials_store().create_key(channel, source)
    except CredentialError as exc:
        fail(str(exc))
    if as_json:
        return print_json({"id": key.id, "channels": key.channels, "source_prefix": key.source_prefix,
                           "secret": secret})
    out.print(f"write key {key.id} for channels {', '.join(key.channels)}, sources under {key.source_prefix}")
    out.print("secret (shown once; send it as 'Authorization: Bearer <secret>'):", highlight=False)
    print(secret)


@keys_app.command("list")
def keys_list(as_json: JSON = False) -> None:
    """List write keys (ids and bindings; secrets are not stored)."""
    rows = [{"id": k.id, "channels": ",".join(k.channels), "source_prefix": k.source_prefix, "created": k.created,
             "revoked": k.revoked or ""} for k in credentials_store().keys()]
    show(rows, ["id", "channels", "source_prefix", "created", "revoked"], "Write keys", as_json)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `omnitrail keys list`)")]) -> None:
    """Revoke a write key: the HTTP service refuses it from the next request on."""
    revoke(key_id)


@tokens_app.command("create")
def tokens_create(admin: Annotated[bool, typer.Option("--admin", help="May also run rebuilds")] = False,
                  as_json: JSON = False) -> None:
    """Create a read token (``--admin``: also rebuilds); its secret is printed once, never stored."""
    token, secret = credentials_store().create_token("admin" if admin else "read")
    if as_json:
        return print_json({"id": token.id, "scope": token.scope, "secret": secret})
    out.print(f"{token.scope} token {token.id}; secret (shown once; set OMNITRAIL_API_TOKEN to it for the CLI):")
    print(secret)


@tokens_app.command("list")
def tokens_list(as_json: JSON = False) -> None:
    """List read tokens (ids and scopes; secrets are not stored)."""
    rows = [{"id": t.id, "scope": t.scope, "created": t.created, "revoked": t.revoked or ""}
            for t in credentials_store().tokens()]
    show(rows, ["id", "scope", "created", "revoked"], "Read tokens", as_json)


@tokens_app.command("revoke")
def tokens_revoke(token_id: Annotated[str, typer.Argument(help="The token's id (see `omnitrail tokens list`)")]) -> None:
    """Revoke a read token."""
    revoke(token_id)


def revoke(credential_id: str) -> None:
    from services.credentials import CredentialError

    try:
        revoked = credentials_store().revoke(credential_id)
    except CredentialError as exc:
        fail(str(exc))
    out.print(f"revoked {credential_id} at {revoked.revoked}")


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
