"""One way to print: tables and JSON on stdout, messages on stderr, errors that exit; and the settings a command
builds (imported on use, like everything a command needs, so that ``omnitrail --help`` stays fast)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from services.settings import Settings

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
