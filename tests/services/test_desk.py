"""The agent desk in a real browser: headless Chromium (Debian's ``chromium``, which ``make setup`` installs) driven
by Playwright, against a real worker serving the pages, with the demo stories published to a real broker.

Screenshots of every page land in ``test-artifacts/desk/``; each page must load without console errors.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from schemas import events as ev
from schemas.envelope import Event
from services import demo
from services.publisher import Publisher
from tests.support.wait import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "desk"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Headless Chromium on a machine without network: no background requests that the sandbox would refuse.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def before_the_address_change() -> list[Event]:
    """The demo stories, except the returned-mail customer's address change: their address is still flagged."""
    events = demo.all_events()
    return [e for e in events if not (e.subject == demo.RETURNED_MAIL_CUSTOMER and e.name == "AddressChanged")]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("no chromium: run `make setup` (it installs Debian's chromium package)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def desk(settings, worker, browser):
    """A page on the desk of a worker that has projected the demo stories; console errors are collected."""
    with Publisher(settings) as publisher:
        publisher.publish_many(sorted(before_the_address_change(), key=lambda e: e.time))
    from services.reader import read

    wait_until(lambda: read(settings, "consistency", customer_id=demo.HOTEL_CUSTOMER), timeout=30)
    wait_until(lambda: [f for f in read(settings, "customer_flags", customer_id=demo.RETURNED_MAIL_CUSTOMER)
                        if f["status"] == "flagged"], timeout=30)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.errors = []
    page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page, settings
    assert page.errors == [], f"console errors: {page.errors}"
    page.close()


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("search,customer", [
    ("@jansen_m", demo.RETURNED_MAIL_CUSTOMER),       # the Twitter handle webcare linked
    ("twitter:@Jansen_M", demo.RETURNED_MAIL_CUSTOMER),
    ("1017 GC 12", demo.RETURNED_MAIL_CUSTOMER),      # postcode and house number of the letters' address
    (demo.HOTEL_CUSTOMER, demo.HOTEL_CUSTOMER),       # the customer id itself
])
def test_search_finds_the_customer(desk, search, customer):
    page, settings = desk
    page.goto(settings.api_url + "/")
    page.keyboard.press("/")  # the keyboard way into the search box
    page.keyboard.type(search)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(f"/customers/{customer}$"))
    expect(page.locator("h1")).to_contain_text(customer)


def test_a_search_without_a_match_says_so(desk):
    page, settings = desk
    page.goto(settings.api_url + "/?q=nobody-at-all")
    expect(page.locator("#no-match")).to_contain_text("No customer matches")
    shoot(page, "search-no-match")


def test_returned_mail_customer_shows_the_undeliverable_banner_beside_the_tweet(desk):
    page, settings = desk
    page.goto(f"{settings.api_url}/customers/{demo.RETURNED_MAIL_CUSTOMER}")
    banner = page.locator(".banner.danger")
    expect(banner).to_contain_text("Address undeliverable — mail suppressed since")
    expect(banner).to_contain_text("Kerkstraat 12")
    tweet = page.locator(".event", has_text="Your letters keep going to my old address")
    expect(tweet).to_be_visible()
    expect(tweet.locator(".channel")).to_have_text("twitter")
    expect(page.locator(".event time").first).to_contain_text("UTC")
    shoot(page, "customer-returned-mail")


def test_hotel_customer_shows_one_journey_over_four_channels_and_both_prices(desk):
    page, settings = desk
    page.goto(f"{settings.api_url}/customers/{demo.HOTEL_CUSTOMER}")
    expect(page.locator(".banner.warning")).to_contain_text("389.00 EUR on phone")
    expect(page.locator(".banner.warning")).to_contain_text("429.00 EUR on web")
    journeys = page.locator(".journey")
    expect(journeys).to_have_count(1)
    expect(journeys.locator(".step")).to_have_text([re.compile(c) for c in ("phone", "web", "email", "partner")])
    shoot(page, "customer")


def test_a_new_event_appears_on_the_open_page(desk):
    page, settings = desk
    page.goto(f"{settings.api_url}/customers/{demo.TRANSFERRED_CUSTOMER}")
    expect(page.locator(".event").first).to_be_visible()
    before = page.locator(".event").count()
    tweet = Event.of(ev.MessageReceived(conversation_id="tw-live", handle="@live", text="Is anyone there? (live)"),
                     customer=demo.TRANSFERRED_CUSTOMER, channel="twitter", source="/test/desk")
    with Publisher(settings) as publisher:
        publisher.publish(tweet)
    expect(page.locator(".event", has_text="Is anyone there? (live)")).to_be_visible(timeout=5000)  # no reload
    assert page.locator(".event").count() == before + 1
    expect(page.locator(".event").first).to_contain_text("Is anyone there? (live)")  # newest first


def test_analyst_page_draws_charts_with_data(desk):
    page, settings = desk
    page.goto(f"{settings.api_url}/analyst")
    volume = page.locator("figure.chart", has_text="Volume")
    expect(volume.locator("svg circle").first).to_be_attached()
    expect(page.locator("#lag")).to_contain_text("events behind")
    expect(page.locator("table", has_text="HOTEL-AMS-DBL-3N")).to_be_visible()
    expect(page.locator("table", has_text="Kerkstraat 12")).to_be_visible()  # the open flag
    shoot(page, "analyst")
