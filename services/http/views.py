"""What the agent desk shows, from the rows of the named queries: pure functions, unit-tested without a browser.

The pages (``pages``) only fetch rows and render these views, so everything on a page also comes from the JSON API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

# channel -> (icon, colour): the same on every page, so an agent learns them once.
CHANNELS: dict[str, tuple[str, str]] = {
    # Plain symbols rather than emoji: they render with the fonts every desktop has.
    "mail": ("✉", "#8d6e63"), "phone": ("☎", "#1e88e5"), "email": ("@", "#5e35b1"), "webchat": ("✎", "#00897b"),
    "whatsapp": ("✆", "#2e7d32"), "twitter": ("X", "#263238"), "facebook": ("f", "#3b5998"),
    "store": ("⌂", "#e65100"), "web": ("⊕", "#546e7a"), "survey": ("★", "#9e9d24"), "partner": ("⇄", "#6d4c41")}


@dataclass(frozen=True)
class Banner:
    level: str   # danger | warning | info
    title: str
    detail: str = ""


@dataclass(frozen=True)
class Item:
    time: str
    channel: str
    icon: str
    colour: str
    kind: str
    summary: str
    event_id: str


def when(value: str | datetime | None) -> str:
    """An RFC 3339 time (naive means UTC, as the store hands them back) as ``2026-10-05 09:00 UTC``."""
    if value is None:
        return ""
    t = datetime.fromisoformat(value) if isinstance(value, str) else value
    t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    return t.strftime("%Y-%m-%d %H:%M UTC")


def look(channel: str) -> tuple[str, str]:
    return CHANNELS.get(channel, ("•", "#757575"))


def timeline_items(rows: list[dict]) -> list[Item]:
    """Newest first."""
    items = [Item(when(r["time"]), r["channel"], *look(r["channel"]), r["kind"], r["summary"], r["event_id"])
             for r in rows]
    return items[::-1]


def open_cases(rows: list[dict]) -> list[dict]:
    """Cases opened on the timeline and not resolved since (by ``case_id``)."""
    cases: dict[str, dict] = {}
    for r in rows:
        case_id = (r.get("data") or {}).get("case_id")
        if r["kind"] == "CaseOpened" and case_id:
            cases[case_id] = r
        elif r["kind"] == "CaseResolved" and case_id:
            cases.pop(case_id, None)
    return list(cases.values())


def banners(flags: list[dict], violations: list[dict], timeline: list[dict]) -> list[Banner]:
    """What an agent must not miss, most urgent first."""
    out = []
    flagged_at = {(r.get("data") or {}).get("address_hash"): r["time"] for r in timeline if r["kind"] == "AddressFlagged"}
    for f in flags:
        if f["status"] == "flagged":
            out.append(Banner("danger", "Address undeliverable — mail suppressed since "
                                        f"{when(flagged_at.get(f['address_hash'], f['last_return']))}",
                              f"{f['returns']} letters returned from {f['address']}; do not send mail there, "
                              "ask the customer for their current address."))
    for v in violations:
        told = ", ".join(f"{value} on {channel}" for value, channel in zip(v["values"], v["channels"]))
        out.append(Banner("warning", f"Different {v['kind']}s given for {v['subject']}: {told}",
                          f"detected {when(v['detected_at'])}; honour what the customer was told first, "
                          "or explain the difference."))
    for case in open_cases(timeline):
        out.append(Banner("warning", f"Open case {case['data']['case_id']} since {when(case['time'])}",
                          case["summary"]))
    for f in flags:
        if f["status"] == "cleared":
            reason = next((a.split(": ", 1)[1] for a in reversed(f["actions"]) if a.startswith("cleared")), "")
            out.append(Banner("info", f"Address {f['address']} was undeliverable ({f['returns']} letters returned)",
                              f"flag cleared {when(f['updated_at'])}" + (f": {reason}" if reason else "")))
    return out


def journey_views(rows: list[dict]) -> list[dict]:
    """Newest first, with the channel path and what the journey cost the customer."""
    out = []
    for j in sorted(rows, key=lambda r: r["started_at"], reverse=True):
        out.append({
            "id": j["journey_id"], "started": when(j["started_at"]), "last": when(j["last_at"]),
            "path": [(c, *look(c)) for c in j["channels"]], "switches": j["channel_switches"],
            "contacts": j["contacts"], "transfers": j["transfers"], "repeats": j["repeat_contacts"],
            "resolved": j["resolved"], "fcr": j["first_contact_resolution"]})
    return out
