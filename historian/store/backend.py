"""Which storage shape this database gets: TimescaleDB where the extension is available,
native range partitioning on plain PostgreSQL >= 15. Detected, never configured."""

from __future__ import annotations

import enum

import psycopg


class Backend(str, enum.Enum):
    PLAIN = "plain"
    TIMESCALEDB = "timescaledb"


MIN_SERVER_VERSION = 150000


def detect_backend(conn: psycopg.Connection) -> Backend:
    """TimescaleDB if its extension is installed in the database or available to install,
    else plain PostgreSQL (which must be >= 15 for UNIQUE NULLS NOT DISTINCT)."""
    if conn.info.server_version < MIN_SERVER_VERSION:
        from .errors import StoreError

        raise StoreError(
            f"PostgreSQL {conn.info.server_version // 10000} is too old: batchwire needs >= 15"
        )
    row = conn.execute(
        "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"
    ).fetchone()
    return Backend.TIMESCALEDB if row else Backend.PLAIN


def installed_backend(conn: psycopg.Connection) -> Backend | None:
    """The backend the schema was migrated with (None before the first migration)."""
    try:
        row = conn.execute(
            "SELECT backend FROM batchwire.schema_migrations WHERE backend IS NOT NULL LIMIT 1"
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return None
    return Backend(row[0]) if row else None
