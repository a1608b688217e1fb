"""Completeness of the record: expected versus committed messages per edge session, the
gaps with their time ranges, and the data-gap events edges reported.

A message belongs to a time range when the source times of its samples meet the range
(a message without samples: its send time). The sequence-number arithmetic is in
:mod:`seqgaps`; here are the two statements that feed it and the shaping of the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

from psycopg import AsyncConnection

from .events import build_events, shape_event
from .seqgaps import Island, intersect, range_count, session_completeness
from .timeparse import TimeRange, format_time

#: Data-gap events listed with a completeness answer, at most.
EVENT_LIMIT = 10_000

_T0 = "coalesce(first_ts, sent)"
_T1 = "coalesce(last_ts, sent)"


def _edge_clause(edges: Sequence[str] | None, params: dict, alias: str = "") -> list[str]:
    if edges is None:
        return []
    params["edges"] = list(edges)
    return [f"{alias}edge = ANY(%(edges)s)"]


def build_in_range(rng: TimeRange, edges: Sequence[str] | None) -> tuple[str, dict]:
    """Per session: lowest/highest seq, messages, samples and time span of the committed
    messages that meet the range."""
    params: dict = {}
    where = _edge_clause(edges, params)
    if rng.end is not None:
        where.append(f"{_T0} < %(end)s")
        params["end"] = rng.end
    if rng.start is not None:
        where.append(f"{_T1} >= %(start)s")
        params["start"] = rng.start
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    sql = f"""
SELECT edge, session, min(seq), max(seq), count(*), sum(samples), min({_T0}), max({_T1}), min(site)
FROM batchwire.ingest_log {clause}
GROUP BY edge, session
"""
    return sql, params


def build_islands(rng: TimeRange, edges: Sequence[str] | None) -> tuple[str, dict]:
    """Runs of consecutive committed seqs (gaps-and-islands: ``seq - row_number()`` is
    constant along a run) of every session whose messages span time meeting the range, each
    with the first sample time of its first message and the last of its last message."""
    params: dict = {}
    where = _edge_clause(edges, params)
    having = []
    if rng.end is not None:
        having.append(f"min({_T0}) < %(end)s")
        params["end"] = rng.end
    if rng.start is not None:
        having.append(f"max({_T1}) >= %(start)s")
        params["start"] = rng.start
    where_clause = f"WHERE {' AND '.join(where)}" if where else ""
    having_clause = f"HAVING {' AND '.join(having)}" if having else ""
    sql = f"""
WITH scope AS (
    SELECT edge, session FROM batchwire.ingest_log {where_clause}
    GROUP BY edge, session {having_clause}
), numbered AS (
    SELECT l.edge, l.session, l.seq,
           l.seq - row_number() OVER (PARTITION BY l.edge, l.session ORDER BY l.seq) AS grp
    FROM batchwire.ingest_log l
    JOIN scope s ON s.edge = l.edge AND s.session = l.session
), islands AS (
    SELECT edge, session, min(seq) AS lo, max(seq) AS hi
    FROM numbered GROUP BY edge, session, grp
)
SELECT i.edge, i.session, i.lo, i.hi,
       coalesce(h.first_ts, h.sent), coalesce(t.last_ts, t.sent)
FROM islands i
JOIN batchwire.ingest_log h ON h.edge = i.edge AND h.session = i.session AND h.seq = i.lo
JOIN batchwire.ingest_log t ON t.edge = i.edge AND t.session = i.session AND t.seq = i.hi
ORDER BY i.edge, i.session, i.lo
"""
    return sql, params


QUARANTINED_SQL = """
SELECT DISTINCT q.edge, q.session, q.seq
FROM batchwire.quarantine q
JOIN unnest(%(edges)s::text[], %(sessions)s::text[]) AS k(edge, session)
  ON k.edge = q.edge AND k.session = q.session
WHERE q.seq IS NOT NULL
"""


def annotate_quarantined(result: dict, rows: Sequence[tuple]) -> dict:
    """Mark the missing seqs whose payload is in quarantine: refused, not lost (pure)."""
    by_session: dict[tuple, list[int]] = {}
    for edge, session, seq in rows:
        by_session.setdefault((edge, session), []).append(seq)
    for s in result["sessions"]:
        found = intersect([tuple(r) for r in s["missing"]], by_session.get((s["edge"], s["session"]), ()))
        s["quarantined"] = [[a, b] for a, b in found]
        s["quarantined_count"] = range_count(found)
    return result


def shape_completeness(rng: TimeRange, in_range_rows: Sequence[tuple], island_rows: Sequence[tuple],
                       event_rows: Sequence[tuple], events_truncated: bool = False) -> dict:
    """The completeness answer from the rows of the three statements (pure)."""
    in_range = {(r[0], r[1]): r for r in in_range_rows}
    sessions = []
    totals = {"expected": 0, "received": 0, "missing": 0}
    for (edge, session), rows in groupby(island_rows, key=lambda r: (r[0], r[1])):
        islands = [Island(lo, hi, head, tail) for _, _, lo, hi, head, tail in rows]
        stats = in_range.get((edge, session))
        result = session_completeness(
            islands, (stats[2], stats[3]) if stats else None, rng.start, rng.end)
        if result is None:
            continue
        missing = result.missing
        n_missing = sum(b - a + 1 for a, b in missing)
        sessions.append({
            "edge": edge,
            "session": session,
            "site": stats[8] if stats else None,
            "first_seq": result.first_seq,
            "last_seq": result.last_seq,
            "expected": result.expected,
            "received": result.received,
            "missing_count": n_missing,
            "missing": [[a, b] for a, b in missing],
            "gaps": [{"first_seq": g.first_seq, "last_seq": g.last_seq, "count": g.count,
                      "after": format_time(g.after), "before": format_time(g.before)}
                     for g in result.gaps],
            "messages_in_range": stats[4] if stats else 0,
            "samples": int(stats[5] or 0) if stats else 0,
            "first_time": format_time(stats[6]) if stats else None,
            "last_time": format_time(stats[7]) if stats else None,
        })
        totals["expected"] += result.expected
        totals["received"] += result.received
        totals["missing"] += n_missing
    data_gaps = [shape_event(r) for r in event_rows]
    return {
        **rng.as_json(),
        "complete": totals["missing"] == 0 and not data_gaps,
        **totals,
        "sessions": sessions,
        "data_gaps": data_gaps,
        "data_gaps_truncated": events_truncated,
    }


async def fetch_completeness(conn: AsyncConnection, rng: TimeRange,
                             edges: Sequence[str] | None = None) -> dict:
    """Completeness over ``rng`` of every edge, or of the edges named in ``edges``."""
    async with conn.cursor() as cur:
        sql, params = build_in_range(rng, edges)
        await cur.execute(sql, params)
        in_range_rows = await cur.fetchall()
        sql, params = build_islands(rng, edges)
        await cur.execute(sql, params)
        island_rows = await cur.fetchall()
        sql, params = build_events(rng, type_="data-gap", edges=edges, limit=EVENT_LIMIT)
        await cur.execute(sql, params)
        event_rows = await cur.fetchall()
        result = shape_completeness(rng, in_range_rows, island_rows, event_rows[:EVENT_LIMIT],
                                    len(event_rows) > EVENT_LIMIT)
        gappy = [s for s in result["sessions"] if s["missing"]]
        quarantined: list[tuple] = []
        if gappy:
            await cur.execute(QUARANTINED_SQL, {"edges": [s["edge"] for s in gappy],
                                                "sessions": [s["session"] for s in gappy]})
            quarantined = await cur.fetchall()
    return annotate_quarantined(result, quarantined)


_BATCH_EDGES = """
SELECT DISTINCT t.edge FROM batchwire.tags t
WHERE t.edge IS NOT NULL AND EXISTS (
    SELECT 1 FROM batchwire.samples_between(t.tag_id, %(start)s, %(end)s) s
    WHERE s.context_id IN (SELECT context_id FROM batchwire.contexts
                           WHERE site = %(site)s AND unit = %(unit)s AND batch = %(batch)s))
ORDER BY t.edge
"""


async def fetch_batch_edges(conn: AsyncConnection, batch: dict, rng: TimeRange) -> list[str]:
    """Edges that sent samples carrying this batch's context within its time range."""
    async with conn.cursor() as cur:
        await cur.execute(_BATCH_EDGES, {"start": rng.start, "end": rng.end, "site": batch["site"],
                                         "unit": batch["unit"], "batch": batch["batch"]})
        return [r[0] for r in await cur.fetchall()]


async def fetch_batch_completeness(conn: AsyncConnection, batch: dict, rng: TimeRange) -> dict:
    """Completeness of the messages of the batch's edges over the batch's time range."""
    edges = await fetch_batch_edges(conn, batch, rng)
    result = await fetch_completeness(conn, rng, edges)
    return {"batch": batch["batch"], "site": batch["site"], "unit": batch["unit"],
            "edges": edges, **result}


def summary(result: dict) -> dict:
    """The short form shown in a batch record."""
    return {k: result[k] for k in ("complete", "expected", "received", "missing")} | {
        "data_gaps": len(result["data_gaps"])}
