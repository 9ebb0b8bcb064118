-- One row per (customer, address): the latest state of the address's returns and flag. Every change writes the
-- whole row again with a higher per-address version; ReplacingMergeTree(version) read with FINAL keeps the newest
-- and collapses a replayed row (same version) without waiting for a background merge.
CREATE TABLE IF NOT EXISTS address_flags (
    customer_id  String,
    address_hash String,
    address      String,
    status       LowCardinality(String),
    returns      UInt32,
    first_return Nullable(DateTime64(3, 'UTC')),
    last_return  Nullable(DateTime64(3, 'UTC')),
    actions      Array(String),
    updated_at   DateTime64(3, 'UTC'),
    version      UInt64,
    event_id     String,
    topic        LowCardinality(String),
    partition    UInt32,
    offset       UInt64,
    projected_at DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_id, address_hash)
