-- Samples and rollups on plain PostgreSQL (>= 15): native range partitions, one per UTC day,
-- created ahead by batchwire.ensure_partitions() and dropped by batchwire.drop_partitions_before().
-- A DEFAULT partition catches any timestamp outside the pre-created days (clock skew, very
-- old replays) so a sample never fails to insert.

CREATE TABLE batchwire.samples (
    tag_id      integer NOT NULL,
    ts          timestamptz NOT NULL,
    value       double precision,
    value_text  text,
    -- OPC UA StatusCode (uint32) bit pattern in a signed int4: read with (quality::bigint & 4294967295)
    quality     integer NOT NULL DEFAULT 0,
    context_id  integer
) PARTITION BY RANGE (ts);

CREATE TABLE batchwire.samples_default PARTITION OF batchwire.samples DEFAULT;

-- Queries ask for one tag over a time range; (tag_id, ts) serves them and the rollup
-- recomputation. Measured trade-off against BRIN in docs/storage.md.
CREATE INDEX samples_tag_ts_idx ON batchwire.samples (tag_id, ts);

-- Rollups: one row per tag and bucket over the finite numeric values (value IS NOT NULL and
-- not NaN/±Inf). integral is the trapezoid integral (value x seconds) over consecutive
-- samples inside the bucket; with first/last and first_ts/last_ts a reader bridges buckets
-- for a time-weighted average. Maintained by the ingest writer in the same transaction as
-- the samples (recomputed from raw for every bucket a batch touches, so late data is exact).
CREATE TABLE batchwire.samples_1m (
    tag_id      integer NOT NULL,
    bucket      timestamptz NOT NULL,
    min         double precision,
    max         double precision,
    first       double precision,
    last        double precision,
    count       bigint NOT NULL,
    sum         double precision,
    first_ts    timestamptz NOT NULL,
    last_ts     timestamptz NOT NULL,
    integral    double precision,
    PRIMARY KEY (tag_id, bucket)
);

CREATE TABLE batchwire.samples_1h (LIKE batchwire.samples_1m INCLUDING ALL);

CREATE FUNCTION batchwire.partition_name(day date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'samples_' || to_char(day, 'YYYYMMDD') $$;

-- Create the daily partitions for [first_day, last_day] that do not exist yet. Rows that
-- already landed in the DEFAULT partition for such a day are moved into the new partition
-- (under an exclusive lock on the default partition so no concurrent insert slips between
-- the move and the attach). Returns the names created.
CREATE FUNCTION batchwire.ensure_partitions(first_day date, last_day date)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    d date;
    pname text;
    lo timestamptz;
    hi timestamptz;
BEGIN
    -- serialise maintenance between concurrent ingest workers
    PERFORM pg_advisory_xact_lock(hashtext('batchwire.partitions'));
    d := first_day;
    WHILE d <= last_day LOOP
        pname := batchwire.partition_name(d);
        IF to_regclass('batchwire.' || pname) IS NULL THEN
            lo := (d::timestamp AT TIME ZONE 'UTC');
            hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
            IF EXISTS (SELECT 1 FROM batchwire.samples_default WHERE ts >= lo AND ts < hi) THEN
                LOCK TABLE batchwire.samples_default IN ACCESS EXCLUSIVE MODE;
                EXECUTE format('CREATE TABLE batchwire.%I (LIKE batchwire.samples INCLUDING DEFAULTS)', pname);
                EXECUTE format(
                    'WITH moved AS (DELETE FROM batchwire.samples_default WHERE ts >= %L AND ts < %L RETURNING *) '
                    'INSERT INTO batchwire.%I SELECT * FROM moved', lo, hi, pname);
                EXECUTE format('ALTER TABLE batchwire.samples ATTACH PARTITION batchwire.%I FOR VALUES FROM (%L) TO (%L)',
                               pname, lo, hi);
            ELSE
                EXECUTE format('CREATE TABLE batchwire.%I PARTITION OF batchwire.samples FOR VALUES FROM (%L) TO (%L)',
                               pname, lo, hi);
            END IF;
            RETURN NEXT pname;
        END IF;
        d := d + 1;
    END LOOP;
END $$;

-- Retention: drop whole daily partitions that end on or before cutoff (the DEFAULT
-- partition is never dropped). Returns the names dropped.
CREATE FUNCTION batchwire.drop_partitions_before(cutoff timestamptz)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('batchwire.partitions'));
    FOR r IN
        SELECT c.relname,
               (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'TO \(''([^'']+)''\)'))[1]::timestamptz AS hi
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'batchwire.samples'::regclass AND c.relname <> 'samples_default'
    LOOP
        IF r.hi <= cutoff THEN
            EXECUTE format('DROP TABLE batchwire.%I', r.relname);
            RETURN NEXT r.relname;
        END IF;
    END LOOP;
END $$;

-- Days around now are always ready; the ingest maintenance task keeps extending this.
SELECT count(*) FROM batchwire.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 7,
                                                  (now() AT TIME ZONE 'UTC')::date + 3);
