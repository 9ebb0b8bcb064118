"""Rebuilds through the service that owns the store (``omnitrail replay`` calls these while a worker runs).

Admin only: a rebuild writes a new table version and switches readers to it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import Any

import anyio
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel

from projections.registry import PROJECTIONS, STATEFUL
from projections.replay import ReplayError
from services.replay import Replays

Projection = Enum("Projection", {name: name for name in [*PROJECTIONS, *STATEFUL]}, type=str)


class ReplayStatus(BaseModel):
    replay: dict[str, Any] | None


class Differences(BaseModel):
    differences: list[dict[str, Any]]


def router(replays: Replays, admin: Callable) -> APIRouter:
    api = APIRouter(tags=["rebuilds"], dependencies=[Depends(admin)])

    async def call(fn, *args):
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except ReplayError as exc:
            raise HTTPException(409, str(exc)) from None

    @api.get("/v1/replay", response_model=ReplayStatus, summary="Progress of the current or last rebuild")
    async def status():
        return {"replay": replays.status()}

    @api.delete("/v1/replay", summary="Cancel the running rebuild")
    async def cancel() -> dict[str, bool]:
        return {"cancelled": replays.cancel()}

    @api.post("/v1/replay/{projection}", status_code=202, response_model=ReplayStatus, summary="Start a rebuild")
    async def start(projection: Projection):
        return {"replay": (await call(replays.start, projection.value)).as_dict()}

    @api.get("/v1/replay/{projection}/verify", response_model=Differences,
             summary="Customers whose rows differ from the previous version")
    async def verify(projection: Projection):
        return {"differences": await call(replays.verify, projection.value)}

    @api.post("/v1/replay/{projection}/drop-old", summary="Drop the version the last rebuild kept")
    async def drop_old(projection: Projection) -> dict[str, bool]:
        return {"dropped": await call(replays.drop_old, projection.value)}

    return api
