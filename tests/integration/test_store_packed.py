"""Plain backend: samples packed per (tag, hour) in batchwire.samples_packed, read through
the batchwire.samples view and batchwire.samples_between(); migration from the row layout;
merging small rows; the recorded query uses the index."""

from __future__ import annotations

import math
import sys
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from edge.contract import BatchContext, to_micros
from historian.store import Backend, migrate
from historian.store.packing import repack
from historian.store.writer import WriteBatch, Writer, open_pool
from tests.integration.test_store_fixtures import CTX, birth, data, sample

H0 = to_micros(datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3))
OTHER = BatchContext("s1", "BR01", "B-18", "harvest", "R1")


def q(dsn, sql, *args):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture
def plain(fresh_db):
    migrate(fresh_db, backend=Backend.PLAIN)
    return fresh_db


@pytest.fixture
def writer(plain):
    pool = open_pool(plain)
    pool.open(wait=True)
    yield Writer(pool, Backend.PLAIN, worker="w1")
    pool.close()


def flat(dsn, tag="T1"):
    return q(dsn, "SELECT ts, value, value_text, quality, c.batch FROM batchwire.samples s "
                  "JOIN batchwire.tags t USING (tag_id) LEFT JOIN batchwire.contexts c USING (context_id) "
                  "WHERE t.name = %s ORDER BY ts", tag)


def test_groups_per_tag_and_hour_with_mixed_contexts_and_qualities(writer, plain):
    writer.write(WriteBatch(births=[birth("T1", "T2")]))
    ctxs = {"a": CTX, "b": OTHER}
    s = [sample("T1", H0 + i * 60_000_000, float(i), 0x80000000 if i == 5 else 0, ["a", "b", None][i % 3])
         for i in range(90)]  # 90 minutes: two hours
    s += [sample("T2", H0 + i, "x" if i % 2 else None, 0, "a") for i in range(4)]
    res = writer.write(WriteBatch(data=[data(1, s, contexts=ctxs)]))
    assert res.samples == 94
    packed = q(plain, "SELECT t.name, n, quality IS NULL, context_id IS NULL, context_ids IS NULL, value IS NULL "
                      "FROM batchwire.samples_packed p JOIN batchwire.tags t USING (tag_id) ORDER BY 1, ts_min")
    # T1: one row per hour (60 + 30), quality array only in the hour with a Bad sample;
    # T2: strings and NULLs only, so no value array
    assert packed == [("T1", 60, False, True, False, False), ("T1", 30, True, True, False, False),
                      ("T2", 4, True, False, True, True)]
    got = flat(plain)
    assert [(to_micros(r[0]), r[1], r[3] & 0xFFFFFFFF, r[4]) for r in got] == [
        (H0 + i * 60_000_000, float(i), 0x80000000 if i == 5 else 0, ["B-17", "B-18", None][i % 3])
        for i in range(90)]
    assert [(r[1], r[2]) for r in flat(plain, "T2")] == [(None, None), (None, "x"), (None, None), (None, "x")]


def test_samples_between_and_the_view_agree(writer, plain):
    writer.write(WriteBatch(births=[birth("T1")]))
    for seq in range(1, 4):  # three batches: three rows per hour, in any order
        writer.write(WriteBatch(data=[data(seq, [sample("T1", H0 + (i * 3 + seq) * 1_000_000, i + seq / 10)
                                                 for i in range(3000)])]))
    tag = q(plain, "SELECT tag_id FROM batchwire.tags")[0][0]
    start, end = H0 + 1_000_000_000, H0 + 5_000_000_000
    a = q(plain, "SELECT ts, value FROM batchwire.samples WHERE tag_id = %s AND ts >= %s AND ts < %s ORDER BY ts",
          tag, datetime.fromtimestamp(start / 1e6, timezone.utc), datetime.fromtimestamp(end / 1e6, timezone.utc))
    b = q(plain, "SELECT ts, value FROM batchwire.samples_between(%s, %s, %s) ORDER BY ts",
          tag, datetime.fromtimestamp(start / 1e6, timezone.utc), datetime.fromtimestamp(end / 1e6, timezone.utc))
    assert a == b and len(a) == 4000


def test_recorded_query_plan_uses_the_packed_index(writer, plain):
    from historian.query.recorded import build_recorded
    from historian.query.timeparse import TimeRange

    writer.write(WriteBatch(births=[birth("T1", "T2")]))
    for seq in range(1, 30):
        writer.write(WriteBatch(data=[data(seq, [sample(t, H0 + seq * 60_000_000 + i * 1_000_000, 1.0)
                                                 for t in ("T1", "T2") for i in range(60)])]))
    with psycopg.connect(plain) as conn:
        conn.execute("ANALYZE batchwire.samples_packed")
        conn.execute("SET enable_seqscan = off")  # the tiny test table would be scanned otherwise
        start = datetime.fromtimestamp(H0 / 1e6 + 600, timezone.utc)
        sql, params = build_recorded(1, TimeRange(start, start + timedelta(minutes=10)), 100)
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
    assert "samples_packed" in plan and "Index" in plan and "Cond: ((tag_id = 1) AND (ts_min >" in plan, plan


def test_small_rows_are_merged_and_keep_their_samples(writer, plain):
    writer.write(WriteBatch(births=[birth("T1")]))
    for seq in range(1, 41):  # low rate: one sample per batch, some Bad, some NaN
        v = math.nan if seq == 7 else float(seq)
        writer.write(WriteBatch(data=[data(seq, [sample("T1", H0 + seq * 1_000_000, v, 0x40000000 if seq == 9 else 0)])]))
    writer.write(WriteBatch(data=[data(99, [sample("T1", H0 + 7_200_000_000 + 1, 5.0)])]))  # 2 h later
    before = flat(plain)
    with psycopg.connect(plain) as conn:
        assert repack(conn, settle_us=0) == 1  # the 40 of the first hour; the lone row stays
        assert repack(conn, settle_us=0) == 0
    assert q(plain, "SELECT n FROM batchwire.samples_packed ORDER BY ts_min") == [(40,), (1,)]
    after = flat(plain)
    assert len(after) == len(before) == 41
    for x, y in zip(before, after):
        assert x[0] == y[0] and x[2:] == y[2:] and (x[1] == y[1] or (math.isnan(x[1]) and math.isnan(y[1])))


def test_writes_through_the_view_are_packed(plain):
    with psycopg.connect(plain) as conn:
        conn.execute("INSERT INTO batchwire.samples (tag_id, ts, value, value_text, quality, context_id) "
                     "VALUES (1, now(), 1.5, NULL, -2147483648, NULL), (1, now() + interval '1 s', NULL, 'on', 0, 3)")
        conn.commit()
    assert q(plain, "SELECT value, value_text, quality, context_id FROM batchwire.samples ORDER BY ts") == [
        (1.5, None, -2147483648, None), (None, "on", 0, 3)]


def test_migration_packs_the_row_layout_and_keeps_every_sample(fresh_db, monkeypatch):
    mig = sys.modules["historian.store.migrate"]
    everything = mig.plan
    monkeypatch.setattr(mig, "plan", lambda b, d=mig.MIGRATIONS_DIR: [m for m in everything(b, d) if m.name < "0005"])
    migrate(fresh_db, backend=Backend.PLAIN)
    monkeypatch.setattr(mig, "plan", everything)
    with psycopg.connect(fresh_db) as conn:  # the row layout of 0002, written directly
        conn.execute("INSERT INTO batchwire.samples SELECT 1 + i % 3, now() - i * interval '1 second', "
                     "CASE WHEN i % 11 = 0 THEN NULL ELSE i END, CASE WHEN i % 11 = 0 THEN 'txt' END, "
                     "CASE WHEN i % 7 = 0 THEN -5 ELSE 0 END, CASE WHEN i % 5 = 0 THEN NULL ELSE 1 + i % 2 END "
                     "FROM generate_series(1, 20000) i")
        conn.execute("INSERT INTO batchwire.samples VALUES (1, '1990-01-01', 1, NULL, 0, 1)")  # default partition
        conn.commit()
    cols = "SELECT tag_id, ts, value, value_text, quality, context_id FROM batchwire.samples ORDER BY 1, 2"
    before = q(fresh_db, cols)
    assert migrate(fresh_db)[0] == "0005_packed_samples"
    assert q(fresh_db, cols) == before
    assert q(fresh_db, "SELECT to_regclass('batchwire.samples_rows_old')") == [(None,)]
    assert q(fresh_db, "SELECT count(*) FROM batchwire.samples_packed_default") == [(1,)]
    # ~20000 s of 3 tags: one row per tag and hour, not per sample
    assert q(fresh_db, "SELECT count(*) < 30 FROM batchwire.samples_packed") == [(True,)]
