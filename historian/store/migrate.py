"""Versioned schema migrations.

Files in ``historian/migrations`` are named ``NNNN_name.sql`` (every backend) or
``NNNN_name.<backend>.sql`` (one variant per backend, e.g. ``0002_samples.plain.sql`` and
``0002_samples.timescaledb.sql``). They are applied in number order, each in its own
transaction together with its row in ``batchwire.schema_migrations``; one already recorded
there is skipped, so running :func:`migrate` again is a no-op. A session-level advisory lock
serialises concurrent starters (an API process and an ingest worker booting together).
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from .backend import Backend, detect_backend, installed_backend
from .errors import MigrationError, StoreUnavailable

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
#: pg_advisory_lock key: "batchwire migrate" as a stable int8
LOCK_KEY = 0x62775F6D69677261
_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)(?:\.(plain|timescaledb))?\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    name: str  # NNNN_name, the recorded identity (same for every backend variant)
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def plan(backend: Backend, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations for ``backend`` in order (pure apart from reading the files)."""
    common: dict[str, Path] = {}
    variants: dict[str, dict[str, Path]] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _FILE_RE.match(path.name)
        if not m:
            raise MigrationError(f"migration file name {path.name!r} is not NNNN_name[.backend].sql")
        name = f"{m[1]}_{m[2]}"
        if m[3]:
            variants.setdefault(name, {})[m[3]] = path
        else:
            common[name] = path
    numbers: dict[str, str] = {}
    for name in list(common) + list(variants):
        other = numbers.setdefault(name[:4], name)
        if other != name:
            raise MigrationError(f"migrations {other} and {name} share the number {name[:4]}")
    out = []
    for name in sorted(numbers.values()):
        if name in common and name in variants:
            raise MigrationError(f"migration {name} has both a common file and backend variants")
        path = common.get(name) or variants[name].get(backend.value)
        if path is None:
            raise MigrationError(f"migration {name} has no variant for the {backend.value} backend")
        out.append(Migration(name, path, path.read_text()))
    return out


def migrate(dsn: str, *, backend: Backend | None = None) -> list[str]:
    """Bring the database at ``dsn`` to the newest schema; return the names applied now
    (empty when it was already current). The backend is detected; ``backend`` forces one
    for a new database (tests of the plain shape on a TimescaleDB server). Raises :class:`MigrationError` naming the
    migration that failed, :class:`StoreUnavailable` when the database cannot be reached."""
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as err:
        raise StoreUnavailable(f"cannot connect to the database: {err}") from err
    with conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        try:
            return _migrate_locked(conn, backend)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def _migrate_locked(conn: psycopg.Connection, forced: Backend | None) -> list[str]:
    backend = installed_backend(conn) or forced or detect_backend(conn)
    conn.execute("CREATE SCHEMA IF NOT EXISTS batchwire")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS batchwire.schema_migrations (
               name       text PRIMARY KEY,
               backend    text NOT NULL,
               checksum   text NOT NULL,
               applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    done = {
        name: checksum
        for name, checksum in conn.execute("SELECT name, checksum FROM batchwire.schema_migrations")
    }
    applied = []
    for mig in plan(backend):
        if mig.name in done:
            if done[mig.name] != mig.checksum:
                log.warning("migration %s changed since it was applied; not re-applied", mig.name)
            continue
        try:
            with conn.transaction():
                conn.execute(mig.sql)
                conn.execute(
                    "INSERT INTO batchwire.schema_migrations (name, backend, checksum) VALUES (%s, %s, %s)",
                    (mig.name, backend.value, mig.checksum),
                )
        except psycopg.Error as err:
            raise MigrationError(f"migration {mig.path.name} failed: {err}") from err
        log.info("applied migration %s (%s backend)", mig.name, backend.value)
        applied.append(mig.name)
    return applied
