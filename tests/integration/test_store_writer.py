"""The samples writer against a real PostgreSQL, once per storage backend."""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone

import psycopg
import pytest

from edge.contract import BatchContext, now_micros, to_micros
from historian.store.writer import WriteBatch, Writer, open_pool
from tests.integration.test_store_fixtures import (  # noqa: F401 - fixtures
    CTX, backend_of, birth, data, db, sample, writer,
)

T0 = to_micros(datetime.now(timezone.utc).replace(second=0, microsecond=0))


def rows(dsn, sql, *args):
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, args).fetchall()


def test_round_trip_every_value_kind(writer, db):
    values = [1.5, 7, True, False, "open", None, math.nan, math.inf, -math.inf, -0.0]
    qualities = [0, 0x80000000, 0xFFFFFFFF, 0x40900000, 0x808D0000, 0, 0, 1, 2, 0x7FFFFFFF]
    writer.write(WriteBatch(births=[birth("T1", "T2")]))
    samples = [sample("T1", T0 + i, v, q) for i, (v, q) in enumerate(zip(values, qualities))]
    res = writer.write(WriteBatch(data=[data(1, samples)]))
    assert res.samples == len(values) and len(res.applied) == 1
    got = rows(db, "SELECT ts, value, value_text, quality::bigint & 4294967295, c.batch, c.phase "
                   "FROM batchwire.samples s JOIN batchwire.tags t USING (tag_id) "
                   "LEFT JOIN batchwire.contexts c USING (context_id) WHERE t.name = 'T1' ORDER BY ts")
    assert [to_micros(r[0]) for r in got] == [T0 + i for i in range(len(values))]
    expected = [(1.5, None), (7.0, None), (1.0, None), (0.0, None), (None, "open"), (None, None),
                (math.nan, None), (math.inf, None), (-math.inf, None), (-0.0, None)]
    for (_, v, text, q, batch, phase), (ev, et), eq in zip(got, expected, qualities):
        assert text == et and q == eq and (batch, phase) == ("B-17", "growth")
        assert (v is None and ev is None) or (math.isnan(ev) and math.isnan(v)) or v == ev
    assert rows(db, "SELECT edge, session, seq, samples FROM batchwire.ingest_log") == [("e1", "S1", 1, 10)]


def test_redelivered_message_is_applied_once(writer, db):
    writer.write(WriteBatch(births=[birth("T1")]))
    msg = data(1, [sample("T1", T0 + i, float(i)) for i in range(100)])
    first = writer.write(WriteBatch(data=[msg]))
    again = writer.write(WriteBatch(data=[msg, msg]))  # re-sent twice, once in the same batch
    assert len(first.applied) == 1 and not again.applied and len(again.duplicates) == 2
    assert rows(db, "SELECT count(*) FROM batchwire.samples") == [(100,)]


def test_two_writers_racing_on_the_same_messages(writer, db):
    writer.write(WriteBatch(births=[birth("T1")]))
    batch = WriteBatch(data=[data(seq, [sample("T1", T0 + seq * 1000 + i, float(i)) for i in range(500)])
                             for seq in range(1, 21)])
    pool = open_pool(db)
    pool.open(wait=True)
    other = Writer(pool, backend_of(db), worker="w2")
    results, gate = {}, threading.Barrier(2)

    def go(name, w):
        gate.wait()
        results[name] = w.write(batch)

    threads = [threading.Thread(target=go, args=(n, w)) for n, w in (("a", writer), ("b", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.close()
    assert len(results["a"].applied) + len(results["b"].applied) == 20
    assert rows(db, "SELECT count(*), count(DISTINCT (tag_id, ts)) FROM batchwire.samples") == [(10_000, 10_000)]


def test_undeclared_tag_samples_go_to_quarantine(writer, db):
    writer.write(WriteBatch(births=[birth("T1")]))
    res = writer.write(WriteBatch(data=[data(1, [sample("T1", T0, 1.0), sample("NOPE", T0, 2.0),
                                                 sample("NOPE", T0 + 1, 3.0)])]))
    assert res.samples == 1 and res.quarantined == 1
    (reason, detail, seq), = rows(db, "SELECT reason, detail, seq FROM batchwire.quarantine")
    assert reason == "undeclared-tag" and "NOPE (2)" in detail and seq == 1
    assert rows(db, "SELECT name FROM batchwire.tags") == [("T1",)]
    assert rows(db, "SELECT samples, undeclared FROM batchwire.ingest_log") == [(1, 2)]


def test_refused_message_is_quarantined_and_the_rest_applied(writer, db):
    writer.write(WriteBatch(births=[birth("T1")]))
    good = data(1, [sample("T1", T0, 1.0)])
    bad = data(2, [sample("T1", T0 + 1, "nul\x00inside")])
    res = writer.write(WriteBatch(data=[good, bad]))
    assert [d.msg.seq for d in res.applied] == [1] and res.quarantined == 1
    assert rows(db, "SELECT reason, seq FROM batchwire.quarantine") == [("invalid-value", 2)]


def test_birth_metadata_history(writer, db):
    writer.write(WriteBatch(births=[birth("T1", unit="degC")]))
    writer.write(WriteBatch(births=[birth("T1", unit="degC")]))  # unchanged: no new version
    writer.write(WriteBatch(births=[birth("T1", unit="K")]))
    assert rows(db, "SELECT unit FROM batchwire.tag_history ORDER BY valid_from") == [("degC",), ("K",)]
    assert rows(db, "SELECT unit FROM batchwire.tags") == [("K",)]


def test_batches_and_phases_from_contexts_out_of_order(writer, db):
    writer.write(WriteBatch(births=[birth("T1")]))
    prod = BatchContext("s1", "BR01", "B-17", "production", "R1")
    writer.write(WriteBatch(data=[data(2, [sample("T1", T0 + 5_000_000, 1.0, ctx="p")], contexts={"p": prod})]))
    writer.write(WriteBatch(data=[data(1, [sample("T1", T0 + 1_000_000, 1.0), sample("T1", T0 + 2_000_000, 1.0)])]))
    (start, end), = rows(db, "SELECT start_ts, end_ts FROM batchwire.batches WHERE batch = 'B-17'")
    assert (to_micros(start), to_micros(end)) == (T0 + 1_000_000, T0 + 5_000_000)
    phases = rows(db, "SELECT phase, start_ts, end_ts FROM batchwire.phases ORDER BY start_ts")
    assert [(p, to_micros(a), to_micros(b)) for p, a, b in phases] == [
        ("growth", T0 + 1_000_000, T0 + 2_000_000), ("production", T0 + 5_000_000, T0 + 5_000_000)]


def test_clock_skew_is_stored_and_counted(writer, db):
    writer.write(WriteBatch(births=[birth("T1")]))
    far = now_micros() + 3 * 3_600_000_000
    res = writer.write(WriteBatch(data=[data(1, [sample("T1", far, 1.0), sample("T1", now_micros(), 2.0)])]))
    assert res.skewed == 1 and res.samples == 2
    assert rows(db, "SELECT skewed FROM batchwire.ingest_log") == [(1,)]


def test_sample_outside_partitions_lands_in_default_then_moves(writer, db):
    if backend_of(db).value != "plain":
        pytest.skip("partitions are the plain backend's")
    writer.write(WriteBatch(births=[birth("T1")]))
    old = to_micros(datetime(2001, 2, 3, 4, 5, 6, tzinfo=timezone.utc))
    writer.write(WriteBatch(data=[data(1, [sample("T1", old, 1.0)])]))
    assert rows(db, "SELECT count(*) FROM batchwire.samples_packed_default") == [(1,)]
    with psycopg.connect(db) as conn:
        made = conn.execute("SELECT * FROM batchwire.ensure_partitions('2001-02-03', '2001-02-03')").fetchall()
    assert made == [("samples_packed_20010203",)]
    assert rows(db, "SELECT count(*) FROM batchwire.samples_packed_default") == [(0,)]
    assert rows(db, "SELECT count(*) FROM batchwire.samples_packed_20010203") == [(1,)]
    with psycopg.connect(db) as conn:
        dropped = conn.execute("SELECT * FROM batchwire.drop_partitions_before('2001-02-05')").fetchall()
    assert dropped == [("samples_packed_20010203",)]


def test_unreachable_database_is_store_unavailable():
    from historian.store import StoreUnavailable
    from historian.store.backend import Backend
    from tests.conftest import free_port

    pool = open_pool(f"postgresql://root@127.0.0.1:{free_port()}/none")
    pool.open(wait=False)
    w = Writer(pool, Backend.PLAIN, timeout=1.0)
    with pytest.raises(StoreUnavailable):
        w.write(WriteBatch(births=[birth("T1")]))
    pool.close()
