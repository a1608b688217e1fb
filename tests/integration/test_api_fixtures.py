"""Fixtures and data helpers for the API integration tests (imported by test_api_*.py).

Data is inserted with plain SQL into a freshly migrated database, so each test states
exactly what is stored and asserts what the API makes of it.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone

import httpx
import psycopg
import pytest

from historian.api import create_app
from historian.store.migrate import migrate

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def api_db(fresh_db) -> str:
    """DSN of a fresh database with the batchwire schema."""
    migrate(fresh_db)
    return fresh_db


@asynccontextmanager
async def api_client(dsn: str, **options):
    """An httpx client talking to the app in process, with its lifespan run around it."""
    app = create_app(dsn, **options)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://historian") as client:
            yield client


class Data:
    """Synchronous inserts into the batchwire tables."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)

    def close(self) -> None:
        self.conn.close()

    def tag(self, name: str, datatype: str = "float", unit: str | None = "degC", *, site: str = "site1",
            edge: str = "edge1", description: str | None = None, low: float | None = None,
            high: float | None = None, source: str | None = None) -> int:
        return self.conn.execute(
            "INSERT INTO batchwire.tags (name, datatype, unit, description, source, low, high, site, edge)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING tag_id",
            (name, datatype, unit, description, source, low, high, site, edge)).fetchone()[0]

    def context(self, site: str, unit: str, batch: str | None, phase: str | None, recipe: str | None) -> int:
        return self.conn.execute(
            "INSERT INTO batchwire.contexts (site, unit, batch, phase, recipe) VALUES (%s, %s, %s, %s, %s)"
            " ON CONFLICT (site, unit, batch, phase, recipe) DO UPDATE SET site = EXCLUDED.site"
            " RETURNING context_id", (site, unit, batch, phase, recipe)).fetchone()[0]

    def samples(self, tag_id: int, rows) -> None:
        """rows: (ts, value, value_text, quality, context_id)"""
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO batchwire.samples (tag_id, ts, value, value_text, quality, context_id)"
                " VALUES (%s, %s, %s, %s, %s, %s)", [(tag_id, *r) for r in rows])

    def batch(self, site: str, unit: str, batch: str, recipe: str | None, start: datetime, end: datetime,
              phases=()) -> None:
        self.conn.execute("INSERT INTO batchwire.batches VALUES (%s, %s, %s, %s, %s, %s)",
                          (site, unit, batch, recipe, start, end))
        for phase, p_start, p_end in phases:
            self.conn.execute("INSERT INTO batchwire.phases VALUES (%s, %s, %s, %s, %s, %s)",
                              (site, unit, batch, phase, p_start, p_end))

    def messages(self, edge: str, session: str, seqs, *, site: str = "site1", time_of=None,
                 samples: int = 10, committed: datetime | None = None) -> None:
        """ingest_log rows; message n covers time_of(n) .. time_of(n) + 30 s (default: minute n)."""
        time_of = time_of or (lambda n: at(n))
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO batchwire.ingest_log (edge, session, seq, site, sent, received, committed,"
                " samples, first_ts, last_ts) VALUES (%s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s, %s, %s)",
                [(edge, session, n, site, time_of(n), time_of(n), committed, samples, time_of(n),
                  time_of(n) + timedelta(seconds=30)) for n in seqs])

    def event(self, edge: str, type_: str, ts: datetime, start: datetime | None = None,
              end: datetime | None = None, tags=(), source_id: str | None = None, detail: str = "{}") -> None:
        self.conn.execute(
            "INSERT INTO batchwire.events (edge, site, source_id, type, ts, start_ts, end_ts, tags, detail)"
            " VALUES (%s, 'site1', %s, %s, %s, %s, %s, %s, %s::jsonb)",
            (edge, source_id, type_, ts, start, end, list(tags), detail))

    def quarantine(self, reason: str, payload: bytes, *, received: datetime, topic: str = "batchwire/v1/site1/edge1/data",
                   detail: str = "", edge: str | None = "edge1", session: str | None = None,
                   seq: int | None = None) -> None:
        self.conn.execute(
            "INSERT INTO batchwire.quarantine (received, topic, reason, detail, edge, session, seq, payload)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (received, topic, reason, detail, edge, session, seq, payload))

    def edge(self, edge: str, state: str, session: str, changed_at: datetime, last_birth: datetime | None) -> None:
        self.conn.execute("INSERT INTO batchwire.edges VALUES (%s, 'site1', %s, %s, %s, %s)",
                          (edge, session, state, changed_at, last_birth))


@pytest.fixture
def data(api_db):
    d = Data(api_db)
    yield d
    d.close()

