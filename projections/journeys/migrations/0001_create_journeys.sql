-- One row per journey and version: every event folded into a journey writes the journey's snapshot with
-- version = the number of events in it. ReplacingMergeTree(version) keeps the newest snapshot, read with FINAL;
-- a replayed event writes the same version again, which collapses too.
CREATE TABLE IF NOT EXISTS journeys (
    journey_id               String,
    customer_id              String,
    started_at               DateTime64(3, 'UTC'),
    last_at                  DateTime64(3, 'UTC'),
    channels                 Array(LowCardinality(String)),
    channel_switches         UInt32,
    contacts                 UInt32,
    transfers                UInt32,
    repeat_contacts          UInt32,
    first_response_channels  Array(LowCardinality(String)),
    first_response_seconds   Array(Float64),
    resolved                 Bool,
    resolved_at              Nullable(DateTime64(3, 'UTC')),
    resolution_seconds       Nullable(Float64),
    first_contact_resolution Bool,
    first_channel            LowCardinality(String),
    event_id                 String,
    source                   String,
    topic                    LowCardinality(String),
    partition                UInt32,
    offset                   UInt64,
    version                  UInt64,
    projected_at             DateTime64(3, 'UTC') DEFAULT now64(3)
) ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_id, journey_id)
