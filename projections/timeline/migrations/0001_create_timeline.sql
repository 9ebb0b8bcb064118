-- One row per event. ReplacingMergeTree on the full sort key, read with FINAL: a duplicate delivery of the same
-- (source, id) event collapses at read time, without waiting for a background merge.
CREATE TABLE IF NOT EXISTS timeline (
    customer_id    String,
    time           DateTime64(3, 'UTC'),
    source         String,
    event_id       String,
    type           LowCardinality(String),
    kind           LowCardinality(String),
    channel        LowCardinality(String),
    correlation_id String,
    summary        String,
    data           String,
    topic          LowCardinality(String),
    partition      UInt32,
    offset         UInt64,
    projected_at   DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (customer_id, time, source, event_id)
