"""Reads of the journeys projection, and per-channel experience metrics over journeys, timeline and feedback.

All reads use FINAL, so duplicate deliveries and older journey snapshots (lower ``version``) collapse at read time.

``channel_metrics`` gives one row per (channel, UTC day) that has any data. Responses and resolutions are counted
on the channel and day of an event that ``volume`` counts too, so a row never has a response time or a resolution
without volume (``volume >= responses`` and ``volume >= resolved_journeys`` in every row):

* ``volume``: interaction events on that channel that day in the timeline (derived events, which the timeline
  shows too, are conclusions, not volume).
* ``responses``, ``response_p50_seconds``, ``response_p90_seconds``: first response times (per journey and
  channel), on the channel and day of the customer's message they answered (``first_response_asked_at``). A reply
  sent the next day, or a journey that started days earlier on another channel, does not move it. Percentiles
  interpolate linearly between the sorted values (``quantileExactInclusive``, like numpy's default and Excel's
  PERCENTILE.INC).
* ``resolved_journeys``, ``fcr_journeys``, ``fcr_share``: resolved journeys by the channel and day of their first
  step (``first_channel``, ``first_channel_at``); the share of them resolved at first contact.
* ``nps_responses``, ``promoters`` (9-10), ``detractors`` (0-6), ``nps`` = 100 * (promoters - detractors) /
  responses; ``ces_responses``, ``ces`` (mean), ``csat_responses``, ``csat`` (mean): feedback about this channel
  (the survey's ``about_channel``, else the channel it came in on), by the day it was given. The answer itself is
  volume of the channel it came in on (usually ``survey``), so a channel can have feedback on a day without volume
  of its own: the ``*_responses`` counts say how many. A metric without data is None.

``days=N`` keeps the N UTC days ending on the day of the newest event in the store (the newest time in timeline,
journeys or feedback), not the wall clock, so historic data works: ``days=1`` is that newest day alone.
"""

from __future__ import annotations

from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client

from projections.identities.queries import customer_rows
from schemas import events as ev

JOURNEY_COLUMNS = ("journey_id", "customer_id", "started_at", "last_at", "channels", "channel_switches", "contacts",
                   "transfers", "repeat_contacts", "first_response_channels", "first_response_seconds", "resolved",
                   "resolved_at", "resolution_seconds", "first_contact_resolution", "first_channel", "event_id",
                   "source", "topic", "partition", "offset", "version")


def customer_journeys(client: Client, customer_id: str) -> list[dict]:
    """The customer's journeys, newest snapshot each, by start time; ``first_response_seconds`` as a dict. Journeys
    folded under an identifier linked to the customer now are the customer's too (``projections/identities``);
    their ``customer_id`` is that identifier."""
    rows = customer_rows(
        client, lambda subjects: f"SELECT {', '.join(JOURNEY_COLUMNS)} FROM journeys FINAL WHERE customer_id IN "
                                 f"({subjects}) ORDER BY started_at, journey_id",
        {"customer": customer_id}, JOURNEY_COLUMNS.index("customer_id"))
    journeys = []
    for row in rows:
        j = dict(zip(JOURNEY_COLUMNS, row))
        j["first_response_seconds"] = dict(zip(j.pop("first_response_channels"), j["first_response_seconds"]))
        for key in ("started_at", "last_at", "resolved_at"):
            j[key] = _utc(j[key]).isoformat() if j[key] is not None else None
        j["channels"] = list(j["channels"])
        journeys.append(j)
    return journeys


def _utc(t: datetime) -> datetime:
    """The store hands back DateTime64(3, 'UTC') values naive (chdb) or aware (a server): make them aware UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


INTERACTION_KINDS = [p.name for p in ev.PAYLOADS]
_NULL = "CAST(NULL, 'Nullable(Float64)')"
_PARTS = f"""
    SELECT toString(channel) AS ch, toDate(time) AS d, count() AS n_volume,
           toUInt64(0) AS n_responses, {_NULL} AS p50, {_NULL} AS p90, toUInt64(0) AS n_resolved,
           toUInt64(0) AS n_fcr, toUInt64(0) AS n_nps, toUInt64(0) AS n_promoters, toUInt64(0) AS n_detractors,
           toUInt64(0) AS n_ces, toUInt64(0) AS sum_ces, toUInt64(0) AS n_csat, toUInt64(0) AS sum_csat
    FROM timeline FINAL WHERE has({{kinds:Array(String)}}, kind) GROUP BY ch, d
    UNION ALL
    SELECT toString(rc) AS ch, toDate(ra) AS d, toUInt64(0), count(),
           quantileExactInclusive(0.5)(rs), quantileExactInclusive(0.9)(rs), toUInt64(0), toUInt64(0),
           toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0)
    FROM journeys FINAL
    ARRAY JOIN first_response_channels AS rc, first_response_seconds AS rs, first_response_asked_at AS ra
    GROUP BY ch, d
    UNION ALL
    SELECT toString(first_channel) AS ch, toDate(first_channel_at) AS d, toUInt64(0), toUInt64(0), {_NULL}, {_NULL},
           count(), countIf(first_contact_resolution), toUInt64(0), toUInt64(0), toUInt64(0), toUInt64(0),
           toUInt64(0), toUInt64(0), toUInt64(0)
    FROM journeys FINAL WHERE resolved GROUP BY ch, d
    UNION ALL
    SELECT toString(channel) AS ch, day AS d, toUInt64(0), toUInt64(0), {_NULL}, {_NULL}, toUInt64(0), toUInt64(0),
           countIf(metric = 'nps'), countIf(metric = 'nps' AND score >= 9), countIf(metric = 'nps' AND score <= 6),
           countIf(metric = 'ces'), toUInt64(sumIf(score, metric = 'ces')),
           countIf(metric = 'csat'), toUInt64(sumIf(score, metric = 'csat'))
    FROM feedback FINAL GROUP BY ch, d
"""
_NEWEST = """(SELECT toDate(greatest((SELECT max(time) FROM timeline), (SELECT max(last_at) FROM journeys),
                                      (SELECT max(time) FROM feedback))))"""
METRIC_COLUMNS = ("channel", "day", "volume", "responses", "response_p50_seconds", "response_p90_seconds",
                  "resolved_journeys", "fcr_journeys", "fcr_share", "nps_responses", "promoters", "detractors", "nps",
                  "ces_responses", "ces", "csat_responses", "csat")


def channel_metrics(client: Client, channel: str | None = None, days: int | None = None) -> list[dict]:
    """Experience metrics per channel and UTC day (see the module doc), by day then channel."""
    where = ["1"]
    if channel is not None:
        where.append("ch = {channel:String}")
    if days is not None:
        if days < 1:
            raise ValueError("days must be at least 1")
        where.append(f"d > {_NEWEST} - {{days:UInt32}}")
    sql = f"""
        SELECT ch, d, sum(n_volume), sum(n_responses), max(p50), max(p90),
               sum(n_resolved), sum(n_fcr), if(sum(n_resolved) > 0, sum(n_fcr) / sum(n_resolved), NULL),
               sum(n_nps), sum(n_promoters), sum(n_detractors),
               if(sum(n_nps) > 0, 100 * (sum(n_promoters) - sum(n_detractors)) / sum(n_nps), NULL),
               sum(n_ces), if(sum(n_ces) > 0, sum(sum_ces) / sum(n_ces), NULL),
               sum(n_csat), if(sum(n_csat) > 0, sum(sum_csat) / sum(n_csat), NULL)
        FROM ({_PARTS}) WHERE {' AND '.join(where)}
        GROUP BY ch, d ORDER BY d, ch"""
    result = client.query(sql, parameters={"channel": channel, "days": days, "kinds": INTERACTION_KINDS})
    return [{**dict(zip(METRIC_COLUMNS, row)), "day": row[1].isoformat()} for row in result.result_rows]
