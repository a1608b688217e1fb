"""Storage figures for `batchwire db stats` (and the API, if it wants them)."""

from __future__ import annotations

from typing import Any

import psycopg

from .backend import installed_backend


def storage_stats(dsn: str) -> dict[str, Any]:
    """rows, bytes, bytes_per_sample, partitions (or chunks), compression ratio (TimescaleDB),
    rollup lag (newest raw sample vs newest rollup bucket), quarantine and ingest-log counts."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        backend = installed_backend(conn)
        if backend is None:
            raise LookupError("no batchwire schema in this database: run `batchwire db migrate`")
        out: dict[str, Any] = {"backend": backend.value}
        # reltuples is an estimate kept by ANALYZE/VACUUM: exact counts of billions of rows are not cheap
        if backend.value == "plain":
            # samples are packed several per row (migration 0005): sizes of samples_packed,
            # rows = packed rows, samples = sum of their counts
            parts = conn.execute(
                "SELECT c.relname, pg_total_relation_size(c.oid) "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'batchwire.samples_packed'::regclass ORDER BY c.relname").fetchall()
            out["partitions"] = len(parts)
            out["default_partition_rows"] = conn.execute(
                "SELECT count(*) FROM batchwire.samples_packed_default").fetchone()[0]
            size = sum(p[1] for p in parts)
            packed_rows, rows = conn.execute(
                "SELECT count(*), coalesce(sum(n), 0) FROM batchwire.samples_packed").fetchone()
            out["packed_rows"] = int(packed_rows)
            out["samples_per_packed_row"] = round(rows / packed_rows, 1) if packed_rows else None
            out["compression_ratio"] = None
        else:
            size = conn.execute("SELECT hypertable_size('batchwire.samples')").fetchone()[0] or 0
            out["chunks"], out["compressed_chunks"] = conn.execute(
                "SELECT count(*), count(*) FILTER (WHERE is_compressed) FROM timescaledb_information.chunks "
                "WHERE hypertable_schema = 'batchwire' AND hypertable_name = 'samples'").fetchone()
            before, after = conn.execute(
                "SELECT sum(before_compression_total_bytes), sum(after_compression_total_bytes) "
                "FROM hypertable_compression_stats('batchwire.samples')").fetchone()
            out["compression_ratio"] = round(float(before) / float(after), 2) if before and after else None
            rows = conn.execute("SELECT approximate_row_count('batchwire.samples')").fetchone()[0]
        if backend.value != "plain" and rows < 100_000:  # small enough to count exactly
            rows = conn.execute("SELECT count(*) FROM batchwire.samples").fetchone()[0]
        out["rows"] = int(rows)
        out["bytes"] = int(size)
        out["bytes_per_sample"] = round(size / rows, 1) if rows else None
        newest_raw = conn.execute(
            "SELECT max(ts_max) FROM batchwire.samples_packed" if backend.value == "plain"
            else "SELECT max(ts) FROM batchwire.samples").fetchone()[0]
        for name in ("samples_1m", "samples_1h"):
            newest = conn.execute(f"SELECT max(last_ts) FROM batchwire.{name}").fetchone()[0]
            lag = (newest_raw - newest).total_seconds() if newest_raw and newest else None
            out[f"{name}_lag_s"] = lag
        if backend.value == "plain":  # buckets ingest queued that the rollup maintainer has not folded in yet
            from .rollups import pending

            out["rollup_pending"], out["rollup_pending_age_s"] = pending(conn)
        out["ingest_log_messages"] = conn.execute("SELECT count(*) FROM batchwire.ingest_log").fetchone()[0]
        out["quarantined"] = conn.execute("SELECT count(*) FROM batchwire.quarantine").fetchone()[0]
        out["tags"] = conn.execute("SELECT count(*) FROM batchwire.tags").fetchone()[0]
        return out
