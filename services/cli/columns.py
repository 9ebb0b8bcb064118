"""The columns of each read's table: which fields, under which header, and what goes first when the terminal is
narrow (``keep``: higher stays longer). ``--json`` prints every field whatever is here."""

from __future__ import annotations

from services.cli.tables import Column


def yes_no(value: object) -> str:
    return "yes" if value else "no"


def share(value: object) -> str:
    return f"{value:.0%}"


def one_decimal(value: object) -> str:
    return f"{value:.1f}"


def duration(seconds: object) -> str:
    """``90`` -> ``1m 30s``: the two largest units, which is all a reader takes in."""
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])


TIMELINE = [Column("time", keep=9), Column("channel", keep=8), Column("kind", keep=4),
            Column("summary", keep=7, flex=True, min_width=24)]

FLAGS = [Column("customer_id", "customer", keep=9), Column("address", keep=8, flex=True, min_width=16),
         Column("status", keep=7), Column("returns", keep=6), Column("first_return", "first return", keep=2),
         Column("last_return", "last return", keep=5), Column("actions", keep=1, flex=True)]
SUPPRESSION = [Column("address_hash", "address hash", keep=1, flex=True, min_width=10),
               Column("address", keep=8, flex=True, min_width=16), Column("customer_id", "customer", keep=9)]

VIOLATIONS = [Column("detected_at", "detected at", keep=5), Column("customer_id", "customer", keep=9),
              Column("kind", keep=7), Column("subject", keep=8, flex=True, min_width=16),
              Column("channels", keep=6, flex=True), Column("values", keep=9, flex=True, min_width=22)]
CONSISTENCY_SUMMARY = [
    Column("kind", keep=7), Column("subject", keep=9, flex=True, min_width=16), Column("channel", keep=9),
    Column("quotes", keep=5), Column("top_value", "top value", keep=8, flex=True),
    Column("top_share", "top %", keep=4, format=share), Column("other_quotes", "others' quotes", keep=1),
    Column("other_value", "others' top", keep=6, flex=True), Column("other_share", "others %", keep=3, format=share),
    Column("deviates", keep=9, format=yes_no)]

JOURNEYS = [Column("journey_id", "journey", keep=5, flex=True), Column("started_at", "started", keep=9),
            Column("channels", keep=8, flex=True), Column("channel_switches", "switches", keep=4),
            Column("contacts", keep=6), Column("transfers", keep=5), Column("repeat_contacts", "repeats", keep=1),
            Column("resolved", keep=7, format=yes_no),
            Column("resolution_seconds", "resolved in", keep=2, format=duration),
            Column("first_contact_resolution", "FCR", keep=6, format=yes_no)]

METRICS = [Column("channel", keep=9), Column("day", keep=9), Column("volume", keep=8),
           Column("responses", "replies", keep=3), Column("response_p50_seconds", "reply p50", keep=6, format=duration),
           Column("response_p90_seconds", "reply p90", keep=4, format=duration),
           Column("resolved_journeys", "resolved", keep=1), Column("fcr_share", "FCR", keep=5, format=share),
           Column("nps", "NPS", keep=5, format=one_decimal), Column("ces", "CES", keep=4, format=one_decimal),
           Column("csat", "CSAT", keep=4, format=one_decimal)]

LINKS = [Column("time", keep=9), Column("action", keep=8), Column("customer_id", "customer", keep=9),
         Column("type", keep=3, flex=True), Column("channel", keep=5), Column("event_id", "event", keep=4, flex=True)]

PARTITIONS = [Column("topic", keep=9, flex=True, min_width=16), Column("partition", keep=9),
              Column("committed", keep=7), Column("end", keep=8), Column("lag", keep=9)]

DEAD_LETTERS = [Column("dlq", keep=9), Column("dead_lettered_at", "dead-lettered at", keep=4),
                Column("origin", keep=6, flex=True), Column("key", keep=5, flex=True, min_width=8),
                Column("size", keep=2), Column("reason", keep=8, flex=True, min_width=20),
                Column("value", keep=3, flex=True)]
