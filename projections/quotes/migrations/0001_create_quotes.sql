-- One row per value told to a customer. ReplacingMergeTree on the full sort key, read with FINAL: a duplicate
-- delivery of the same (source, id) event collapses at read time. The key starts with (kind, subject, channel):
-- the cross-customer channel summary groups by exactly those.
CREATE TABLE IF NOT EXISTS quotes (
    customer_id  String,
    kind         LowCardinality(String),
    subject      String,
    channel      LowCardinality(String),
    value        String,
    time         DateTime64(3, 'UTC'),
    event_id     String,
    source       String,
    topic        LowCardinality(String),
    partition    UInt32,
    offset       UInt64,
    projected_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (kind, subject, channel, customer_id, source, event_id)
