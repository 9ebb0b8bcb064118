"""The named reads analysts run, shared by the CLI, the read API and direct store access.

Each query takes a clickhouse-connect client and typed keyword parameters and returns JSON-ready rows; ``params``
says how to parse each parameter from text (a query string or a command-line option).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from services.readonly import check_statement

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r} (e.g. 2026-11-01T09:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Query:
    target: str  # "module:function", imported when the query runs: a read through the worker imports none of them
    params: dict[str, Callable[[str], object]]
    required: tuple[str, ...] = ()
    by_customer: bool = False  # takes an identifier wherever it takes a customer id (``resolve_customer``)

    def run(self, client: Client, **params) -> list[dict]:
        module, _, name = self.target.partition(":")
        if self.by_customer:
            params["customer_id"] = resolve_customer(client, params["customer_id"])
        return getattr(importlib.import_module(module), name)(client, **params)


def resolve_customer(client: Client, customer_id: str) -> str:
    """The customer a customer argument names: an identifier (``kind:value``, in any spelling that normalises to
    it) names the customer it belongs to now, or, belonging to nobody, itself in normal form (the events recorded
    under it); anything else is a customer id."""
    from projections.identities import queries as identity_queries
    from schemas.identifiers import parse as parse_identifier

    try:
        identifier = parse_identifier(customer_id)
    except ValueError:
        return customer_id
    return identity_queries.owner(client, identifier) or identifier


CUSTOMER = {"customer_id": str}
QUERIES: dict[str, Query] = {
    "timeline": Query("projections.timeline.queries:customer_timeline",
                      {**CUSTOMER, "since": parse_time, "limit": int}, ("customer_id",), by_customer=True),
    "freshness": Query("projections.timeline.queries:freshness", {}),
    "flags": Query("projections.flags.queries:open_flags", {}),
    "suppression": Query("projections.flags.queries:suppression_list", {}),
    "customer_flags": Query("projections.flags.queries:customer_flags", CUSTOMER, ("customer_id",), by_customer=True),
    "consistency": Query("projections.consistency.queries:violations", {**CUSTOMER, "subject": str}),
    "consistency_summary": Query("projections.consistency.queries:channel_summary", {}),
    "journeys": Query("projections.journeys.queries:customer_journeys", CUSTOMER, ("customer_id",), by_customer=True),
    "metrics": Query("projections.journeys.queries:channel_metrics", {"channel": str, "days": int}),
    "whois": Query("projections.identities.queries:whois", {"identifier": str}, ("identifier",)),
}


def run_query(client: Client, name: str, params: dict[str, object]) -> list[dict]:
    """Run query ``name``; text parameters are parsed, typed ones passed as they are; None means left out."""
    if name not in QUERIES:
        raise KeyError(f"no query named {name!r}; known: {', '.join(sorted(QUERIES))}")
    query = QUERIES[name]
    unknown = set(params) - set(query.params)
    if unknown:
        raise ValueError(f"query {name!r} takes {', '.join(query.params)}; not {', '.join(sorted(unknown))}")
    missing = [p for p in query.required if params.get(p) is None]
    if missing:
        raise ValueError(f"query {name!r} needs {', '.join(missing)}")
    typed = {k: query.params[k](v) if isinstance(v, str) else v for k, v in params.items() if v is not None}
    return query.run(client, **typed)


def run_sql(client: Client, statement: str) -> dict:
    """One read-only query (``services.readonly.check_statement``): its column names and rows (the embedded store
    names no columns when there are no rows). Run it on a read-only connection: the check here is for a clear
    message, the connection's ``readonly=1`` is what enforces it."""
    result = client.query(check_statement(statement))
    return {"columns": list(result.column_names), "rows": [list(r) for r in result.result_rows]}
