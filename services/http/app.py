"""The FastAPI application: routes, the guard in front of them, and JSON errors.

The guard answers before any route runs:

* ``Host`` must be a loopback name, ``api_host`` or one of ``api_allowed_hosts``: a web page that rebinds its own
  DNS name to 127.0.0.1 gets 400 instead of reaching a loopback service.
* A request that can change something (any method but GET/HEAD/OPTIONS) from a browser must come from the
  service's own origin, and its body must be JSON, CloudEvents JSON or binary-mode CloudEvents (``ce-*``
  headers): a cross-site form or ``text/plain`` POST, which browsers send without asking, gets 403/415.

Every error is ``{"error": "..."}`` (with per-event results for ingest and per-field problems for bad parameters).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.channels import Channel
from services.credentials import Credentials
from services.http import ingest, pages, rebuilds, reads
from services.http.auth import LOOPBACK_NAMES, Auth, is_loopback
from services.readonly import ReadPool
from services.replay import Replays
from services.settings import Settings
from services.status import pipeline_health

log = logging.getLogger("omnitrail.http")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
BODY_TYPES = ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json")


class Pipeline(BaseModel):
    lag: int | None          # events the workers have not projected yet
    deadletters: int | None  # records on the dead-letter topic
    error: str | None        # why a figure is unknown (Kafka unreachable)


class Problem(BaseModel):
    error: str
    problems: list[str] | None = None
    events: list[ingest.EventResult] | None = None


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text} for code, text in [
        (400, "Bad request (a bad parameter or query; a Host the service does not answer)"),
        (401, "Missing or unknown key or token"), (403, "Not allowed for this key, token or origin"),
        (404, "No such resource"), (405, "Method not allowed"), (409, "Conflicts with a running rebuild"),
        (413, "Request too large"), (415, "Unsupported content type"), (422, "Invalid input"),
        (503, "The broker did not acknowledge every event"), (504, "The query ran past its time limit")]}

CLOUDEVENT = {
    "type": "object", "title": "CloudEvent", "additionalProperties": False,
    "description": "A CloudEvents 1.0 interaction event; `data` follows the published JSON Schema of its `type` "
                   "(schemas/json/<type>.json).",
    "required": ["specversion", "id", "source", "type", "subject", "time", "channel", "data"],
    "properties": {
        "specversion": {"const": "1.0"}, "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "source": {"type": "string", "minLength": 1, "maxLength": 500},
        "type": {"type": "string", "examples": ["omnitrail.CallStarted.v1"]},
        "subject": {"type": "string", "minLength": 1, "maxLength": 200, "description": "customer id"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"}, "dataschema": {"type": "string", "maxLength": 500},
        "channel": {"enum": [c.value for c in Channel]},
        "correlationid": {"type": "string", "minLength": 1, "maxLength": 200},
        "causationid": {"type": "string", "minLength": 1, "maxLength": 200},
        "data": {"type": "object"}}}


def allowed_hosts(settings: Settings) -> set[str]:
    extra = {h.strip().lower() for h in settings.api_allowed_hosts.split(",") if h.strip()}
    return {*LOOPBACK_NAMES, settings.api_host.lower(), *extra}


def _host(value: str) -> str:
    return (urlsplit(f"//{value}").hostname or "").lower()


class Guard:
    """The Host allow-list and the cross-origin rule (see the module docstring), as plain ASGI middleware."""

    def __init__(self, app, hosts: set[str]):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        refusal = None
        if _host(host) not in self.hosts:
            refusal = 400, (f"this service does not answer for Host {host!r}; add it to OMNITRAIL_API_ALLOWED_HOSTS "
                            "if it is a name of this service")
        elif scope["method"] not in SAFE_METHODS:
            origin = headers.get("origin")
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
                refusal = 403, f"cross-origin request from {origin!r} refused"
            elif headers.get("content-length", "0") != "0" and ctype not in BODY_TYPES and "ce-specversion" not in headers:
                # (ce-* headers, like a JSON content-type, are something a cross-site form cannot send)
                refusal = 415, f"send the body as application/json (or a CloudEvents type), not {ctype or 'none'!r}"
        if refusal:
            return await JSONResponse({"error": refusal[1]}, refusal[0])(scope, receive, send)
        return await self.app(scope, receive, send)


def create_app(settings: Settings, *, pool: ReadPool | None = None, ingestor: ingest.Ingest | None = None,
               replays: Replays | None = None, credentials: Credentials | None = None) -> FastAPI:
    """The service for ``settings``; the parts not given are built from them (nothing connects until used)."""
    credentials = credentials or Credentials(settings.credentials_path)
    auth = Auth(credentials, settings.api_require_tokens or not is_loopback(settings.api_host))
    pool = pool or ReadPool(settings.read_url, settings.api_query_seconds)
    ingestor = ingestor or ingest.Ingest(settings)
    replays = replays or Replays(settings)

    app = FastAPI(title="omnitrail", version="1", responses=ERRORS, redoc_url=None,
                  description="CloudEvents ingest for channel producers and read-only projections for analysts.")
    app.state.close = lambda: (pool.close(), ingestor.close(), replays.close())
    app.add_middleware(Guard, hosts=allowed_hosts(settings))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if (page := pages.unauthorised_page(request, exc)) is not None:
            return page
        body: dict[str, Any] = {"error": str(exc.detail)}
        if isinstance(exc, ingest.IngestRefused):
            body["events"] = exc.events
        return JSONResponse(body, exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        return JSONResponse({"error": "invalid request: " + "; ".join(problems), "problems": problems}, 422)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the service log"}, 500)

    @app.get("/health", tags=["operations"], summary="Liveness")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    app.include_router(ingest.router(ingestor, auth.write_key))
    app.include_router(reads.router(pool, auth.reader))
    app.include_router(rebuilds.router(replays, auth.admin))
    @app.get("/v1/pipeline", tags=["reads"], response_model=Pipeline, dependencies=[Depends(auth.reader)],
             summary="Pipeline health: lag and dead letters")
    async def pipeline():
        return await anyio.to_thread.run_sync(pipeline_health, settings)

    app.include_router(pages.login_router)
    app.include_router(pages.router(pool, auth.reader, lambda: pipeline_health(settings)))
    app.mount("/static", StaticFiles(directory=pages.HERE / "static"), name="static")

    def openapi() -> dict:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            doc["components"]["schemas"]["CloudEvent"] = CLOUDEVENT
            doc["components"]["securitySchemes"] = {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "a write key (ingest) or read token (reads, rebuilds: admin tokens)"}}
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
