"""Reads of the consistency projection: a customer's violations, and the cross-customer channel summary."""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

VIOLATION_COLUMNS = ("violation_id", "customer_id", "kind", "subject", "channels", "values", "event_ids",
                     "detected_at", "event_id", "topic", "partition", "offset")


def _utc(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def violations(client: Client, customer_id: str | None = None, subject: str | None = None,
               limit: int = 10_000) -> list[dict]:
    """Violations in time order, each once (FINAL collapses replays), optionally of one customer and/or subject."""
    where = ["1"]
    if customer_id is not None:
        where.append("customer_id = {customer:String}")
    if subject is not None:
        where.append("subject = {subject:String}")
    columns = ", ".join(f"`{c}`" for c in VIOLATION_COLUMNS)
    result = client.query(
        f"SELECT {columns} FROM consistency_violations FINAL WHERE {' AND '.join(where)} "
        "ORDER BY detected_at, customer_id, violation_id LIMIT {limit:UInt32}",
        parameters={"customer": customer_id, "subject": subject, "limit": limit})
    return [{**dict(zip(VIOLATION_COLUMNS, row)), "channels": list(row[4]), "values": list(row[5]),
             "event_ids": list(row[6]), "detected_at": _utc(row[7]).isoformat()} for row in result.result_rows]


# Per (kind, subject, channel): how often it was quoted, its most common value and that value's share, and the most
# common value on all the other channels together (a value's count there is its count on all channels minus its
# count on this one). Ties go to the smallest value, so the answer is deterministic. A channel deviates when its
# most common value is not the other channels' most common value: it systematically tells customers something else.
CHANNEL_SUMMARY = """
WITH
    q AS (SELECT kind, subject, channel, value FROM quotes FINAL),
    by_channel AS (
        SELECT kind, subject, channel, value, count() AS n FROM q GROUP BY kind, subject, channel, value),
    by_subject AS (SELECT kind, subject, value, count() AS n FROM q GROUP BY kind, subject, value),
    channels AS (
        SELECT kind, subject, channel, sum(n) AS quotes, argMin(value, (-toInt64(n), value)) AS top_value,
               max(n) AS top_n
        FROM by_channel GROUP BY kind, subject, channel),
    others AS (
        SELECT c.kind AS kind, c.subject AS subject, c.channel AS channel, s.value AS value,
               s.n - ifNull(b.n, 0) AS n
        FROM channels AS c
        INNER JOIN by_subject AS s ON s.kind = c.kind AND s.subject = c.subject
        LEFT JOIN by_channel AS b
            ON b.kind = c.kind AND b.subject = c.subject AND b.channel = c.channel AND b.value = s.value
        SETTINGS join_use_nulls = 1),
    other_top AS (
        SELECT kind, subject, channel, sum(n) AS other_quotes, argMin(value, (-toInt64(n), value)) AS other_value,
               max(n) AS other_n
        FROM others WHERE n > 0 GROUP BY kind, subject, channel)
SELECT c.kind, c.subject, c.channel, c.quotes, c.top_value, c.top_n / c.quotes AS top_share,
       ifNull(o.other_quotes, 0) AS other_quotes, o.other_value,
       if(o.other_quotes > 0, o.other_n / o.other_quotes, NULL) AS other_share,
       ifNull(o.other_value != c.top_value, false) AS deviates
FROM channels AS c
LEFT JOIN other_top AS o ON o.kind = c.kind AND o.subject = c.subject AND o.channel = c.channel
ORDER BY c.kind, c.subject, c.channel
SETTINGS join_use_nulls = 1
"""
SUMMARY_COLUMNS = ("kind", "subject", "channel", "quotes", "top_value", "top_share", "other_quotes", "other_value",
                   "other_share", "deviates")


def channel_summary(client: Client) -> list[dict]:
    """Across all customers, per (kind, subject, channel): quotes, the channel's most common value and its share,
    the other channels' most common value (None when no other channel quoted it) and its share, and ``deviates``
    when the two most common values differ."""
    rows = client.query(CHANNEL_SUMMARY).result_rows
    return [{**dict(zip(SUMMARY_COLUMNS, row)), "deviates": bool(row[9])} for row in rows]
