"""Commands that read the projections: timelines, flags, consistency, journeys, metrics, identities, SQL, alerts."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.text import Text

from services.cli import columns
from services.cli.apps import app
from services.cli.render import JSON, err, fail, load_settings, out, print_json, print_timeline, require_kafka, show


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
    show(found["history"], columns.LINKS, "Links", False)


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


def query(name: str, **params) -> list[dict]:
    """Rows of a named query; a warning on stderr when the projections are behind the log because no worker runs
    (the embedded store read directly; with a ClickHouse server, whenever Kafka reports lag)."""
    from services.reader import ReaderError, read_where
    from services.status import consumer_lag

    settings = load_settings()
    try:
        rows, via_worker = read_where(settings, name, **params)
    except ReaderError as exc:
        fail(str(exc))
    if via_worker:
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
        show(query("suppression"), columns.SUPPRESSION, "Suppression list", as_json)
    elif customer:
        show(query("customer_flags", customer_id=customer), columns.FLAGS, f"Address flags of {customer}", as_json)
    else:
        show(query("flags"), columns.FLAGS, "Open address flags", as_json)


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
    show(violations, columns.VIOLATIONS, "Violations", False)
    show(summary, columns.CONSISTENCY_SUMMARY, "Per subject and channel", False)


@app.command()
def journeys(customer: Annotated[str, typer.Argument(help="Customer id")], as_json: JSON = False) -> None:
    """A customer's journeys: channels, switches, contacts, transfers, repeat contacts, resolution."""
    show(query("journeys", customer_id=customer), columns.JOURNEYS, f"Journeys of {customer}", as_json)


@app.command()
def metrics(channel: Annotated[Optional[str], typer.Option(help="Only this channel")] = None,
            days: Annotated[Optional[int], typer.Option(help="Only the last N days of data")] = None,
            as_json: JSON = False) -> None:
    """Per channel and day: volume, response times, first-contact resolution, NPS, CES, CSAT."""
    from schemas.channels import Channel

    if channel is not None and channel not in {c.value for c in Channel}:
        fail(f"unknown channel {channel!r}; the channels are {', '.join(c.value for c in Channel)}", 2)
    show(query("metrics", channel=channel, days=days), columns.METRICS,
         "Channel metrics per day (--json adds the counts behind each figure)", as_json)


@app.command()
def alerts(follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new alerts")] = False,
           as_json: JSON = False) -> None:
    """Derived events (flags, cleared flags, mail to flagged addresses, violations), each with the team to act."""
    import uuid

    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from projections.timeline.fold import summary
    from schemas.codec import DecodeError, decode

    from consumers import kafka

    settings = load_settings()
    require_kafka(settings)
    # Assigned, not subscribed: a reader that commits nothing needs no consumer group. It starts reading without
    # waiting for a group join, and leaves no group behind on the broker for every time it ran.
    consumer = kafka.consumer(settings.kafka_bootstrap, f"alerts-{uuid.uuid4().hex}")
    idle = 0.0
    try:
        partitions = kafka.partitions_of(consumer, settings.derived_topic, timeout=10)
        if partitions is None:
            fail(f"the alerts topic {settings.derived_topic} does not exist yet: start a worker "
                 "(`omnitrail worker`) or create the topics (`omnitrail topics`)")
        consumer.assign([TopicPartition(settings.derived_topic, p, OFFSET_BEGINNING) for p in partitions])
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
