-- Plain PostgreSQL: samples packed several per row (issue 5: <= 40 bytes per sample).
--
-- One row of batchwire.samples_packed holds the samples of ONE tag within ONE UTC hour that
-- arrived in one write batch (the ingest writer groups each batch by (tag, hour)), as
-- parallel arrays. A heap tuple and an index entry then cost ~130 bytes per ROW instead of
-- ~90 bytes per SAMPLE. Rows of few samples (low rates: a 0.1 s batch holds one sample per
-- tag) are merged later by batchwire.repack_samples(), run by the ingest maintainer.
--
-- Readers keep batchwire.samples: a view that unnests the packed rows (same columns as
-- before). Time-range readers call batchwire.samples_between(tag, start, end), which
-- filters packed rows with the (tag_id, ts_min) index before unnesting: a row spans less
-- than one hour (CHECK), so a row overlapping [start, end) has ts_min in (start - 1 h, end).
--
-- Existing data is moved into packed form by this migration (one transaction).

ALTER TABLE batchwire.samples RENAME TO samples_rows_old;
ALTER INDEX batchwire.samples_tag_ts_idx RENAME TO samples_rows_old_tag_ts_idx;
ALTER TABLE batchwire.samples_default RENAME TO samples_rows_old_default;

CREATE TABLE batchwire.samples_packed (
    tag_id      integer NOT NULL,
    n           integer NOT NULL CHECK (n > 0),
    ts_min      timestamptz NOT NULL,
    ts_max      timestamptz NOT NULL,
    -- the context of every sample of the row when they share one; else NULL and context_ids
    context_id  integer,
    ts          timestamptz[] NOT NULL,
    -- value[i] belongs to ts[i]; value_text is NULL unless a sample is a string, quality is
    -- NULL when every sample is Good (0), context_ids NULL when context_id says it all
    value       double precision[],
    value_text  text[],
    quality     integer[],
    context_ids integer[],
    CHECK (ts_max >= ts_min AND ts_max - ts_min < INTERVAL '1 hour')
) PARTITION BY RANGE (ts_min);

CREATE TABLE batchwire.samples_packed_default PARTITION OF batchwire.samples_packed DEFAULT;
CREATE INDEX samples_packed_tag_ts_idx ON batchwire.samples_packed (tag_id, ts_min);

CREATE VIEW batchwire.samples AS
SELECT p.tag_id, u.ts, u.value, u.value_text, coalesce(u.quality, 0) AS quality,
       coalesce(u.context_id, p.context_id) AS context_id
FROM batchwire.samples_packed p
CROSS JOIN LATERAL unnest(p.ts, p.value, p.value_text, p.quality, p.context_ids)
    AS u(ts, value, value_text, quality, context_id);

-- Samples of one tag in [t0, t1), any order. Inlined by the planner (one SQL SELECT,
-- STABLE): the bounds reach the (tag_id, ts_min) index and prune partitions.
CREATE FUNCTION batchwire.samples_between(tag integer, t0 timestamptz, t1 timestamptz)
RETURNS TABLE (ts timestamptz, value double precision, value_text text, quality integer, context_id integer)
LANGUAGE sql STABLE AS $$
    SELECT u.ts, u.value, u.value_text, coalesce(u.quality, 0), coalesce(u.context_id, p.context_id)
    FROM batchwire.samples_packed p
    CROSS JOIN LATERAL unnest(p.ts, p.value, p.value_text, p.quality, p.context_ids)
        AS u(ts, value, value_text, quality, context_id)
    WHERE p.tag_id = tag AND p.ts_min > t0 - INTERVAL '1 hour' AND p.ts_min < t1 AND p.ts_max >= t0
      AND u.ts >= t0 AND u.ts < t1
$$;

-- Writes through the view (tools, fixtures, a hand-made INSERT/COPY): one packed row per
-- sample; repack_samples() merges them later. The ingest writer COPYs packed rows itself.
CREATE FUNCTION batchwire.samples_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO batchwire.samples_packed (tag_id, n, ts_min, ts_max, context_id, ts, value, value_text, quality)
    VALUES (NEW.tag_id, 1, NEW.ts, NEW.ts, NEW.context_id, ARRAY[NEW.ts], ARRAY[NEW.value],
            CASE WHEN NEW.value_text IS NOT NULL THEN ARRAY[NEW.value_text] END,
            CASE WHEN coalesce(NEW.quality, 0) <> 0 THEN ARRAY[NEW.quality] END);
    RETURN NEW;
END $$;
CREATE TRIGGER samples_insert INSTEAD OF INSERT ON batchwire.samples
    FOR EACH ROW EXECUTE FUNCTION batchwire.samples_insert();

-- Flat samples (tag_id, ts, value, value_text, quality, context_id) selected by flat_sql
-- -> packed rows, one per (tag, UTC hour); with_sql, when given, is a WITH list flat_sql
-- may use. Used by the migration below and by repack_samples(). Returns the rows written.
CREATE FUNCTION batchwire.pack_flat(flat_sql text, with_sql text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    made bigint;
BEGIN
    EXECUTE format($f$
        %s
        INSERT INTO batchwire.samples_packed
            (tag_id, n, ts_min, ts_max, context_id, ts, value, value_text, quality, context_ids)
        SELECT tag_id, count(*), min(ts), max(ts),
               CASE WHEN count(context_id) = count(*) AND min(context_id) = max(context_id)
                    THEN min(context_id) END,
               array_agg(ts ORDER BY ts),
               CASE WHEN count(value) > 0 THEN array_agg(value ORDER BY ts) END,
               CASE WHEN count(value_text) > 0 THEN array_agg(value_text ORDER BY ts) END,
               CASE WHEN bool_or(coalesce(quality, 0) <> 0) THEN array_agg(coalesce(quality, 0) ORDER BY ts) END,
               CASE WHEN NOT (count(context_id) = count(*) AND min(context_id) = max(context_id))
                    THEN array_agg(context_id ORDER BY ts) END
        FROM (%s) flat
        GROUP BY tag_id, date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00')
    $f$, coalesce('WITH ' || with_sql, ''), flat_sql);
    GET DIAGNOSTICS made = ROW_COUNT;
    RETURN made;
END $$;

-- Merge the packed rows of fewer than ``small`` samples that ended before ``before``, per
-- (tag, hour) where there are at least two of them, in one statement: readers see the old
-- rows or the new ones, never both; the samples are the same. Returns the rows written.
CREATE FUNCTION batchwire.repack_samples(before timestamptz, small integer DEFAULT 64)
RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN batchwire.pack_flat(
        'SELECT p.tag_id, u.ts, u.value, u.value_text, coalesce(u.quality, 0) AS quality, '
        'coalesce(u.context_id, p.context_id) AS context_id FROM taken p '
        'CROSS JOIN LATERAL unnest(p.ts, p.value, p.value_text, p.quality, p.context_ids) '
        'AS u(ts, value, value_text, quality, context_id)',
        format($w$
        groups AS (
            SELECT tag_id, date_bin(INTERVAL '1 hour', ts_min, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS h
            FROM batchwire.samples_packed
            WHERE ts_max < %1$L AND n < %2$s
            GROUP BY 1, 2 HAVING count(*) > 1),
        taken AS (
            DELETE FROM batchwire.samples_packed p USING groups g
            WHERE p.tag_id = g.tag_id AND p.ts_min >= g.h AND p.ts_min < g.h + INTERVAL '1 hour'
              AND p.ts_max < %1$L AND p.n < %2$s
            RETURNING p.*)
        $w$, before, small));
END $$;

-- Partitions now belong to samples_packed (by ts_min; a row never crosses an hour, so never a day).
DROP FUNCTION batchwire.ensure_partitions(date, date);
DROP FUNCTION batchwire.drop_partitions_before(timestamptz);
DROP FUNCTION batchwire.partition_name(date);

CREATE FUNCTION batchwire.partition_name(day date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT 'samples_packed_' || to_char(day, 'YYYYMMDD') $$;

CREATE FUNCTION batchwire.ensure_partitions(first_day date, last_day date)
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    d date;
    pname text;
    lo timestamptz;
    hi timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('batchwire.partitions'));
    d := first_day;
    WHILE d <= last_day LOOP
        pname := batchwire.partition_name(d);
        IF to_regclass('batchwire.' || pname) IS NULL THEN
            lo := (d::timestamp AT TIME ZONE 'UTC');
            hi := ((d + 1)::timestamp AT TIME ZONE 'UTC');
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
        END IF;
        d := d + 1;
    END LOOP;
END $$;

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
        WHERE i.inhparent = 'batchwire.samples_packed'::regclass AND c.relname <> 'samples_packed_default'
    LOOP
        IF r.hi <= cutoff THEN
            EXECUTE format('DROP TABLE batchwire.%I', r.relname);
            RETURN NEXT r.relname;
        END IF;
    END LOOP;
END $$;

-- The days the old layout had partitions for, and today -7 .. +3; then move the rows.
SELECT count(p) FROM
    (SELECT DISTINCT ((regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''([^'']+)''\)'))[1]::timestamptz
                      AT TIME ZONE 'UTC')::date AS d
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'batchwire.samples_rows_old'::regclass AND c.relname <> 'samples_rows_old_default') b,
    LATERAL batchwire.ensure_partitions(b.d, b.d) p;
SELECT count(*) FROM batchwire.ensure_partitions((now() AT TIME ZONE 'UTC')::date - 7,
                                                  (now() AT TIME ZONE 'UTC')::date + 3);
SELECT batchwire.pack_flat('SELECT tag_id, ts, value, value_text, quality, context_id FROM batchwire.samples_rows_old');
DROP TABLE batchwire.samples_rows_old;
