"""Tables that fit the terminal: every row on one line, columns chosen by width.

A table never wraps a cell: wrapped cells turned one row into ten at 80 columns. Columns that do not fit are left
out, the least important first (the caption names them; ``--json`` always has every field, whole), and long text
(summaries, addresses, values) is cut short with an ellipsis instead of wrapping.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text

# A column costs its width plus 3 (two padding spaces and a rule); the table's left edge costs 1 more.
_PER_COLUMN, _EDGE = 3, 1


@dataclass(frozen=True)
class Column:
    key: str                   # the row's field
    header: str = ""           # what the table shows above it (default: the key)
    keep: int = 0              # as the terminal narrows, columns with the lowest ``keep`` go first (ties: rightmost)
    flex: bool = False         # long text: cut short with "…" to fit; other columns are shown whole or not at all
    min_width: int = 12        # a flex column narrower than this makes another column go instead
    format: Callable[[object], str] | None = None  # a value (not None) as text; default ``str``, lists joined

    @property
    def title(self) -> str:
        return self.header or self.key


def as_columns(columns: Sequence[Column | str]) -> list[Column]:
    """Plain names (SQL results, key lists) are all text that may be cut short, none more important than another."""
    return [c if isinstance(c, Column) else Column(c, flex=True, min_width=8) for c in columns]


def cell(column: Column, value: object) -> str:
    if value is None:
        return ""
    if column.format is not None:
        text = column.format(value)
    elif isinstance(value, list):
        text = ", ".join(map(str, value))
    else:
        text = str(value)
    return " ".join(text.split())  # a newline or tab inside a value would break the row over lines


def fit(columns: Sequence[Column], cells: dict[str, list[str]], width: int) -> tuple[dict[str, int], list[str]]:
    """The width of each column shown (in the given order) and the titles of the columns left out."""
    natural = {c.key: max([cell_len(c.title), *map(cell_len, cells[c.key])]) for c in columns}
    least = {c.key: min(natural[c.key], c.min_width) if c.flex else natural[c.key] for c in columns}

    def spare(shown: list[Column]) -> int:
        return width - sum(least[c.key] for c in shown) - _PER_COLUMN * len(shown) - _EDGE

    shown = list(columns)
    while len(shown) > 1 and spare(shown) < 0:
        shown.remove(min(reversed(shown), key=lambda c: c.keep))  # reversed: of equals, the rightmost goes
    widths = {c.key: least[c.key] for c in shown}
    left = spare(shown)
    if left < 0:  # one column, wider than the terminal: cut it too
        only = shown[0].key
        widths[only] = max(1, widths[only] + left)
    # What is left goes to the text columns that were cut, a little to each in turn, up to their whole text.
    wanting = [c.key for c in shown if c.flex and widths[c.key] < natural[c.key]]
    while left > 0 and wanting:
        share = max(1, left // len(wanting))
        for key in list(wanting):
            grant = min(share, natural[key] - widths[key], left)
            widths[key] += grant
            left -= grant
            if widths[key] == natural[key]:
                wanting.remove(key)
    return widths, [c.title for c in columns if c not in shown]


def build(rows: list[dict], columns: Sequence[Column | str], title: str, width: int) -> Table:
    """A table of ``rows`` at most ``width`` cells wide, each row on one line."""
    columns = as_columns(columns)
    cells = {c.key: [cell(c, row.get(c.key)) for row in rows] for c in columns}
    widths, hidden = fit(columns, cells, width)
    caption = f"not shown at this width: {', '.join(hidden)} (--json has every field)" if hidden else None
    # Text, never markup: titles hold customer ids and cells hold data.
    table = Table(title=Text(title), title_justify="left", caption=caption and Text(caption),
                  caption_justify="left")
    shown = [c for c in columns if c.key in widths]
    for c in shown:
        table.add_column(Text(c.title), width=widths[c.key], no_wrap=True, overflow="ellipsis")
    for i in range(len(rows)):
        table.add_row(*(Text(cells[c.key][i], no_wrap=True, overflow="ellipsis") for c in shown))
    return table
