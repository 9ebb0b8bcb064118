"""The read API: the named queries of ``services.queries`` with typed parameters, and read-only SQL.

Every read runs on the read-only pool (``services.readonly``) in a worker thread, so reads run side by side; when
the caller hangs up, its query is killed instead of running on for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import BaseModel, Field

from schemas.channels import Channel
from services.queries import run_query, run_sql
from services.readonly import QueryTimeout, ReadOnlyViolation, ReadPool

CustomerId = Annotated[str, Path(min_length=1, max_length=200, description="Customer id (the events' subject)")]
Limit = Annotated[int, Query(ge=1, le=100_000, description="At most this many rows")]


class Rows(BaseModel):
    rows: list[dict[str, Any]]


class SqlRequest(BaseModel):
    sql: str = Field(min_length=1, max_length=100_000, description="One read-only query (SELECT, WITH, SHOW, ...)")


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[list[Any]]


def json_response(obj) -> Response:
    return Response(orjson.dumps(obj, default=str), media_type="application/json")  # Decimal prices as text


async def run_read(request: Request, pool: ReadPool, fn: Callable) -> Any:
    """``fn(client)`` on the read pool; killed if the caller disconnects while it runs."""
    marker = pool.marker()
    task = asyncio.ensure_future(anyio.to_thread.run_sync(pool.run, fn, marker))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.2)
            if done:
                return task.result()
            if await request.is_disconnected():
                await anyio.to_thread.run_sync(pool.cancel, marker)
                raise HTTPException(499, "the caller closed the connection; its query was cancelled")
    except ReadOnlyViolation as exc:
        raise HTTPException(403, str(exc)) from None
    except QueryTimeout as exc:
        raise HTTPException(504, str(exc)) from None
    except (ValueError, KeyError) as exc:
        raise HTTPException(400, str(exc)) from None
    finally:
        if not task.done():
            task.add_done_callback(lambda t: t.exception())  # the killed query's error is expected: not logged


def utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def router(pool: ReadPool, reader: Callable) -> APIRouter:
    api = APIRouter(tags=["reads"], dependencies=[Depends(reader)])

    async def rows(request: Request, name: str, **params) -> Response:
        params = {k: v for k, v in params.items() if v is not None}
        return json_response({"rows": await run_read(request, pool, lambda c: run_query(c, name, params))})

    @api.get("/v1/timeline/{customer_id:path}", response_model=Rows, summary="A customer's interactions in time order")
    async def timeline(request: Request, customer_id: CustomerId, since: datetime | None = None,
                       limit: Limit = 10_000):
        return await rows(request, "timeline", customer_id=customer_id, since=utc(since), limit=limit)

    @api.get("/v1/freshness", response_model=Rows, summary="How current the projections are")
    async def freshness(request: Request):
        return await rows(request, "freshness")

    @api.get("/v1/flags", response_model=Rows, summary="Addresses flagged undeliverable")
    async def flags(request: Request):
        return await rows(request, "flags")

    @api.get("/v1/suppression", response_model=Rows, summary="Addresses mail producers must not send to")
    async def suppression(request: Request):
        return await rows(request, "suppression")

    @api.get("/v1/customer_flags/{customer_id:path}", response_model=Rows, summary="A customer's address flags")
    async def customer_flags(request: Request, customer_id: CustomerId):
        return await rows(request, "customer_flags", customer_id=customer_id)

    @api.get("/v1/consistency", response_model=Rows, summary="Channel-consistency violations")
    async def consistency(request: Request, customer_id: Annotated[str | None, Query(max_length=200)] = None,
                          subject: Annotated[str | None, Query(max_length=200)] = None):
        return await rows(request, "consistency", customer_id=customer_id, subject=subject)

    @api.get("/v1/consistency_summary", response_model=Rows, summary="Violations per channel")
    async def consistency_summary(request: Request):
        return await rows(request, "consistency_summary")

    @api.get("/v1/journeys/{customer_id:path}", response_model=Rows, summary="A customer's journeys")
    async def journeys(request: Request, customer_id: CustomerId):
        return await rows(request, "journeys", customer_id=customer_id)

    @api.get("/v1/whois/{identifier:path}", response_model=Rows,
             summary="The customer an identifier belongs to now, and its history of links")
    async def whois(request: Request, identifier: Annotated[str, Path(
            min_length=3, max_length=600, description="kind:value, e.g. twitter:@jan or address:1234AB-1")]):
        return await rows(request, "whois", identifier=identifier)

    @api.get("/v1/metrics", response_model=Rows, summary="Experience metrics per channel and day")
    async def metrics(request: Request, channel: Channel | None = None,
                      days: Annotated[int, Query(ge=1, le=3660)] = 30):
        return await rows(request, "metrics", channel=channel.value if channel else None, days=days)

    @api.post("/v1/sql", response_model=SqlResult, summary="One read-only SQL query")
    async def sql(request: Request, body: SqlRequest):
        result = await run_read(request, pool, lambda c: run_sql(c, body.sql))
        return json_response({"columns": result["columns"], "rows": result["rows"]})

    return api
