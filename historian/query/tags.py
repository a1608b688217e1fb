"""The tag registry as the API shows it."""

from __future__ import annotations

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from .errors import NotFound
from .timeparse import format_time
from .values import encode_float

_COLUMNS = """tag_id, name, datatype, unit, description, source, low, high, site, edge,
              created_at, updated_at"""


def build_list(q: str | None, site: str | None) -> tuple[str, dict]:
    """SQL listing tags, optionally whose name or description contains ``q`` (any case)
    and of one ``site``; ordered by name."""
    where = []
    params: dict = {}
    if q:
        where.append("(strpos(lower(name), lower(%(q)s)) > 0"
                     " OR strpos(lower(coalesce(description, '')), lower(%(q)s)) > 0)")
        params["q"] = q
    if site:
        where.append("site = %(site)s")
        params["site"] = site
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {_COLUMNS} FROM batchwire.tags {clause} ORDER BY name", params


def shape_tag(row: dict) -> dict:
    return {
        "name": row["name"],
        "datatype": row["datatype"],
        "unit": row["unit"],
        "description": row["description"],
        "source": row["source"],
        "low": encode_float(row["low"]),
        "high": encode_float(row["high"]),
        "site": row["site"],
        "edge": row["edge"],
        "created_at": format_time(row["created_at"]),
        "updated_at": format_time(row["updated_at"]),
    }


async def fetch_tags(conn: AsyncConnection, *, q: str | None = None, site: str | None = None) -> list[dict]:
    sql, params = build_list(q, site)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(sql, params)
        return [shape_tag(r) for r in await cur.fetchall()]


async def lookup_tag(conn: AsyncConnection, name: str) -> dict:
    """The registry row of one tag (raw, with ``tag_id``); :class:`NotFound` naming it."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(f"SELECT {_COLUMNS} FROM batchwire.tags WHERE name = %s", (name,))
        row = await cur.fetchone()
    if row is None:
        raise NotFound(f"tag {name!r} not found")
    return row


async def fetch_tag(conn: AsyncConnection, name: str) -> dict:
    return shape_tag(await lookup_tag(conn, name))
