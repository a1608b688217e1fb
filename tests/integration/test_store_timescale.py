"""TimescaleDB shape: the hypertable, compression, retention and continuous aggregates
really exist (timescaledb_information views) and work: compressed chunks answer the same
queries, policies run, `db stats` reports chunks and the compression ratio."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

import psycopg
import pytest

from edge.contract import to_micros
from historian.store import Backend, migrate
from historian.store.writer import WriteBatch, Writer, open_pool
from tests.integration.test_store_cli import run as run_cli
from tests.integration.test_store_fixtures import birth, data, sample, timescale_usable

pytestmark = pytest.mark.timescale

DAY_US = 86_400_000_000
# three days back: older than the 2-day compression policy, inside the 7-day refresh window
T_OLD = to_micros(datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)) - 3 * DAY_US


@pytest.fixture
def tsdb(fresh_db) -> str:
    usable, why = timescale_usable()
    if not usable:
        pytest.skip(f"TimescaleDB backend not usable on the test server: {why}")
    migrate(fresh_db, backend=Backend.TIMESCALEDB)
    return fresh_db


def q(dsn, sql, *args):
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, args)
        return cur.fetchall() if cur.description else []


def fill(dsn: str, seconds: int = 1800, tags=("A", "B")) -> int:
    pool = open_pool(dsn)
    pool.open(wait=True)
    w = Writer(pool, Backend.TIMESCALEDB, worker="w1")
    w.write(WriteBatch(births=[birth(*tags)]))
    seq, n = 0, 0
    for start in range(0, seconds, 300):
        seq += 1
        samples = [sample(t, T_OLD + i * 1_000_000, round(20 + math.sin(i / 200) + 0.01 * (i % 7), 2))
                   for i in range(start, min(start + 300, seconds)) for t in tags]
        n += w.write(WriteBatch(data=[data(seq, samples)])).samples
    pool.close()
    return n


QUERIES = [
    "SELECT tag_id, ts, value, value_text, quality, context_id FROM batchwire.samples ORDER BY tag_id, ts",
    "SELECT tag_id, bucket, min, max, first, last, count, sum, first_ts, last_ts, integral "
    "FROM batchwire.samples_1m ORDER BY 1, 2",
    "SELECT tag_id, bucket, min, max, first, last, count, sum, first_ts, last_ts, integral "
    "FROM batchwire.samples_1h ORDER BY 1, 2",
]


def test_hypertable_compression_and_aggregates_are_declared(tsdb):
    (interval,), = q(tsdb, "SELECT time_interval FROM timescaledb_information.dimensions "
                           "WHERE hypertable_schema = 'batchwire' AND hypertable_name = 'samples' "
                           "AND column_name = 'ts'")
    assert interval.total_seconds() > 0
    assert q(tsdb, "SELECT compression_enabled FROM timescaledb_information.hypertables "
                   "WHERE hypertable_schema = 'batchwire' AND hypertable_name = 'samples'") == [(True,)]
    settings = q(tsdb, "SELECT attname, segmentby_column_index, orderby_column_index "
                       "FROM timescaledb_information.compression_settings "
                       "WHERE hypertable_schema = 'batchwire' AND hypertable_name = 'samples' ORDER BY attname")
    assert ("tag_id", 1, None) in settings and ("ts", None, 1) in settings
    aggs = q(tsdb, "SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates "
                   "WHERE view_schema = 'batchwire' ORDER BY 1")
    assert aggs == [("samples_1h", False), ("samples_1m", False)]
    jobs = q(tsdb, "SELECT proc_name, hypertable_name, config FROM timescaledb_information.jobs "
                   "WHERE proc_name IN ('policy_compression', 'policy_refresh_continuous_aggregate', "
                   "'policy_retention') ORDER BY 1, 2")
    kinds = [j[0] for j in jobs]
    assert kinds.count("policy_compression") == 1 and kinds.count("policy_refresh_continuous_aggregate") == 2
    assert "policy_retention" not in kinds  # raw is the record: retention is opt-in


def test_compressed_chunks_answer_identically_and_take_late_data(tsdb):
    n = fill(tsdb)
    assert n == 3600
    q(tsdb, "CALL refresh_continuous_aggregate('batchwire.samples_1m', NULL, NULL)")
    q(tsdb, "CALL refresh_continuous_aggregate('batchwire.samples_1h', NULL, NULL)")
    before = [q(tsdb, sql) for sql in QUERIES]
    compressed = q(tsdb, "SELECT compress_chunk(c) FROM show_chunks('batchwire.samples') c")
    assert compressed
    assert q(tsdb, "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks "
                   "WHERE hypertable_schema = 'batchwire' AND hypertable_name = 'samples'") == [(True,)]
    after = [q(tsdb, sql) for sql in QUERIES]
    assert after == before
    # the writer's COPY and ingest-log idempotency still work on a compressed chunk
    pool = open_pool(tsdb)
    pool.open(wait=True)
    w = Writer(pool, Backend.TIMESCALEDB, worker="w2")
    late = data(99, [sample("A", T_OLD + 500, 1.25)])
    assert w.write(WriteBatch(data=[late])).samples == 1
    assert w.write(WriteBatch(data=[late])).duplicates
    pool.close()
    assert q(tsdb, "SELECT count(*) FROM batchwire.samples") == [(n + 1,)]
    assert q(tsdb, "SELECT value FROM batchwire.samples WHERE ts = %s", datetime.fromtimestamp(
        (T_OLD + 500) / 1e6, timezone.utc)) == [(1.25,)]


def test_policies_run(tsdb):
    fill(tsdb, seconds=600)
    jobs = dict(q(tsdb, "SELECT job_id, proc_name FROM timescaledb_information.jobs "
                        "WHERE hypertable_schema = 'batchwire' OR proc_name LIKE 'policy_refresh%%'"))
    refresh = [j for j, p in jobs.items() if p == "policy_refresh_continuous_aggregate"]
    (compress,) = [j for j, p in jobs.items() if p == "policy_compression"]
    for job in refresh + [compress]:
        q(tsdb, "CALL run_job(%s)", job)
    # the refresh policies materialised the buckets (not only real-time aggregation)
    for view in ("samples_1m", "samples_1h"):
        (schema, table), = q(tsdb, "SELECT materialization_hypertable_schema, materialization_hypertable_name "
                                   "FROM timescaledb_information.continuous_aggregates WHERE view_name = %s", view)
        (count,), = q(tsdb, f'SELECT count(*) FROM "{schema}"."{table}"')
        assert count > 0, view
    # the compression policy compressed the 3-day-old chunk
    assert q(tsdb, "SELECT count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
                   "WHERE hypertable_schema = 'batchwire' AND hypertable_name = 'samples'") == [(1,)]


def test_retention_policy_and_stats(tsdb, capsys):
    fill(tsdb, seconds=600)
    code, _ = run_cli(capsys, "db", "retention", "--db", tsdb, "--keep-days", "400")
    assert code == 0
    (config,), = q(tsdb, "SELECT config FROM timescaledb_information.jobs WHERE proc_name = 'policy_retention' "
                         "AND hypertable_schema = 'batchwire' AND hypertable_name = 'samples'")
    assert config["drop_after"] == "400 days"
    q(tsdb, "SELECT compress_chunk(c) FROM show_chunks('batchwire.samples') c")
    code, out = run_cli(capsys, "db", "stats", "--db", tsdb, "--json")
    stats = json.loads(out)
    assert code == 0 and stats["backend"] == "timescaledb"
    assert stats["chunks"] == 1 and stats["compressed_chunks"] == 1
    assert stats["rows"] == 1200 and stats["compression_ratio"] > 1
