"""Reads of the timeline projection."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from clickhouse_connect.driver.client import Client

from projections.identities.queries import customer_rows

COLUMNS = ("time", "channel", "kind", "summary", "type", "event_id", "source", "correlation_id", "data",
           "topic", "partition", "offset", "customer_id")


def customer_timeline(client: Client, customer_id: str, since: datetime | None = None,
                      limit: int = 10_000) -> list[dict]:
    """The customer's interactions in time order, each event once (FINAL collapses duplicate deliveries): its own
    and those recorded under the identifiers linked to it now (``projections/identities``); each row's
    ``customer_id`` is the subject it was recorded under. The timeline is sorted by customer_id first, so the few
    subjects are a few point lookups."""
    since_sql = " AND time >= {since:DateTime64(3, 'UTC')}" if since else ""

    def statement(subjects: str) -> str:
        return (f"SELECT {', '.join(COLUMNS)} FROM timeline FINAL WHERE customer_id IN ({subjects}){since_sql} "
                "ORDER BY time, source, event_id LIMIT {limit:UInt32}")

    rows = customer_rows(client, statement, {"customer": customer_id, "since": since, "limit": limit},
                         COLUMNS.index("customer_id"), limit)
    return [{**dict(zip(COLUMNS, row)), "time": _utc(row[0]), "data": orjson.loads(row[8])} for row in rows]


def _utc(t: datetime) -> str:
    """RFC 3339 with its zone, like every time omnitrail prints (the embedded engine hands back naive UTC)."""
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).isoformat()


def freshness(client: Client) -> list[dict]:
    """The newest event on the timeline and when the worker last projected one (UTC), with the number of events
    (FINAL: a re-delivered event counts once, also before the store has merged its copies)."""
    events, newest, projected = client.query(
        "SELECT count(), max(time), max(projected_at) FROM timeline FINAL").result_rows[0]
    return [{"rows": events, "newest_event": _utc(newest) if events else None,
             "last_projected": _utc(projected) if events else None}]
