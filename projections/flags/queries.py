"""Reads of the returned-mail flags projection (FINAL: the newest version of each (customer, address) row)."""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from projections.identities.queries import customer_rows

COLUMNS = ("customer_id", "address_hash", "address", "status", "returns", "first_return", "last_return",
           "actions", "updated_at", "version", "event_id", "topic", "partition", "offset")
_TIMES = ("first_return", "last_return", "updated_at")


def _utc(value: datetime) -> datetime:
    # Stored in UTC; the driver returns Nullable timestamps without their zone.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _statement(columns: tuple[str, ...], where: str, order: str) -> str:
    return f"SELECT {', '.join(columns)} FROM address_flags FINAL WHERE {where} ORDER BY {order}"


def _rows(client: Client, columns: tuple[str, ...], where: str, order: str) -> list[dict]:
    return _shaped(columns, client.query(_statement(columns, where, order)).result_rows)


def _shaped(columns: tuple[str, ...], found: list) -> list[dict]:
    rows = []
    for values in found:
        row = dict(zip(columns, values))
        for name in _TIMES:
            if row.get(name) is not None:
                row[name] = _utc(row[name]).isoformat()
        if "actions" in row:
            row["actions"] = list(row["actions"])
        rows.append(row)
    return rows


def open_flags(client: Client) -> list[dict]:
    """Every address flagged undeliverable now, oldest flag change first."""
    return _rows(client, COLUMNS, "status = 'flagged'", "updated_at, customer_id, address_hash")


def suppression_list(client: Client) -> list[dict]:
    """What the mail producers must not send to: each flagged (address, customer)."""
    return _rows(client, ("address_hash", "address", "customer_id"), "status = 'flagged'",
                 "address_hash, customer_id")


def customer_flags(client: Client, customer_id: str) -> list[dict]:
    """The returns and flag state of each of the customer's addresses (flagged, cleared, or returns counted),
    including those of identifiers linked to the customer now (``projections/identities``)."""
    return _shaped(COLUMNS, customer_rows(
        client, lambda subjects: _statement(COLUMNS, f"customer_id IN ({subjects})", "updated_at, address_hash"),
        {"customer": customer_id}, COLUMNS.index("customer_id")))
