"""Edges (gateways) as last reported by their state and birth messages."""

from __future__ import annotations

from psycopg import AsyncConnection

from .timeparse import format_time

SQL = "SELECT edge, site, session, state, changed_at, last_birth FROM batchwire.edges ORDER BY site, edge"


def shape_edge(row: tuple) -> dict:
    edge, site, session, state, changed_at, last_birth = row
    return {"edge": edge, "site": site, "session": session, "state": state,
            "changed_at": format_time(changed_at), "last_birth": format_time(last_birth)}


async def fetch_edges(conn: AsyncConnection) -> list[dict]:
    async with conn.cursor() as cur:
        await cur.execute(SQL)
        return [shape_edge(r) for r in await cur.fetchall()]
