"""Rollup maintenance for the plain-PostgreSQL backend.

The ingest writer does not compute rollups in its transaction: it appends one row to
``batchwire.rollup_pending`` naming the (tag, minute) buckets the batch touched
(:func:`queue`). The maintainer (:func:`catch_up`, run every second by each ingest worker,
one at a time under an advisory lock) takes every pending row, recomputes those
``samples_1m`` rows from raw samples and the ``samples_1h`` rows of their hours from the
minutes, and deletes the pending rows - all in one transaction, so a crash loses nothing
and a rerun is harmless (recomputing from raw is idempotent). Recomputing (instead of
merging partial aggregates) keeps late and out-of-order data exact, including the
trapezoid integral. Staleness: a committed sample is in the rollups after at most one
maintainer interval plus one catch-up (see docs/storage.md).

Raw samples are read from ``batchwire.samples_packed`` (the plain layout since migration
0005). On TimescaleDB the continuous aggregates compute the same columns (see
0002_samples.timescaledb.sql).
"""

from __future__ import annotations

from datetime import datetime

import psycopg

from .rows import HOUR_US, MINUTE_US, from_us

_FINITE = "value IS NOT NULL AND value NOT IN ('NaN', 'Infinity', '-Infinity')"

# Recomputed buckets replace what was there: a rollup row is always the aggregate of all
# raw samples in its bucket.
_UPSERT = """ON CONFLICT (tag_id, bucket) DO UPDATE SET
    min = excluded.min, max = excluded.max, first = excluded.first, last = excluded.last,
    count = excluded.count, sum = excluded.sum, first_ts = excluded.first_ts,
    last_ts = excluded.last_ts, integral = excluded.integral
"""

ROLLUP_1M_SQL = f"""
INSERT INTO batchwire.samples_1m AS r
    (tag_id, bucket, min, max, first, last, count, sum, first_ts, last_ts, integral)
SELECT tag_id, bucket, min(value), max(value), min(fv), min(lv), count(*), sum(value),
       min(ts), max(ts), coalesce(sum(date_part('epoch', ts - pts) * (value + pv) / 2), 0)
FROM (
    SELECT t.tag_id, t.bucket, s.ts, s.value,
           lag(s.ts) OVER w AS pts, lag(s.value) OVER w AS pv,
           first_value(s.value) OVER w AS fv,
           last_value(s.value) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS lv
    FROM unnest(%(tags)s::int4[], %(buckets)s::timestamptz[]) AS t(tag_id, bucket)
    JOIN (
        -- packed rows of these tags overlapping [lo, hi) found by the (tag_id, ts_min) index
        -- (a row spans < 1 h), then unnested; constant bounds also prune partitions
        SELECT p.tag_id, u.ts, u.value,
               date_bin(INTERVAL '1 minute', u.ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket
        FROM batchwire.samples_packed p
        CROSS JOIN LATERAL unnest(p.ts, p.value) AS u(ts, value)
        WHERE p.tag_id = ANY(%(tags)s::int4[]) AND p.ts_min > %(lo)s::timestamptz - INTERVAL '1 hour'
          AND p.ts_min < %(hi)s AND p.ts_max >= %(lo)s
          AND u.ts >= %(lo)s AND u.ts < %(hi)s AND u.{_FINITE.replace('value NOT', 'u.value NOT')}
    ) s ON s.tag_id = t.tag_id AND s.bucket = t.bucket
    WINDOW w AS (PARTITION BY t.tag_id, t.bucket ORDER BY s.ts)
) x
GROUP BY tag_id, bucket
ORDER BY tag_id, bucket
""" + _UPSERT

# An hour's integral is the sum of its minutes' integrals plus the trapezoids bridging
# consecutive non-empty minutes (last sample of one to first sample of the next).
ROLLUP_1H_SQL = """
INSERT INTO batchwire.samples_1h AS r
    (tag_id, bucket, min, max, first, last, count, sum, first_ts, last_ts, integral)
SELECT tag_id, hb, min(min), max(max), min(ff), min(ll), sum(count)::bigint, sum(sum),
       min(first_ts), max(last_ts), sum(integral) + coalesce(sum(bridge), 0)
FROM (
    SELECT m.tag_id, h.bucket AS hb, m.min, m.max, m.count, m.sum, m.first_ts, m.last_ts, m.integral,
           first_value(m.first) OVER w AS ff,
           last_value(m.last) OVER (w ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS ll,
           date_part('epoch', m.first_ts - lag(m.last_ts) OVER w) * (m.first + lag(m.last) OVER w) / 2 AS bridge
    FROM unnest(%s::int4[], %s::timestamptz[]) AS h(tag_id, bucket)
    JOIN batchwire.samples_1m m
      ON m.tag_id = h.tag_id AND m.bucket >= h.bucket AND m.bucket < h.bucket + INTERVAL '1 hour'
    WINDOW w AS (PARTITION BY m.tag_id, h.bucket ORDER BY m.bucket)
) x
GROUP BY tag_id, hb
ORDER BY tag_id, hb
""" + _UPSERT


def _columns(keys) -> tuple[list[int], list[datetime]]:
    keys = sorted(keys)  # a fixed order: two writers lock rollup rows without deadlocking
    return [k[0] for k in keys], [from_us(k[1]) for k in keys]


def refresh(cur: psycopg.Cursor, minute_keys: set[tuple[int, int]]) -> None:
    """Recompute the rollup rows for the given (tag_id, minute-start µs) keys and their hours."""
    if not minute_keys:
        return
    tags, buckets = _columns(minute_keys)
    lo = min(k[1] for k in minute_keys)
    hi = max(k[1] for k in minute_keys) + MINUTE_US
    cur.execute(ROLLUP_1M_SQL, {"tags": tags, "buckets": buckets, "lo": from_us(lo), "hi": from_us(hi)})
    hours = {(tag, m - m % HOUR_US) for tag, m in minute_keys}
    cur.execute(ROLLUP_1H_SQL, _columns(hours))


#: pg_advisory_xact_lock key: "batchwire rollups"; one maintainer at a time
LOCK_KEY = 0x62775F726F6C6C75
QUEUE_SQL = "INSERT INTO batchwire.rollup_pending (tag_ids, minutes) VALUES (%s::int4[], %s::timestamptz[])"
#: keys recomputed per statement during a catch-up (bounds statement size after a backlog)
CATCH_UP_CHUNK = 50_000


def queue(cur: psycopg.Cursor, minute_keys: set[tuple[int, int]]) -> None:
    """Record, in the caller's transaction, that these (tag_id, minute-start µs) buckets
    need recomputing. One row per call."""
    if minute_keys:
        cur.execute(QUEUE_SQL, _columns(minute_keys))


def catch_up(conn: psycopg.Connection, *, max_rows: int = 10_000) -> int | None:
    """Fold pending buckets into the rollups: take up to ``max_rows`` pending rows,
    recompute their buckets, delete the rows, commit. Returns the number of (tag, minute)
    buckets recomputed, or None when another maintainer holds the lock (it is doing the
    work). ``conn`` must not be in a transaction."""
    with conn.transaction(), conn.cursor() as cur:
        if not cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
            return None
        cur.execute(
            "WITH taken AS (DELETE FROM batchwire.rollup_pending WHERE pending_id IN ("
            "  SELECT pending_id FROM batchwire.rollup_pending ORDER BY pending_id LIMIT %s) "
            "  RETURNING tag_ids, minutes) "
            "SELECT DISTINCT t, (date_part('epoch', m - TIMESTAMPTZ '1970-01-01 00:00:00+00') * 1000000)::int8 "
            "FROM taken, unnest(tag_ids, minutes) AS u(t, m)", (max_rows,))
        keys = sorted(cur.fetchall())
        for i in range(0, len(keys), CATCH_UP_CHUNK):
            refresh(cur, set(map(tuple, keys[i:i + CATCH_UP_CHUNK])))
        return len(keys)


def pending(conn: psycopg.Connection) -> tuple[int, float | None]:
    """(pending rows, age in seconds of the oldest) - the rollup lag."""
    n, oldest = conn.execute(
        "SELECT count(*), extract(epoch FROM now() - min(queued_at)) FROM batchwire.rollup_pending").fetchone()
    return n, None if oldest is None else float(oldest)


def refresh_all(conn: psycopg.Connection) -> None:
    """Rebuild every rollup row from raw samples (repair / after a bulk load)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT tag_id, (date_part('epoch', date_trunc('minute', ts, 'UTC') "
            "- TIMESTAMPTZ '1970-01-01 00:00:00+00') * 1000000)::int8 FROM batchwire.samples "
            f"WHERE {_FINITE}"
        )
        keys = set(cur.fetchall())
        refresh(cur, keys)


