"""Batches and their phases (ISA-88), as derived by ingest from the contexts samples carry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection

from .errors import Ambiguous, NotFound
from .timeparse import TimeRange, format_time

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class BatchFilter:
    site: str | None = None
    unit: str | None = None
    recipe: str | None = None
    batch: str | None = None


def build_batches(flt: BatchFilter, rng: TimeRange, limit: int) -> tuple[str, dict]:
    """SQL for batches matching ``flt`` that overlap ``rng`` (open bounds: no limit), newest
    start first, at most ``limit + 1`` batches, one row per phase (phase columns NULL for a
    batch without phases)."""
    where = []
    params: dict = {"limit_plus_one": limit + 1}
    for column in ("site", "unit", "recipe", "batch"):
        value = getattr(flt, column)
        if value is not None:
            where.append(f"{column} = %({column})s")
            params[column] = value
    if rng.start is not None:
        where.append("end_ts >= %(start)s")
        params["start"] = rng.start
    if rng.end is not None:
        where.append("start_ts < %(end)s")
        params["end"] = rng.end
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"""
WITH b AS (
    SELECT site, unit, batch, recipe, start_ts, end_ts
    FROM batchwire.batches {clause}
    ORDER BY start_ts DESC, site, unit, batch
    LIMIT %(limit_plus_one)s
)
SELECT b.site, b.unit, b.batch, b.recipe, b.start_ts, b.end_ts,
       p.phase, p.start_ts AS phase_start, p.end_ts AS phase_end
FROM b LEFT JOIN batchwire.phases p
    ON p.site = b.site AND p.unit = b.unit AND p.batch = b.batch
ORDER BY b.start_ts DESC, b.site, b.unit, b.batch, p.start_ts, p.phase
"""
    return sql, params


def shape_batches(rows: list[tuple]) -> list[dict]:
    """Group phase rows under their batch, keeping the order of the rows."""
    batches: list[dict] = []
    index: dict[tuple, dict] = {}
    for site, unit, batch, recipe, start, end, phase, p_start, p_end in rows:
        key = (site, unit, batch)
        record = index.get(key)
        if record is None:
            record = {
                "site": site, "unit": unit, "batch": batch, "recipe": recipe,
                "start": format_time(start), "end": format_time(end), "phases": [],
                "_start": start, "_end": end,
            }
            index[key] = record
            batches.append(record)
        if phase is not None:
            record["phases"].append({"phase": phase, "start": format_time(p_start), "end": format_time(p_end)})
    return batches


def public(batch: dict) -> dict:
    """A shaped batch without its internal raw-time fields."""
    return {k: v for k, v in batch.items() if not k.startswith("_")}


async def fetch_batch_records(
    conn: AsyncConnection, flt: BatchFilter, rng: TimeRange, limit: int = DEFAULT_LIMIT
) -> tuple[list[dict], bool]:
    """Shaped batches (with internal ``_start``/``_end``) and whether the list was truncated."""
    sql, params = build_batches(flt, rng, limit)
    async with conn.cursor() as cur:
        await cur.execute(sql, params)
        rows = await cur.fetchall()
    batches = shape_batches(rows)
    return batches[:limit], len(batches) > limit


async def fetch_batches(
    conn: AsyncConnection, flt: BatchFilter, rng: TimeRange, limit: int = DEFAULT_LIMIT
) -> tuple[list[dict], bool]:
    batches, truncated = await fetch_batch_records(conn, flt, rng, limit)
    return [public(b) for b in batches], truncated


async def find_batch(conn: AsyncConnection, batch: str, site: str | None, unit: str | None) -> dict:
    """One batch by id (``site``/``unit`` narrow it down). :class:`NotFound` when none,
    :class:`Ambiguous` when the id exists on several units."""
    found, _ = await fetch_batch_records(
        conn, BatchFilter(site=site, unit=unit, batch=batch), TimeRange(None, None), limit=20)
    if not found:
        where = "".join(f" {k}={v!r}" for k, v in (("site", site), ("unit", unit)) if v)
        raise NotFound(f"batch {batch!r} not found" + (f" on{where}" if where else ""))
    if len(found) > 1:
        places = ", ".join(f"{b['site']}/{b['unit']}" for b in found)
        raise Ambiguous(f"batch {batch!r} exists on several units ({places}); pass site= and unit=")
    return found[0]


def batch_range(batch: dict) -> TimeRange:
    """The batch's time range as a half-open interval (its end is the last sample's time)."""
    start: datetime = batch["_start"]
    end: datetime = batch["_end"]
    return TimeRange(start, end + timedelta(microseconds=1))
