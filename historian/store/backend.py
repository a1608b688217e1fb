"""Which storage shape this database gets: TimescaleDB where the extension can really be
used, native range partitioning on plain PostgreSQL >= 15. Detected, never configured.

The extension being *available* (its files installed on the server) is not enough:
``CREATE EXTENSION timescaledb`` fails unless the server loads the library at start
(``shared_preload_libraries``). So TimescaleDB is chosen when the extension is already
installed in the database, or available *and* preloaded; otherwise plain PostgreSQL, and
the reason is logged.
"""

from __future__ import annotations

import enum
import logging

import psycopg

log = logging.getLogger(__name__)


class Backend(str, enum.Enum):
    PLAIN = "plain"
    TIMESCALEDB = "timescaledb"


MIN_SERVER_VERSION = 150000
EXTENSION = "timescaledb"


def preloaded_libraries(setting: str) -> list[str]:
    """Library names in a ``shared_preload_libraries`` value: comma separated, optionally
    double-quoted, possibly given as paths (``$libdir/timescaledb``) or with a ``.so``
    suffix; returned as bare lower-case names. Pure."""
    names = []
    for item in setting.split(","):
        item = item.strip().strip('"').strip()
        if not item:
            continue
        item = item.rsplit("/", 1)[-1]
        if item.endswith(".so"):
            item = item[:-3]
        names.append(item.lower())
    return names


def choose_backend(*, installed: bool, available: bool, preload_setting: str) -> tuple[Backend, str]:
    """The backend for a database given what the server says, and why. Pure."""
    if installed:
        return Backend.TIMESCALEDB, "the timescaledb extension is installed in this database"
    if not available:
        return Backend.PLAIN, "the timescaledb extension is not available on this server; using plain PostgreSQL partitions"
    # versioned loader names such as timescaledb-2.29.2 are the same extension
    if any(n == EXTENSION or n.startswith(EXTENSION + "-") for n in preloaded_libraries(preload_setting)):
        return Backend.TIMESCALEDB, "the timescaledb extension is available and preloaded"
    return Backend.PLAIN, ("timescaledb is available but not in shared_preload_libraries; "
                           "using plain PostgreSQL partitions")


def detect_backend(conn: psycopg.Connection) -> Backend:
    """TimescaleDB if its extension is installed in the database, or available to install
    and preloaded by the server; else plain PostgreSQL (which must be >= 15 for UNIQUE NULLS
    NOT DISTINCT). Logs the reason for the choice."""
    backend, why = detect_backend_reason(conn)
    log.info("storage backend %s: %s", backend.value, why)
    return backend


def detect_backend_reason(conn: psycopg.Connection) -> tuple[Backend, str]:
    """:func:`detect_backend` with the reason, without logging."""
    if conn.info.server_version < MIN_SERVER_VERSION:
        from .errors import StoreError

        raise StoreError(
            f"PostgreSQL {conn.info.server_version // 10000} is too old: batchwire needs >= 15"
        )
    installed, available, preload = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %(e)s), "
        "       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = %(e)s), "
        "       coalesce(current_setting('shared_preload_libraries', true), '')",
        {"e": EXTENSION},
    ).fetchone()
    return choose_backend(installed=installed, available=available, preload_setting=preload)


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
