-- Partition span from the expected ingest rate: batchwire.settings 'partition_days'
-- (written by `batchwire db migrate --expected-rate N`; default 1). A partition of k days
-- starts on a day number (since 1970-01-01) divisible by k. Changing k never re-cuts
-- existing partitions: a new partition is shrunk to the days no existing one covers.

CREATE FUNCTION batchwire.sample_partitions()
RETURNS TABLE (name text, lo timestamptz, hi timestamptz) LANGUAGE sql STABLE AS $$
    SELECT c.relname::text,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = 'batchwire.samples_packed'::regclass AND c.relname <> 'samples_packed_default'
$$;

CREATE OR REPLACE FUNCTION batchwire.ensure_partitions(first_day date, last_day date)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    d date;
    span integer;
    lo_day date;
    hi_day date;
    pname text;
    lo timestamptz;
    hi timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('batchwire.partitions'));
    span := coalesce((SELECT value::integer FROM batchwire.settings WHERE key = 'partition_days'), 1);
    d := first_day;
    WHILE d <= last_day LOOP
        IF NOT EXISTS (SELECT 1 FROM batchwire.sample_partitions() p
                       WHERE p.lo <= (d::timestamp AT TIME ZONE 'UTC') AND p.hi > (d::timestamp AT TIME ZONE 'UTC')) THEN
            lo_day := d - ((d - DATE '1970-01-01') % span);
            hi_day := lo_day + span;
            -- never overlap an existing partition (one made with another span)
            lo_day := greatest(lo_day, coalesce((SELECT max((p.hi AT TIME ZONE 'UTC')::date) FROM batchwire.sample_partitions() p
                                                 WHERE p.hi <= (d::timestamp AT TIME ZONE 'UTC')), lo_day));
            hi_day := least(hi_day, coalesce((SELECT min((p.lo AT TIME ZONE 'UTC')::date) FROM batchwire.sample_partitions() p
                                              WHERE p.lo > (d::timestamp AT TIME ZONE 'UTC')), hi_day));
            pname := batchwire.partition_name(lo_day);
            lo := (lo_day::timestamp AT TIME ZONE 'UTC');
            hi := (hi_day::timestamp AT TIME ZONE 'UTC');
            IF EXISTS (SELECT 1 FROM batchwire.samples_packed_default WHERE ts_min >= lo AND ts_min < hi) THEN
                LOCK TABLE batchwire.samples_packed_default IN ACCESS EXCLUSIVE MODE;
                EXECUTE format('CREATE TABLE batchwire.%I (LIKE batchwire.samples_packed INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', pname);
                EXECUTE format(
                    'WITH moved AS (DELETE FROM batchwire.samples_packed_default WHERE ts_min >= %L AND ts_min < %L RETURNING *) '
                    'INSERT INTO batchwire.%I SELECT * FROM moved', lo, hi, pname);
                EXECUTE format('ALTER TABLE batchwire.samples_packed ATTACH PARTITION batchwire.%I FOR VALUES FROM (%L) TO (%L)',
                               pname, lo, hi);
            ELSE
                EXECUTE format('CREATE TABLE batchwire.%I PARTITION OF batchwire.samples_packed FOR VALUES FROM (%L) TO (%L)',
                               pname, lo, hi);
            END IF;
            RETURN NEXT pname;
            d := hi_day;
        ELSE
            d := d + 1;
        END IF;
    END LOOP;
END $$;
