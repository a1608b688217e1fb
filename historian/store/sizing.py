"""Chunk interval (TimescaleDB) and partition span (plain) from an expected ingest rate.
The derivations are pure; :func:`apply_expected_rate` writes them to a database.

TimescaleDB's guidance is that the newest chunks with their indexes fit in about a quarter
of memory. An uncompressed sample costs ~92 bytes with its ``(tag_id, ts)`` index, so a
chunk of :data:`TARGET_CHUNK_SAMPLES` (~2.3 GB) suits a server with ~8-16 GB of RAM; the
interval is the largest "round" one not above ``TARGET_CHUNK_SAMPLES / rate``, between
1 hour and 7 days.

On plain PostgreSQL samples are packed (~10-25 bytes each) and the index has one entry per
packed row, so partitions only set the granularity of retention drops and the number of
tables the planner prunes: a partition of about :data:`TARGET_PARTITION_SAMPLES` samples
(~10-25 GB), as whole days between 1 and 28.
"""

from __future__ import annotations

from datetime import timedelta

import psycopg

from .backend import Backend, installed_backend

TARGET_CHUNK_SAMPLES = 25_000_000
TARGET_PARTITION_SAMPLES = 1_000_000_000
_H = timedelta(hours=1)
CHUNK_STEPS = (_H, 2 * _H, 3 * _H, 4 * _H, 6 * _H, 8 * _H, 12 * _H, 24 * _H, 48 * _H, 72 * _H, 168 * _H)
PARTITION_DAY_STEPS = (1, 2, 3, 7, 14, 28)


def _check(rate: float) -> None:
    if not rate > 0:
        raise ValueError(f"expected rate must be > 0 samples/s, got {rate!r}")


def chunk_interval(rate: float) -> timedelta:
    """TimescaleDB chunk interval for ``rate`` samples/s (whole store)."""
    _check(rate)
    ideal = timedelta(seconds=TARGET_CHUNK_SAMPLES / rate)
    fitting = [s for s in CHUNK_STEPS if s <= ideal]
    return fitting[-1] if fitting else CHUNK_STEPS[0]


def partition_days(rate: float) -> int:
    """Plain-backend partition span in days for ``rate`` samples/s."""
    _check(rate)
    ideal = TARGET_PARTITION_SAMPLES / (rate * 86_400)
    fitting = [d for d in PARTITION_DAY_STEPS if d <= ideal]
    return fitting[-1] if fitting else PARTITION_DAY_STEPS[0]


def apply_expected_rate(conn: psycopg.Connection, rate: float) -> str:
    """Record ``rate`` (``settings.expected_rate``) and apply what follows from it:
    TimescaleDB ``set_chunk_time_interval`` (chunks created from now on), plain
    ``settings.partition_days`` (partitions created from now on by ensure_partitions).
    Existing chunks and partitions are not re-cut. Returns a sentence saying what was set."""
    from .retention import set_setting

    backend = installed_backend(conn)
    if backend is None:
        raise LookupError("no batchwire schema in this database: run `batchwire db migrate`")
    with conn.transaction():
        set_setting(conn, "expected_rate", repr(float(rate)))
        if backend is Backend.TIMESCALEDB:
            interval = chunk_interval(rate)
            conn.execute("SELECT set_chunk_time_interval('batchwire.samples', %s::interval)", (interval,))
            return f"expected rate {rate:g} samples/s: chunk interval {interval} for new chunks"
        days = partition_days(rate)
        set_setting(conn, "partition_days", str(days))
        return f"expected rate {rate:g} samples/s: partitions of {days} day(s) from now on"
