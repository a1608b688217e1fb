-- TimescaleDB keeps one row per sample in the hypertable: native compression packs them
-- per tag (segmentby tag_id) once a chunk is compressed. Readers get the same function the
-- plain backend has, so a time-range read of one tag is written once for both.
CREATE FUNCTION batchwire.samples_between(tag integer, t0 timestamptz, t1 timestamptz)
RETURNS TABLE (ts timestamptz, value double precision, value_text text, quality integer, context_id integer)
LANGUAGE sql STABLE AS $$
    SELECT s.ts, s.value, s.value_text, s.quality, s.context_id
    FROM batchwire.samples s
    WHERE s.tag_id = tag AND s.ts >= t0 AND s.ts < t1
$$;
