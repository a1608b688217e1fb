-- Samples and rollups with the TimescaleDB extension: a hypertable with native compression
-- and continuous aggregates. Table, view and column names are those of the plain backend
-- (0002_samples.plain.sql), so readers never know which one they talk to.
-- Retention is opt-in (raw is the record): see batchwire.store.retention / `db retention`.

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE batchwire.samples (
    tag_id      integer NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision,
    value_text  text,
    -- OPC UA StatusCode (uint32) bit pattern in a signed int4: read with (quality::bigint & 4294967295)
    quality     integer NOT NULL DEFAULT 0,
    context_id  integer
);

-- One-day chunks: at bioprocess rates (10^3..10^5 samples/s) a day's chunk plus its index
-- stays well inside shared memory, and daily chunks line up with the plain backend's partitions.
SELECT create_hypertable('batchwire.samples', by_range('ts', INTERVAL '1 day'), create_default_indexes => false);
CREATE INDEX samples_tag_ts_idx ON batchwire.samples (tag_id, ts);

ALTER TABLE batchwire.samples SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'tag_id',
    timescaledb.compress_orderby = 'ts'
);
SELECT add_compression_policy('batchwire.samples', compress_after => INTERVAL '2 days');

-- Trapezoid integral (value x seconds) over samples given as parallel arrays in any order.
-- Continuous aggregates allow no window functions, so the pairs are collected with array_agg.
-- Times are passed as seconds since the start of the bucket, not since 1970: epoch seconds
-- (~1.7e9) as float8 keep only ~0.2 µs, which put errors of ~1e-9 relative into integrals.
CREATE FUNCTION batchwire.trapz(t double precision[], v double precision[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum((t1 - t0) * (v1 + v0) / 2), 0)
    FROM (SELECT u.t AS t1, u.v AS v1, lag(u.t) OVER w AS t0, lag(u.v) OVER w AS v0
          FROM unnest(t, v) AS u(t, v) WINDOW w AS (ORDER BY u.t)) pairs
$$;

CREATE MATERIALIZED VIEW batchwire.samples_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT tag_id,
       time_bucket(INTERVAL '1 minute', ts) AS bucket,
       min(value) AS min,
       max(value) AS max,
       first(value, ts) AS first,
       last(value, ts) AS last,
       count(*) AS count,
       sum(value) AS sum,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       batchwire.trapz(array_agg(date_part('epoch', ts - time_bucket(INTERVAL '1 minute', ts))), array_agg(value)) AS integral
FROM batchwire.samples
WHERE value IS NOT NULL AND value NOT IN ('NaN', 'Infinity', '-Infinity')
GROUP BY tag_id, time_bucket(INTERVAL '1 minute', ts)
WITH NO DATA;

CREATE MATERIALIZED VIEW batchwire.samples_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT tag_id,
       time_bucket(INTERVAL '1 hour', ts) AS bucket,
       min(value) AS min,
       max(value) AS max,
       first(value, ts) AS first,
       last(value, ts) AS last,
       count(*) AS count,
       sum(value) AS sum,
       min(ts) AS first_ts,
       max(ts) AS last_ts,
       batchwire.trapz(array_agg(date_part('epoch', ts - time_bucket(INTERVAL '1 hour', ts))), array_agg(value)) AS integral
FROM batchwire.samples
WHERE value IS NOT NULL AND value NOT IN ('NaN', 'Infinity', '-Infinity')
GROUP BY tag_id, time_bucket(INTERVAL '1 hour', ts)
WITH NO DATA;

-- Refresh windows reach back 7 days so late and replayed data within a week is folded in by
-- the policy; real-time aggregation (materialized_only = false) covers the newest buckets.
SELECT add_continuous_aggregate_policy('batchwire.samples_1m',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
SELECT add_continuous_aggregate_policy('batchwire.samples_1h',
    start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');
