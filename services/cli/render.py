"""One way to print: tables and JSON on stdout, messages on stderr, errors that exit; and the settings a command
builds (imported on use, like everything a command needs, so that ``omnitrail --help`` stays fast)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape

from services.cli.tables import Column, build

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
    from services.cli.columns import TIMELINE

    table = build([{**r, "time": r["time"][:19].replace("T", " ") + " UTC"} for r in rows], TIMELINE,
                  f"Timeline of {customer} ({len(rows)} events)", out.width)
    out.print(table, soft_wrap=False)  # soft wrap would let a long title or caption run past the terminal


def show(rows: list[dict], columns: Sequence[Column | str], title: str, as_json: bool) -> None:
    """Rows as JSON (every field, whole), or as a table of the given columns that fits the terminal."""
    if as_json:
        return print_json(rows)
    out.print(build(rows, columns, f"{title} ({len(rows)})", out.width), soft_wrap=False)
