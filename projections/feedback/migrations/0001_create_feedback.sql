-- One row per survey answer (FeedbackGiven). ReplacingMergeTree on (customer_id, source, event_id), read with
-- FINAL: a duplicate delivery of the same event collapses at read time.
CREATE TABLE IF NOT EXISTS feedback (
    customer_id  String,
    time         DateTime64(3, 'UTC'),
    day          Date,
    metric       LowCardinality(String),
    score        UInt8,
    channel      LowCardinality(String),
    survey_id    String,
    event_id     String,
    source       String,
    topic        LowCardinality(String),
    partition    UInt32,
    offset       UInt64,
    projected_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree
ORDER BY (customer_id, source, event_id)
