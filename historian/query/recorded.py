"""Raw recorded samples of one tag, with the batch context each was acquired in."""

from __future__ import annotations

from psycopg import AsyncConnection

from .tags import lookup_tag
from .timeparse import TimeRange, format_time
from .values import quality_fields, typed_value

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000

# LIMIT n+1: the extra row only tells whether the answer was truncated.
# batchwire.samples_between (migration 0005) is inlined by the planner: on plain PostgreSQL
# it finds the packed rows of the tag overlapping the range by the (tag_id, ts_min) index
# and unnests only those; on TimescaleDB it is the hypertable's (tag_id, ts) index scan.
_SQL = """
SELECT s.ts, s.value, s.value_text, s.quality, c.site, c.unit, c.batch, c.phase, c.recipe
FROM batchwire.samples_between(%(tag_id)s, %(start)s, %(end)s) s
LEFT JOIN batchwire.contexts c ON c.context_id = s.context_id
ORDER BY s.ts
LIMIT %(limit_plus_one)s
"""


def build_recorded(tag_id: int, rng: TimeRange, limit: int) -> tuple[str, dict]:
    """SQL for samples of ``tag_id`` in ``[start, end)`` ordered by time, at most ``limit + 1``."""
    return _SQL, {"tag_id": tag_id, "start": rng.start, "end": rng.end, "limit_plus_one": limit + 1}


def shape_recorded(tag: dict, rows: list[tuple], limit: int, rng: TimeRange) -> dict:
    """The response body; ``rows`` as returned by :func:`build_recorded` (up to limit + 1)."""
    datatype = tag["datatype"]
    samples = []
    for ts, value, value_text, quality, site, unit, batch, phase, recipe in rows[:limit]:
        samples.append({
            "ts": format_time(ts),
            "value": typed_value(datatype, value, value_text),
            **quality_fields(quality),
            "batch": batch,
            "phase": phase,
            "unit": unit,
            "recipe": recipe,
            "site": site,
        })
    return {
        "tag": tag["name"],
        "datatype": datatype,
        "unit": tag["unit"],
        **rng.as_json(),
        "samples": samples,
        "truncated": len(rows) > limit,
    }


async def fetch_recorded(conn: AsyncConnection, tag: str, rng: TimeRange, limit: int = DEFAULT_LIMIT) -> dict:
    meta = await lookup_tag(conn, tag)
    sql, params = build_recorded(meta["tag_id"], rng, limit)
    async with conn.cursor() as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    return shape_recorded(meta, rows, limit, rng)
