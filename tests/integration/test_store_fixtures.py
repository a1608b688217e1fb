"""Fixtures and builders shared by the storage and ingest tests (no tests of its own)."""

from __future__ import annotations

import psycopg
import pytest

from edge.contract import BatchContext, BirthMessage, DataMessage, Sample, TagInfo, now_micros
from historian.store import Backend, migrate
from historian.store.writer import DataIn, Writer, open_pool

SITE, EDGE = "s1", "e1"


def backend_of(dsn: str) -> Backend:
    with psycopg.connect(dsn) as conn:
        return Backend(conn.execute("SELECT backend FROM batchwire.schema_migrations LIMIT 1").fetchone()[0])


def birth(*names: str, datatype: str = "float", unit: str | None = "degC", session: str = "S1") -> BirthMessage:
    return BirthMessage(EDGE, SITE, session, now_micros(),
                        tuple(TagInfo(n, datatype, unit, f"{n} description") for n in names))


CTX = BatchContext(SITE, "BR01", "B-17", "growth", "R1")


def data(seq: int, samples, *, session: str = "S1", contexts=None, historical=False) -> DataIn:
    msg = DataMessage(EDGE, SITE, session, seq, now_micros(), tuple(samples),
                      contexts if contexts is not None else {"c": CTX}, historical)
    return DataIn(msg, now_micros(), f"t/v1/{SITE}/{EDGE}/data", b"{}")


def sample(tag: str, ts: int, value, quality: int = 0, ctx: str | None = "c") -> Sample:
    return Sample(tag, ts, value, quality, ctx)


def timescale_usable() -> tuple[bool, str]:
    """Whether the test server can host the TimescaleDB backend, and why (not)."""
    from historian.store.backend import detect_backend_reason
    from tests.conftest import PG_ADMIN_DSN

    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=3) as conn:
            backend, why = detect_backend_reason(conn)
    except psycopg.Error as err:
        return False, f"cannot ask the test server: {err}"
    return backend is Backend.TIMESCALEDB, why


@pytest.fixture(params=[
    Backend.PLAIN,
    pytest.param(Backend.TIMESCALEDB, marks=pytest.mark.timescale),
])
def db(request, fresh_db) -> str:
    """A migrated database, once per storage backend (TimescaleDB skips where absent)."""
    if request.param is Backend.TIMESCALEDB:
        usable, why = timescale_usable()
        if not usable:
            pytest.skip(f"TimescaleDB backend not usable on the test server: {why}")
    migrate(fresh_db, backend=request.param)
    return fresh_db


@pytest.fixture
def writer(db):
    pool = open_pool(db)
    pool.open(wait=True)
    w = Writer(pool, backend_of(db), worker="w1")
    yield w
    pool.close()
