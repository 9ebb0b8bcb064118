-- One row per link or unlink of an identifier to a customer, appended and never updated: the history stays, and
-- who an identifier belongs to now is decided at read time from its newest rows. ReplacingMergeTree on the full
-- sort key, read with FINAL: a duplicate delivery of the same (source, id) event collapses at read time.
-- Sorted by identifier, so reading an identifier's history (whois, and whether a customer's identifiers were linked
-- to someone else since) is a point lookup; the bloom filter on customer_id finds the identifiers a customer was
-- ever linked to without reading the whole table.
CREATE TABLE IF NOT EXISTS identity_links (
    identifier   String,
    customer_id  String,
    action       LowCardinality(String),
    time         DateTime64(3, 'UTC'),
    type         LowCardinality(String),
    channel      LowCardinality(String),
    source       String,
    event_id     String,
    topic        LowCardinality(String),
    partition    UInt32,
    offset       UInt64,
    projected_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX customer_idx customer_id TYPE bloom_filter GRANULARITY 1
) ENGINE = ReplacingMergeTree
ORDER BY (identifier, time, source, event_id)
