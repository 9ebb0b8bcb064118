"""The named reads analysts run, shared by the CLI, the read API and direct store access.

Each query takes a clickhouse-connect client and typed keyword parameters and returns JSON-ready rows; ``params``
says how to parse each parameter from text (a query string or a command-line option).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from projections.consistency import queries as consistency_queries
from projections.flags import queries as flag_queries
from projections.identities import queries as identity_queries
from projections.journeys import queries as journey_queries
from projections.timeline.queries import customer_timeline, freshness
from schemas.identifiers import parse as parse_identifier
from services.readonly import check_statement


def parse_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {text!r} (e.g. 2026-11-01T09:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class Query:
    run: Callable[..., list[dict]]
    params: dict[str, Callable[[str], object]]
    required: tuple[str, ...] = ()


def resolve_customer(client: Client, customer_id: str) -> str:
    """The customer a customer argument names: an identifier (``kind:value``, in any spelling that normalises to
    it) names the customer it belongs to now, or, belonging to nobody, itself in normal form (the events recorded
    under it); anything else is a customer id."""
    try:
        identifier = parse_identifier(customer_id)
    except ValueError:
        return customer_id
    return identity_queries.owner(client, identifier) or identifier


def by_customer(run: Callable[..., list[dict]]) -> Callable[..., list[dict]]:
    """A per-customer query that takes an identifier wherever it takes a customer id (``resolve_customer``)."""
    def resolved(client: Client, customer_id: str, **params) -> list[dict]:
        return run(client, resolve_customer(client, customer_id), **params)
    return resolved


QUERIES: dict[str, Query] = {
    "timeline": Query(by_customer(customer_timeline), {"customer_id": str, "since": parse_time, "limit": int},
                      ("customer_id",)),
    "freshness": Query(freshness, {}),
    "flags": Query(flag_queries.open_flags, {}),
    "suppression": Query(flag_queries.suppression_list, {}),
    "customer_flags": Query(by_customer(flag_queries.customer_flags), {"customer_id": str}, ("customer_id",)),
    "consistency": Query(consistency_queries.violations, {"customer_id": str, "subject": str}),
    "consistency_summary": Query(consistency_queries.channel_summary, {}),
    "journeys": Query(by_customer(journey_queries.customer_journeys), {"customer_id": str}, ("customer_id",)),
    "metrics": Query(journey_queries.channel_metrics, {"channel": str, "days": int}),
    "whois": Query(identity_queries.whois, {"identifier": str}, ("identifier",)),
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
