"""Reads of the identity graph: who an identifier belongs to now, and the subjects whose events are a customer's.

**Who an identifier belongs to.** An identifier belongs to the customer of its newest link, unless that customer
unlinked it after that link; newest by event time, ties by log position (topic, partition, offset). So a link to
another customer moves the identifier there, an unlink by the customer who has it leaves it to nobody (until the
next link), and an unlink by anyone else changes nothing. In SQL: an identifier is linked to customer C when the
newest of its links and of C's unlinks of it is a link by C. Rows are never updated, so the history stays.

The rule is evaluated on every read, so a link, re-link or unlink shows on the next read, also for events recorded
under the identifier before it was linked. Links are one level deep: an identifier linked to an identifier is not
followed further. Deciding who has an identifier reads identity_links without FINAL: a duplicate delivery repeats
the customer and the action of its event, so collapsing duplicates first would not change the newest row's answer
(and FINAL costs a merge on every look-up); the history ``whois`` shows is read with FINAL, each event once.

A customer's rows (timeline, journeys, flags) are read with ``customer_rows``: the rows of the customer and of every
identifier it ever had, and the rule evaluated only for identifiers that rows were recorded under (few customers
have any), which answers as the one query with ``SUBJECTS`` in its WHERE would, at a fraction of its cost.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from schemas.identifiers import parse

_POSITION = "time, topic, partition, offset"
_NEWEST = f"({_POSITION})"


def _linked_to(customer: str) -> tuple[str, str]:
    """WHERE and HAVING of a GROUP BY identifier over identity_links: the identifiers linked to ``customer`` (an
    SQL expression) now."""
    return (f"(action = 'link' OR customer_id = {customer})",
            f"argMax((customer_id, action), {_NEWEST}) = ({customer}, 'link')")


_WHERE, _HAVING = _linked_to("{customer:String}")
LINKED = f"""SELECT identifier FROM identity_links
    WHERE identifier IN (SELECT identifier FROM identity_links WHERE customer_id = {{customer:String}}) AND {_WHERE}
    GROUP BY identifier HAVING {_HAVING}"""
"""SQL: the identifiers linked now to the customer bound to the query parameter ``customer``."""

SUBJECTS = f"SELECT {{customer:String}} UNION ALL {LINKED}"
"""SQL: the subjects whose events are the customer's (bound to ``customer``): its own id and its identifiers."""

EVER = "SELECT {customer:String} UNION ALL SELECT identifier FROM identity_links WHERE customer_id = {customer:String}"
"""SQL: the customer (bound to ``customer``) and every identifier it ever linked or unlinked: a superset of
``SUBJECTS`` (an identifier linked to the customer has a row of the customer), found with one index lookup."""

_LINKED_AMONG = f"""SELECT identifier FROM identity_links
    WHERE identifier IN {{identifiers:Array(String)}} AND {_WHERE} GROUP BY identifier HAVING {_HAVING}"""

_OWNER_WHERE, _OWNER_HAVING = _linked_to("newest_link")
_OWNER = f"""
    WITH (SELECT argMaxIf(customer_id, {_NEWEST}, action = 'link') FROM identity_links
          WHERE identifier = {{identifier:String}}) AS newest_link
    SELECT any(newest_link) FROM identity_links
    WHERE identifier = {{identifier:String}} AND {_OWNER_WHERE}
    GROUP BY identifier HAVING {_OWNER_HAVING}"""

HISTORY_COLUMNS = ("time", "action", "customer_id", "type", "channel", "source", "event_id", "topic", "partition",
                   "offset")


def customer_rows(client: Client, statement: Callable[[str], str], parameters: dict, subject: int,
                  limit: int | None = None) -> list[tuple]:
    """The rows of ``statement(subjects)`` with ``subjects`` = ``SUBJECTS``: a query of the rows ``WHERE customer_id
    IN (<subjects>)`` of the customer bound to ``parameters["customer"]``, whose column ``subject`` (an index) is
    the row's customer_id and whose LIMIT is ``limit`` (None: it has none). Answers exactly as that query would.

    Why not just that query: resolving ``SUBJECTS`` costs two index lookups and an aggregation on every read (7-8 ms
    of a ~17 ms timeline read at 10M rows, bench/reads.py), while few customers have events recorded under an
    identifier. So the rows of the customer and of every identifier it ever had (``EVER``, one index lookup) are
    read, and only when some were recorded under an identifier are those identifiers checked: rows of an
    identifier that is not the customer's now are left out. The rows come in the query's order, so what stays is
    the first rows of the customer's subjects, unless the LIMIT cut the read short and some rows were left out:
    then the query runs again with ``SUBJECTS``. A link, re-link or unlink stored before the read shows in it, as
    in the one query (both read identity_links as it is when they run)."""
    customer = parameters["customer"]
    rows = client.query(statement(EVER), parameters=parameters).result_rows
    recorded_under = {row[subject] for row in rows} - {customer}
    if not recorded_under:
        return rows
    theirs = {row[0] for row in client.query(
        _LINKED_AMONG, parameters={"customer": customer, "identifiers": sorted(recorded_under)}).result_rows}
    if theirs == recorded_under:
        return rows
    if limit is not None and len(rows) >= limit:
        return client.query(statement(SUBJECTS), parameters=parameters).result_rows
    return [row for row in rows if row[subject] == customer or row[subject] in theirs]


def owner(client: Client, identifier: str) -> str | None:
    """The customer the identifier (in normal form) belongs to now; None if it was never linked or is unlinked."""
    rows = client.query(_OWNER, parameters={"identifier": identifier}).result_rows
    return rows[0][0] if rows else None


def whois(client: Client, identifier: str) -> list[dict]:
    """One row: the identifier in normal form, the customer it belongs to now (or None), and its history of links
    and unlinks, oldest first; no row for an identifier never linked. ``ValueError`` for text that is not an
    identifier (``kind:value``)."""
    identifier = parse(identifier)
    result = client.query(
        f"SELECT {', '.join(HISTORY_COLUMNS)} FROM identity_links FINAL WHERE identifier = {{identifier:String}} "
        f"ORDER BY {_POSITION}", parameters={"identifier": identifier})
    if not result.result_rows:
        return []
    history = [{**dict(zip(HISTORY_COLUMNS, row)), "time": _utc(row[0]).isoformat()} for row in result.result_rows]
    return [{"identifier": identifier, "customer_id": owner(client, identifier), "history": history}]


def _utc(t: datetime) -> datetime:
    """The store hands back DateTime64(3, 'UTC') values naive (chdb) or aware (a server): make them aware UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
