-- TimescaleDB: continuous aggregates keep samples_1m/samples_1h; no rollup queue is needed.
-- (The plain variant of this migration creates batchwire.rollup_pending.)
SELECT 1;
