"""Commands that publish: ``emit``; and the credentials of producers and readers (``keys``, ``tokens``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import orjson
import typer
from rich.markup import escape

from services.cli.apps import app, keys_app, tokens_app
from services.cli.render import JSON, err, fail, load_settings, out, print_json, require_kafka, show


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
