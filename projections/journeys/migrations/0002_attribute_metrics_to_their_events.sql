-- The channel metrics count a first response on the day of the customer's message it answered, and a resolved
-- journey on the day of its first step (projections/journeys/queries.py), so both lie within their row's volume.
-- Rows written before this migration have neither time: they read as the journey's start, the old attribution,
-- until the journey's next event or `omnitrail replay journeys` writes them again.
ALTER TABLE journeys ADD COLUMN IF NOT EXISTS first_response_asked_at Array(DateTime64(3, 'UTC'))
    DEFAULT arrayMap(c -> started_at, first_response_channels) AFTER first_response_seconds;
ALTER TABLE journeys ADD COLUMN IF NOT EXISTS first_channel_at DateTime64(3, 'UTC') DEFAULT started_at
    AFTER first_channel
