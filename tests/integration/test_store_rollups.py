"""Rollups equal the aggregates computed from raw samples, including late data."""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone

import psycopg

from edge.contract import to_micros
from historian.store import Backend, rollups
from historian.store.writer import WriteBatch
from tests.integration.test_store_fixtures import backend_of, birth, data, db, sample, writer  # noqa: F401

T0 = to_micros(datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)) - 3 * 3_600_000_000

RAW = """
SELECT tag_id, date_trunc(%s, ts, 'UTC') AS bucket, min(value), max(value), count(*), sum(value),
       min(ts), max(ts),
       (array_agg(value ORDER BY ts))[1], (array_agg(value ORDER BY ts DESC))[1],
       coalesce(sum(date_part('epoch', ts - pts) * (value + pv) / 2), 0)
FROM (SELECT tag_id, ts, value,
             lag(ts) OVER w AS pts, lag(value) OVER w AS pv
      FROM batchwire.samples
      WHERE value IS NOT NULL AND value NOT IN ('NaN', 'Infinity', '-Infinity')
      WINDOW w AS (PARTITION BY tag_id, date_trunc(%s, ts, 'UTC') ORDER BY ts)) x
GROUP BY 1, 2 ORDER BY 1, 2
"""
ROLLUP = ("SELECT tag_id, bucket, min, max, count, sum, first_ts, last_ts, first, last, integral "
          "FROM batchwire.{} ORDER BY 1, 2")


def assert_same(raw, rolled):
    # min/max/first/last/count/timestamps are exact. Sums and integrals are float8 sums of
    # up to 3600 terms whose order differs between raw SQL, the plain rollups (minutes then
    # hours) and TimescaleDB's aggregates: each reordering may change the result by a few
    # ulp per term, i.e. up to ~n * 2.2e-16 ~ 1e-12 relative here; 1e-8 leaves a wide
    # margin without hiding a wrong sample (one sample of ~25 in a minute's sum of ~1500 is
    # ~1.6e-2 relative).
    assert len(raw) == len(rolled)
    for a, b in zip(raw, rolled):
        assert a[:2] == b[:2] and a[4] == b[4] and a[6:10] == b[6:10], (a, b)
        for x, y in ((a[2], b[2]), (a[3], b[3]), (a[5], b[5]), (a[10], b[10])):
            assert math.isclose(x, y, rel_tol=1e-8, abs_tol=1e-6), (a, b)


def test_rollups_equal_raw_aggregates_with_late_data(writer, db):
    rng = random.Random(7)
    writer.write(WriteBatch(births=[birth("A", "B", "S", datatype="float")]))
    # 2.5 h of 1 Hz data for two tags, irregular jitter, in messages of 300 samples
    points = [(tag, T0 + i * 1_000_000 + rng.randrange(0, 900_000), 20 + 5 * math.sin(i / 300) + rng.random())
              for i in range(9000) for tag in ("A", "B")]
    points += [("A", T0 + 17, math.nan), ("B", T0 + 19, math.inf), ("S", T0 + 23, "text")]
    late = points[1000:1600]  # withheld, sent after everything else
    on_time = points[:1000] + points[1600:]
    seq = 0
    for i in range(0, len(on_time), 300):
        seq += 1
        writer.write(WriteBatch(data=[data(seq, [sample(t, ts, v) for t, ts, v in on_time[i:i + 300]])]))
    rng.shuffle(late)
    for i in range(0, len(late), 100):
        seq += 1
        writer.write(WriteBatch(data=[data(seq, [sample(t, ts, v) for t, ts, v in late[i:i + 100]])]))
    with psycopg.connect(db, autocommit=True) as conn:
        if backend_of(db) is Backend.PLAIN:
            # rollups are folded in by the maintainer, outside the ingest transactions
            assert conn.execute("SELECT count(*) FROM batchwire.samples_1m").fetchone() == (0,)
            assert rollups.pending(conn)[0] == seq
            assert rollups.catch_up(conn, max_rows=7) > 0  # in several rounds, as after a backlog
            while rollups.catch_up(conn, max_rows=7):
                pass
            assert rollups.pending(conn)[0] == 0
        for unit, table in (("minute", "samples_1m"), ("hour", "samples_1h")):
            raw = conn.execute(RAW, (unit, unit)).fetchall()
            rolled = conn.execute(ROLLUP.format(table)).fetchall()
            assert_same(raw, rolled)
