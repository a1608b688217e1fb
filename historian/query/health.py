"""Health of the historian: database reachability and ingest progress (pure status logic
plus two small statements)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from .timeparse import format_time
from .values import encode_float

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


def jsonable(value: Any) -> Any:
    """A component's status report made JSON-safe the API's way: datetimes as ISO 8601 UTC
    strings, non-finite floats as strings, unknown objects as their ``str``."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, float):
        return encode_float(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def broker_from_ingest(ingest: dict | None) -> dict | None:
    """Broker connectivity as seen by the ingest client, when it reports ``connected``."""
    if ingest is None or "connected" not in ingest:
        return None
    connected = bool(ingest["connected"])
    return {"ok": connected, "connected": connected, "source": "ingest"}


def overall_status(database_ok: bool, broker: dict | None, ingest: dict | None) -> str:
    """``down`` without a database; ``degraded`` when the broker or ingest reports
    ``ok: false`` or ``connected: false``; else ``ok``."""
    if not database_ok:
        return "down"
    for part in (broker, ingest):
        if part is not None and (part.get("ok") is False or part.get("connected") is False):
            return "degraded"
    return "ok"
