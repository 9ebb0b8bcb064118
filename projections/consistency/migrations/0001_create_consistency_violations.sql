-- One row per violation: a customer told different values for one (kind, subject) on different channels within
-- the consistency window. The id derives from the event that caused it, so a replay writes the same row again:
-- ReplacingMergeTree read with FINAL collapses such duplicates.
CREATE TABLE IF NOT EXISTS consistency_violations (
    violation_id String,
    customer_id  String,
    kind         LowCardinality(String),
    subject      String,
    channels     Array(LowCardinality(String)),
    `values`     Array(String),
    event_ids    Array(String),
    detected_at  DateTime64(3, 'UTC'),
    event_id     String,
    topic        LowCardinality(String),
    partition    UInt32,
    offset       UInt64,
    projected_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (customer_id, violation_id)
