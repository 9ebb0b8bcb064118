"""Compare what the workers stored with the simulator's ground truth: lost and duplicated, per projection.

Rows are read raw (no FINAL) from one or more stores and collapsed here the way a ReplacingMergeTree does on one
shared ClickHouse server: one row per sort key, the highest ``version`` where the table has one. So two workers
that each wrote their own embedded store can be checked as if they had shared a server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

# table -> (sort key, version column or None, fields compared with the truth)
TABLES = {
    "timeline": (("customer_id", "time", "source", "event_id"), None, ()),
    "address_flags": (("customer_id", "address_hash"), "version",
                      ("customer_id", "address", "status", "returns", "actions", "version")),
    "consistency_violations": (("customer_id", "violation_id"), None,
                               ("customer_id", "kind", "subject", "channels", "values", "event_ids")),
    "journeys": (("customer_id", "journey_id"), "version",
                 ("customer_id", "journey_id", "channels", "channel_switches", "contacts", "transfers",
                  "repeat_contacts", "resolved", "first_contact_resolution", "version")),
    "quotes": (("kind", "subject", "channel", "customer_id", "source", "event_id"), None, ()),
    "feedback": (("customer_id", "source", "event_id"), None, ()),
}

Query = Callable[[str], list[dict]]  # SQL -> rows as dicts, against one store


def _norm(value):
    """One form for values read through different paths (JSON API, CLI, truth): bools as ints, lists as tuples."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    return value


def collapse(table: str, stores: Iterable[Query]) -> list[dict]:
    key, version, fields = TABLES[table]
    columns = sorted({*key, *([version] if version else []), *fields})
    kept: dict[tuple, dict] = {}
    for query in stores:
        for row in query(f"SELECT {', '.join(columns)} FROM {table}"):
            k = tuple(_norm(row[c]) for c in key)
            if k not in kept or (version and row[version] > kept[k][version]):
                kept[k] = row
    return list(kept.values())


def differences(truth: dict, stores: list[Query]) -> dict[str, dict[str, int]]:
    """Per projection, how many expected rows are missing ("lost") and how many are extra or wrong ("duplicated");
    all zero when the stores hold exactly the truth."""
    out = {}
    timeline = Counter(r["customer_id"] for r in collapse("timeline", stores))
    want = Counter(truth["timeline"])
    out["timeline"] = {"lost": sum((want - timeline).values()), "duplicated": sum((timeline - want).values())}

    def compare(name: str, table: str, expected: list[dict]) -> None:
        fields = TABLES[table][2]
        got = Counter(tuple(_norm(r[f]) for f in fields) for r in collapse(table, stores))
        exp = Counter(tuple(_norm(r[f]) for f in fields) for r in expected)
        out[name] = {"lost": sum((exp - got).values()), "duplicated": sum((got - exp).values())}

    compare("flags", "address_flags", [f for c in truth["flags"] for f in truth["flags"][c]])
    compare("violations", "consistency_violations", truth["violations"])
    compare("journeys", "journeys", [j for c in truth["journeys"] for j in truth["journeys"][c]])
    told = sum(truth["per_type"].get(t, 0) for t in ("PriceQuoted", "OfferMade", "AnswerGiven"))
    for name, table, n in (("quotes", "quotes", told), ("feedback", "feedback", truth["per_type"]["FeedbackGiven"])):
        got = len(collapse(table, stores))
        out[name] = {"lost": max(n - got, 0), "duplicated": max(got - n, 0)}
    return out


def resolved_journeys(truth: dict, customer: str) -> list[dict]:
    """The customer's journeys once identities are resolved (what the ``journeys`` read answers): its own and those
    of the identities it has at the end, by start time."""
    mine = [i for i, x in truth["identities"].items() if x["customer_id"] == customer]
    return sorted(truth["journeys"][customer] + [j for i in mine for j in truth["journeys"][i]],
                  key=lambda j: (j["started_at"], j["journey_id"]))


def exact(diffs: dict[str, dict[str, int]]) -> bool:
    return all(d["lost"] == 0 and d["duplicated"] == 0 for d in diffs.values())
