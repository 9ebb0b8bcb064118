"""Tables fit the terminal between 80 and 140 columns: no line wider than the terminal, every row on one line, long
text cut with "…", the least important columns left out (and named); ``--json`` stays complete."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from rich.cells import cell_len
from rich.console import Console

from projections.engine import Engine, Record
from projections.migrate import migrate
from projections.origin import Origin
from projections.sink import Sink
from projections.store import connect
from schemas import events as ev
from schemas.envelope import Event
from services import demo
from services.cli import columns
from services.cli.tables import Column, build
from tests.support.worker import run_cli

WIDTHS = (80, 100, 140)
LONG_TEXT = "My letters still go to the old address.\nI wrote before. " + "Please fix it, " * 20 + "THE END"
LONG_SUBJECT = "HOTEL-" + "AMS-DBL-3N-" * 12 + "X"  # a product code longer than any terminal column
T0 = datetime(2026, 11, 1, 9, tzinfo=UTC)


def rendered(table, width: int) -> list[str]:
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table)
    return console.file.getvalue().splitlines()


def data_lines(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("│")]  # the header row is drawn with ┃


def assert_fits(lines: list[str], width: int, rows: int) -> None:
    assert max(map(cell_len, lines)) <= width, "\n".join(lines)
    assert len(data_lines(lines)) == rows, "\n".join(lines)  # one line per row: nothing wrapped


@pytest.mark.parametrize("width", WIDTHS)
def test_a_table_fits_cuts_long_text_and_names_what_it_leaves_out(width):
    rows = [{"time": "2026-11-01 09:00:00 UTC", "channel": "twitter", "kind": "MessageReceived",
             "summary": f"customer: {LONG_TEXT}"},
            {"time": "2026-11-01 10:00:00 UTC", "channel": "mail", "kind": "MailSent", "summary": "letter L-1 sent"}]
    lines = rendered(build(rows, columns.TIMELINE, "Timeline", width), width)
    assert_fits(lines, width, len(rows))
    first, second = data_lines(lines)
    assert first.rstrip(" │").endswith("…") and "THE END" not in first
    assert "letter L-1 sent" in second and "…" not in second  # short text is shown whole
    assert "2026-11-01 09:00:00 UTC" in first  # a time is never cut


def test_narrower_terminals_drop_the_least_important_columns_first():
    wide = [Column("id", keep=9), Column("note", keep=5, flex=True, min_width=10), Column("extra", keep=1),
            Column("more", keep=3)]
    rows = [{"id": "x" * 20, "note": "n" * 60, "extra": "e" * 20, "more": "m" * 20}]
    shown = {}
    for width in (140, 80, 50, 30):
        lines = rendered(build(rows, wide, "T", width), width)
        assert_fits(lines, width, 1)
        [header] = [line for line in lines if line.startswith("┃")]
        shown[width] = [c.key for c in wide if f" {c.key} " in header]
        caption = " ".join(lines[[i for i, line in enumerate(lines) if line.startswith("└")][0] + 1:])
        hidden = [c.key for c in wide if c.key not in shown[width]]
        assert caption.startswith("not shown at this width") if hidden else caption == ""
        assert all(h in caption for h in hidden)
    assert shown == {140: ["id", "note", "extra", "more"], 80: ["id", "note", "more"], 50: ["id", "note"],
                     30: ["id"]}


def test_values_are_data_not_markup_and_newlines_do_not_break_a_row():
    rows = [{"a": "[bold]x[/bold]\nsecond line", "b": ["one", "two"], "c": None}]
    lines = rendered(build(rows, ["a", "b", "c"], "[/x] title", 80), 80)
    assert lines[0].rstrip() == "[/x] title"
    [row] = data_lines(lines)
    assert "[bold]x[/bold] second line" in row and "one, two" in row


# --- through the CLI, on a store holding the demo stories and some very long values ---------------------------------
def long_events() -> list[Event]:
    def event(n: int, payload: ev.Payload, channel: str, **kw) -> Event:
        return Event.of(payload, customer="wide-1", channel=channel, source="/test/wide", id=f"wide-{n}",
                        time=T0 + timedelta(minutes=n), **kw)

    journey = "journey-" + "x" * 150
    return [event(1, ev.MessageReceived(conversation_id="w", text=LONG_TEXT), "twitter", correlationid=journey),
            event(2, ev.MessageSent(conversation_id="w", text="We are on it."), "twitter", correlationid=journey),
            event(3, ev.PriceQuoted(subject=LONG_SUBJECT, amount=Decimal("10.00")), "phone"),
            event(4, ev.PriceQuoted(subject=LONG_SUBJECT, amount=Decimal("12.50")), "web")]


@pytest.fixture
def stored(settings):
    """The demo stories and ``long_events`` projected straight into the store (no worker needed to read)."""
    client = connect(settings.store_url)
    try:
        migrate(client)
        engine, states, sink = Engine(), {}, Sink(client)
        events = sorted(demo.all_events(), key=lambda e: e.time) + long_events()
        applied = engine.apply([Record(e, Origin("t", 0, i), Origin("t", 0, i)) for i, e in enumerate(events)], states)
        sink.write(engine.tables(applied))
        derived = [Record(e, Origin("d", 0, i), Origin("d", 0, i)) for i, e in enumerate(applied.derived)]
        sink.write(engine.tables(engine.apply(derived, states)))  # flags and violations reach the timeline
    finally:
        client.close()
    return settings


READS = [("timeline", "wide-1"), ("journeys", "wide-1"), ("flags", "--customer", demo.RETURNED_MAIL_CUSTOMER),
         ("metrics",), ("consistency",)]


def rows_of(answer) -> int:
    return len(answer["violations"]) + len(answer["summary"]) if isinstance(answer, dict) else len(answer)


@pytest.mark.integration
def test_reads_fit_80_to_140_columns_and_json_stays_whole(stored):
    answers, tables = {}, {}
    for args in READS:
        result = run_cli(stored, *args, "--json")
        assert result.returncode == 0, result.stderr
        answers[args[0]] = orjson.loads(result.stdout)
        assert rows_of(answers[args[0]]) > 0, args
        for width in WIDTHS:
            result = run_cli(stored, *args, env={"COLUMNS": str(width)})
            assert result.returncode == 0, result.stderr
            tables[args[0], width] = lines = result.stdout.splitlines()
            assert_fits(lines, width, rows_of(answers[args[0]]))

    assert answers["timeline"][0]["summary"] == f"customer: {LONG_TEXT}"  # JSON: whole, newline and all
    assert answers["journeys"][0]["journey_id"] == "journey-" + "x" * 150
    assert LONG_SUBJECT in {v["subject"] for v in answers["consistency"]["violations"]}
    for width in WIDTHS:
        [long_row] = [line for line in tables["timeline", width] if "customer: My letters" in line]
        assert long_row.rstrip(" │").endswith("…")
        [violation] = [line for line in tables["consistency", width] if "wide-1" in line]
        assert "HOTEL-AMS-DBL-3" in violation and "…" in violation
        assert not any(LONG_SUBJECT in line for line in tables["consistency", width])
