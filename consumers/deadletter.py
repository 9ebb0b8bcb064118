"""The dead-letter record for an input that could not be decoded: original bytes kept, reason and origin added.

The value and key are copied unchanged so a fixed record can be replayed as it was produced.
"""

from __future__ import annotations

from datetime import UTC, datetime

from projections.origin import Origin

REASON, TOPIC, PARTITION, OFFSET, AT = "dlq_reason", "dlq_topic", "dlq_partition", "dlq_offset", "dlq_at"
REPLAYED_FROM = "dlq_replayed_from"  # set by `omnitrail deadletter replay`: "<dlq partition>:<dlq offset>"


def deadletter_headers(headers, reason: str, origin: Origin, now: datetime | None = None) -> list[tuple[str, bytes]]:
    """Original headers (minus earlier dead-letter ones, but for where a replay came from) plus reason and origin."""
    kept = [(k, v if isinstance(v, bytes) else bytes(v or b"")) for k, v in
            (headers.items() if isinstance(headers, dict) else headers or [])
            if not k.startswith("dlq_") or k == REPLAYED_FROM]  # a replayed record keeps where it came from
    return kept + [(REASON, reason.encode()[:10_000].decode(errors="ignore").encode()), (TOPIC, origin.topic.encode()),
                   (PARTITION, str(origin.partition).encode()), (OFFSET, str(origin.offset).encode()),
                   (AT, (now or datetime.now(UTC)).isoformat().encode())]
