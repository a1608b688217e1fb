"""Events recorded from edges and from the historian (data gaps, source outages …)."""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import AsyncConnection

from .timeparse import TimeRange, format_time

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000

_COLUMNS = "event_id, edge, site, source_id, type, ts, start_ts, end_ts, tags, detail, recorded_at"


def build_events(rng: TimeRange, *, type_: str | None = None, edges: Sequence[str] | None = None,
                 limit: int = DEFAULT_LIMIT) -> tuple[str, dict]:
    """SQL for events whose time span (``start_ts..end_ts``, or ``ts`` when they have none)
    meets ``[start, end)``, oldest first, at most ``limit + 1``."""
    where = []
    params: dict = {"limit_plus_one": limit + 1}
    if rng.start is not None:
        where.append("coalesce(end_ts, ts) >= %(start)s")
        params["start"] = rng.start
    if rng.end is not None:
        where.append("coalesce(start_ts, ts) < %(end)s")
        params["end"] = rng.end
    if type_ is not None:
        where.append("type = %(type)s")
        params["type"] = type_
    if edges is not None:
        where.append("edge = ANY(%(edges)s)")
        params["edges"] = list(edges)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = (f"SELECT {_COLUMNS} FROM batchwire.events {clause} "
           "ORDER BY coalesce(start_ts, ts), event_id LIMIT %(limit_plus_one)s")
    return sql, params


def shape_event(row: Sequence) -> dict:
    event_id, edge, site, source_id, type_, ts, start, end, tags, detail, recorded_at = row
    return {
        "id": event_id,
        "type": type_,
        "edge": edge,
        "site": site,
        "source_id": source_id,
        "ts": format_time(ts),
        "start": format_time(start),
        "end": format_time(end),
        "tags": list(tags or []),
        "detail": detail,
        "recorded_at": format_time(recorded_at),
    }


async def fetch_events(conn: AsyncConnection, rng: TimeRange, *, type_: str | None = None,
                       edges: Sequence[str] | None = None, limit: int = DEFAULT_LIMIT) -> tuple[list[dict], bool]:
    """Shaped events and whether the list was truncated at ``limit``."""
    sql, params = build_events(rng, type_=type_, edges=edges, limit=limit)
    async with conn.cursor() as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return [shape_event(r) for r in rows[:limit]], len(rows) > limit
