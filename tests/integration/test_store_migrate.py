"""Migrations: ordered, recorded, idempotent, safe when several processes start at once."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import psycopg

from historian.store import migrate
from historian.store.migrate import plan
from historian.store.backend import Backend


def test_plan_orders_and_picks_backend_variant():
    names = [m.name for m in plan(Backend.PLAIN)]
    assert names == sorted(names) and names[:2] == ["0001_core", "0002_samples"]
    assert plan(Backend.PLAIN)[1].path.name == "0002_samples.plain.sql"
    assert plan(Backend.TIMESCALEDB)[1].path.name == "0002_samples.timescaledb.sql"


def test_migrate_is_recorded_and_idempotent(fresh_db):
    first = migrate(fresh_db)
    assert first[:2] == ["0001_core", "0002_samples"]
    assert migrate(fresh_db) == []
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT name FROM batchwire.schema_migrations ORDER BY name").fetchall()
    assert [r[0] for r in rows] == first


def test_concurrent_migrate_applies_once(fresh_db):
    results, errors = [], []

    def run():
        try:
            results.append(migrate(fresh_db))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(len(r) for r in results)[:2] == [0, 0]
    assert sum(len(r) for r in results) == len(plan(Backend.PLAIN))


def test_plain_partitions_created_ahead_with_default(fresh_db):
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        if conn.execute("SELECT backend FROM batchwire.schema_migrations LIMIT 1").fetchone()[0] != "plain":
            return
        parts = {r[0] for r in conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'batchwire.samples_packed'::regclass")}
        today = datetime.now(timezone.utc).date()
        for d in (today - timedelta(days=1), today, today + timedelta(days=3)):
            assert f"samples_packed_{d:%Y%m%d}" in parts
        assert "samples_packed_default" in parts


def test_detected_backend_is_one_the_server_can_create(fresh_db, caplog):
    """Whatever the server (TimescaleDB preloaded, available only, or absent), the detected
    backend migrates: TimescaleDB is chosen only where CREATE EXTENSION really works."""
    import logging

    from historian.store.backend import detect_backend

    with psycopg.connect(fresh_db, autocommit=True) as conn:
        with caplog.at_level(logging.INFO, logger="historian.store.backend"):
            backend = detect_backend(conn)
        assert any("storage backend" in r.message for r in caplog.records)
        available = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')").fetchone()[0]
        if backend is Backend.PLAIN and available:
            # available but not preloaded: the extension indeed cannot be created
            try:
                conn.execute("CREATE EXTENSION timescaledb")
            except psycopg.Error:
                pass
            else:  # pragma: no cover - would mean detection was too cautious
                raise AssertionError("timescaledb was creatable but plain was chosen")
    assert migrate(fresh_db)[:2] == ["0001_core", "0002_samples"]
    with psycopg.connect(fresh_db) as conn:
        recorded = conn.execute("SELECT DISTINCT backend FROM batchwire.schema_migrations").fetchall()
        assert recorded == [(backend.value,)]
        if backend is Backend.TIMESCALEDB:
            assert conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'").fetchone() == (1,)


def test_ingest_log_indexes_for_the_api(fresh_db):
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        defs = {r[0] for r in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'batchwire' AND tablename = 'ingest_log'")}
        assert any("(committed)" in d for d in defs) and any("(edge, first_ts)" in d for d in defs)
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            "EXPLAIN SELECT * FROM batchwire.ingest_log WHERE edge = 'e' AND first_ts >= now() - interval '1 hour'"))
        assert "ingest_log_edge_first_ts_idx" in plan
