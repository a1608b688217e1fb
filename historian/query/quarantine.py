"""Quarantined payloads: messages ingest could not apply, kept raw with the reason."""

from __future__ import annotations

from psycopg import AsyncConnection

from .timeparse import TimeRange, format_time

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000
PREVIEW_BYTES = 2000


def build_quarantine(rng: TimeRange, reason: str | None, limit: int) -> tuple[str, dict]:
    """SQL for quarantined messages received in ``[start, end)``, newest first, at most
    ``limit + 1``; only the first :data:`PREVIEW_BYTES` of each payload leave the database."""
    where = []
    params: dict = {"limit_plus_one": limit + 1, "preview": PREVIEW_BYTES}
    if rng.start is not None:
        where.append("received >= %(start)s")
        params["start"] = rng.start
    if rng.end is not None:
        where.append("received < %(end)s")
        params["end"] = rng.end
    if reason is not None:
        where.append("reason = %(reason)s")
        params["reason"] = reason
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"""
SELECT quarantine_id, received, topic, reason, detail, edge, session, seq,
       substring(payload FROM 1 FOR %(preview)s), octet_length(payload)
FROM batchwire.quarantine {clause}
ORDER BY received DESC, quarantine_id DESC
LIMIT %(limit_plus_one)s
"""
    return sql, params


def preview(head: bytes) -> str:
    """Payload bytes as text; bytes that are not UTF-8 (or a character cut at the preview
    boundary) become U+FFFD."""
    return bytes(head).decode("utf-8", errors="replace")


def shape_entry(row: tuple) -> dict:
    qid, received, topic, reason, detail, edge, session, seq, head, size = row
    return {
        "id": qid,
        "received": format_time(received),
        "topic": topic,
        "reason": reason,
        "detail": detail,
        "edge": edge,
        "session": session,
        "seq": seq,
        "size": size,
        "payload_preview": preview(head),
        "preview_truncated": size > PREVIEW_BYTES,
    }


async def fetch_quarantine(conn: AsyncConnection, rng: TimeRange, reason: str | None = None,
                           limit: int = DEFAULT_LIMIT) -> dict:
    sql, params = build_quarantine(rng, reason, limit)
    async with conn.cursor() as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return {**rng.as_json(), "messages": [shape_entry(r) for r in rows[:limit]],
            "truncated": len(rows) > limit}
