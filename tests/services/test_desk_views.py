"""The agent desk's views and charts are pure: rows of the named queries in, what the pages show out."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from services.http import charts, views

FLAG = {"address_hash": "h1", "address": "Kerkstraat 12, 1017 GC Amsterdam, NL", "status": "flagged", "returns": 3,
        "first_return": "2026-10-08T09:00:00+00:00", "last_return": "2026-11-05T09:00:00+00:00",
        "actions": ["flagged"], "updated_at": "2026-11-05T09:00:00+00:00"}


def row(kind: str, time: str, channel: str = "mail", **data) -> dict:
    return {"kind": kind, "time": time, "channel": channel, "summary": f"{kind} summary", "event_id": f"e-{time}",
            "data": data}


def test_an_open_flag_is_the_first_banner_and_says_since_when_mail_is_suppressed():
    timeline = [row("AddressFlagged", "2026-10-22T09:00:00", address_hash="h1")]
    violation = {"kind": "price", "subject": "HOTEL", "values": ["389.00 EUR", "429.00 EUR"],
                 "channels": ["phone", "web"], "detected_at": "2026-10-07T09:45:00+00:00"}
    banners = views.banners([FLAG], [violation], timeline)
    assert [b.level for b in banners] == ["danger", "warning"]
    assert banners[0].title == "Address undeliverable — mail suppressed since 2026-10-22 09:00 UTC"
    assert banners[1].title == "Different prices given for HOTEL: 389.00 EUR on phone, 429.00 EUR on web"


def test_a_cleared_flag_is_information_with_its_reason():
    cleared = {**FLAG, "status": "cleared", "actions": ["flagged", "cleared: address changed"],
               "updated_at": "2026-11-07T19:00:00+00:00"}
    [banner] = views.banners([cleared], [], [])
    assert banner.level == "info" and banner.detail == "flag cleared 2026-11-07 19:00 UTC: address changed"


def test_open_cases_are_the_ones_not_resolved_since():
    timeline = [row("CaseOpened", "2026-10-01T09:00:00", case_id="A"), row("CaseOpened", "2026-10-02T09:00:00",
                case_id="B"), row("CaseResolved", "2026-10-03T09:00:00", case_id="A")]
    assert [c["data"]["case_id"] for c in views.open_cases(timeline)] == ["B"]
    assert [b.title for b in views.banners([], [], timeline)] == ["Open case B since 2026-10-02 09:00 UTC"]


def test_the_timeline_is_newest_first_with_zoned_times_and_channel_looks():
    items = views.timeline_items([row("MailSent", "2026-10-01T09:00:00"),
                                  row("MessageReceived", "2026-10-02T10:30:00+02:00", channel="twitter")])
    assert [i.kind for i in items] == ["MessageReceived", "MailSent"]
    assert items[0].time == "2026-10-02 08:30 UTC" and (items[0].icon, items[0].colour) == views.CHANNELS["twitter"]


def test_a_chart_draws_one_line_per_channel_and_escapes_labels():
    rows = [{"channel": "phone", "day": f"2026-10-0{d}", "volume": d} for d in range(1, 4)] + \
           [{"channel": "web<script>", "day": "2026-10-02", "volume": 5}]
    svg = charts.line_chart("Volume", rows, "volume", "contacts")
    assert "<script>" not in svg and "web&lt;script&gt;" in svg
    figure = ET.fromstring(svg)  # well-formed markup
    drawn = figure.find("svg")
    assert len(drawn.findall("polyline")) == 1 and len(drawn.findall("circle")) == 4


def test_a_chart_without_values_says_so():
    assert "no data yet" in charts.line_chart("NPS", [{"channel": "phone", "day": "2026-10-01", "nps": None}], "nps")
