"""Health of the historian: database reachability and ingest progress (pure status logic
plus two small statements)."""

from __future__ import annotations

from psycopg import AsyncConnection

from .timeparse import format_time

INGEST_SQL = """
SELECT max(committed),
       count(*) FILTER (WHERE committed > now() - interval '1 minute'),
       coalesce(sum(samples) FILTER (WHERE committed > now() - interval '1 minute'), 0)
FROM batchwire.ingest_log
"""


async def ingest_from_log(conn: AsyncConnection) -> dict:
    """Ingest progress as the database records it (used when no live ingest status is wired)."""
    async with conn.cursor() as cur:
        await cur.execute(INGEST_SQL)
        last, messages, samples = await cur.fetchone()
    return {"source": "ingest_log", "last_commit": format_time(last),
            "messages_last_minute": messages, "samples_last_minute": int(samples)}


def overall_status(database_ok: bool, broker: dict | None, ingest: dict | None) -> str:
    """``down`` without a database; ``degraded`` when the broker or ingest reports
    ``ok: false``; else ``ok``."""
    if not database_ok:
        return "down"
    for part in (broker, ingest):
        if part is not None and part.get("ok") is False:
            return "degraded"
    return "ok"
