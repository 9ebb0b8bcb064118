"""The agent desk: server-rendered pages for agents (search, the single customer view) and analysts.

Each page runs the same named queries as the JSON API (``services.queries``) on the read-only pool and renders
them with ``views``/``charts``; a few lines of JavaScript refresh the open customer page once a second (the
server renders the fragment, so there is one renderer). Pages need what the read API needs: on loopback without
``api_require_tokens`` nothing; otherwise a read token, which the login page keeps in a same-site cookie.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from projections.identities import queries as identity_queries
from schemas.identifiers import identifier
from schemas.identifiers import parse as parse_identifier
from services.http import charts, views
from services.http.reads import run_read
from services.queries import resolve_customer, run_query
from services.readonly import ReadPool

HERE = Path(__file__).parent
PHONE = re.compile(r"\+?[\d\s\-().]{6,}")
templates = Jinja2Templates(directory=HERE / "templates")
METRICS = [("volume", "Volume", "contacts"), ("response_p50_seconds", "Response time p50", "s"),
           ("response_p90_seconds", "Response time p90", "s"), ("fcr_share", "First-contact resolution", "share"),
           ("nps", "NPS", ""), ("ces", "CES", ""), ("csat", "CSAT", "")]


def customer_view(client, customer: str) -> dict:
    """Everything the customer page shows, from the named queries (``customer`` may be an identifier)."""
    customer = resolve_customer(client, customer)
    timeline = run_query(client, "timeline", {"customer_id": customer})
    flags = run_query(client, "customer_flags", {"customer_id": customer})
    violations = run_query(client, "consistency", {"customer_id": customer})
    journeys = run_query(client, "journeys", {"customer_id": customer})
    return {"customer": customer, "count": len(timeline), "items": views.timeline_items(timeline),
            "banners": views.banners(flags, violations, timeline), "journeys": views.journey_views(journeys),
            "newest": timeline[-1]["event_id"] if timeline else ""}


def search_identifiers(text: str) -> list[str]:
    """The identifiers a search could mean: ``kind:value`` as written, a handle, an e-mail address, a phone or
    WhatsApp number, or a postcode and house number (``1017 GC 12``)."""
    candidates = [(None, text)]
    if text.startswith("@"):
        candidates += [("twitter", text), ("facebook", text[1:])]
    elif "@" in text and ":" not in text:
        candidates.append(("email", text))
    words = text.split()
    if PHONE.fullmatch(text):
        candidates += [("phone", text), ("whatsapp", text)]
    elif len(words) >= 2 and words[-1][:1].isdigit():
        candidates.append(("address", f"{''.join(words[:-1])}-{words[-1]}"))
    found = []
    for kind, value in candidates:
        try:
            found.append(parse_identifier(value) if kind is None else identifier(kind, value))
        except ValueError:
            pass  # not that kind of identifier
    return list(dict.fromkeys(found))


def find_customers(client, text: str) -> list[str]:
    """Customers a search matches: through an identifier they own, by customer id, or by a customer id prefix."""
    owners = [o for i in search_identifiers(text) if (o := identity_queries.owner(client, i))]
    if owners:
        return list(dict.fromkeys(owners))
    exact = client.query("SELECT count() FROM timeline WHERE customer_id = {q:String}",
                         parameters={"q": text}).result_rows[0][0]
    if exact:
        return [text]
    rows = client.query("SELECT DISTINCT customer_id FROM timeline WHERE startsWith(customer_id, {q:String}) "
                        "ORDER BY customer_id LIMIT 20", parameters={"q": text}).result_rows
    return [r[0] for r in rows]


def router(pool: ReadPool, reader: Callable, health: Callable[[], dict]) -> APIRouter:
    pages = APIRouter(include_in_schema=False, dependencies=[Depends(reader)])

    @pages.get("/", response_class=HTMLResponse)
    async def search(request: Request, q: str = ""):
        q = q.strip()[:200]
        matches = await run_read(request, pool, lambda c: find_customers(c, q)) if q else []
        if len(matches) == 1:
            return RedirectResponse(f"/customers/{quote(matches[0], safe='')}", status_code=303)
        return templates.TemplateResponse(request, "search.html", {"q": q, "matches": matches})

    @pages.get("/customers/{customer:path}", response_class=HTMLResponse)
    async def customer(request: Request, customer: str, fragment: bool = False):
        view = await run_read(request, pool, lambda c: customer_view(c, customer))
        return templates.TemplateResponse(request, "customer_body.html" if fragment else "customer.html", view)

    @pages.get("/analyst", response_class=HTMLResponse)
    async def analyst(request: Request, days: int = 30):
        def read(c) -> dict:
            return {"metrics": run_query(c, "metrics", {"days": days}),
                    "summary": [r for r in run_query(c, "consistency_summary", {}) if r["deviates"]],
                    "flags": run_query(c, "flags", {}), "freshness": run_query(c, "freshness", {})[0]}

        data = await run_read(request, pool, read)
        figures = [charts.line_chart(title, data["metrics"], metric, unit) for metric, title, unit in METRICS]
        pipeline = await anyio.to_thread.run_sync(health)
        return templates.TemplateResponse(request, "analyst.html", {
            **data, "charts": figures, "pipeline": pipeline, "days": days, "when": views.when})

    return pages


login_router = APIRouter(include_in_schema=False)  # the login page itself loads without a token


@login_router.get("/login", response_class=HTMLResponse)
async def login(request: Request, next: str = "/"):
    # Only a path of this service: "//host/..." and "/\\host" are other sites to a browser (an open redirect).
    local = next.startswith("/") and not next.startswith(("//", "/\\"))
    return templates.TemplateResponse(request, "login.html", {"next": next if local else "/"})


def unauthorised_page(request: Request, exc: HTTPException):
    """A browser (not an API client) without a token goes to the login page."""
    if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
    return None
