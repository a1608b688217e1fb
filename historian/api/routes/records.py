"""GET /quarantine, /completeness, /edges, /events: the integrity record of ingest."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query, Request

from historian.api import params
from historian.api.db import connection
from historian.api.responses import JSONBody
from historian.api.schemas import Completeness, Edge, EventList, QuarantineList
from historian.query import completeness, edges, events, quarantine
from historian.query.timeparse import resolve_range

router = APIRouter(tags=["integrity"])


@router.get("/quarantine", response_model=QuarantineList)
async def list_quarantine(
    request: Request,
    start: str | None = params.START,
    end: str | None = params.END,
    reason: str | None = Query(None, description="Only this reason, e.g. undeclared-tag"),
    limit: int = Query(quarantine.DEFAULT_LIMIT, ge=1, le=quarantine.MAX_LIMIT),
) -> JSONBody:
    """Payloads ingest could not apply, newest first, by receive time (no bound when omitted)."""
    rng = resolve_range(start, end, now=params.now(), default_span=None, default_end_now=False)
    async with connection(request) as conn:
        return JSONBody(await quarantine.fetch_quarantine(conn, rng, reason, limit))


@router.get("/completeness", response_model=Completeness)
async def get_completeness(
    request: Request,
    edge: str | None = Query(None, description="Only this edge (default: every edge)"),
    start: str | None = params.START,
    end: str | None = params.END,
) -> JSONBody:
    """Expected versus committed messages per edge session over ``[start, end)`` (by sample
    time; defaults: end = now, start = end − 24 h), the missing sequence ranges with the time
    they must lie in, and the data-gap events reported by edges."""
    rng = resolve_range(start, end, now=params.now(), default_span=timedelta(hours=24))
    async with connection(request) as conn:
        return JSONBody(await completeness.fetch_completeness(conn, rng, [edge] if edge else None))


@router.get("/edges", response_model=list[Edge])
async def list_edges(request: Request) -> JSONBody:
    """Every edge with its last reported state, session and birth time."""
    async with connection(request) as conn:
        return JSONBody(await edges.fetch_edges(conn))


@router.get("/events", response_model=EventList)
async def list_events(
    request: Request,
    start: str | None = params.START,
    end: str | None = params.END,
    type: str | None = Query(None, description="Only this type, e.g. data-gap"),
    edge: str | None = Query(None, description="Only events of this edge"),
    limit: int = Query(events.DEFAULT_LIMIT, ge=1, le=events.MAX_LIMIT),
) -> JSONBody:
    """Events whose time span meets ``[start, end)`` (defaults: end = now, start = end − 24 h),
    oldest first."""
    rng = resolve_range(start, end, now=params.now(), default_span=timedelta(hours=24))
    async with connection(request) as conn:
        found, truncated = await events.fetch_events(
            conn, rng, type_=type, edges=[edge] if edge else None, limit=limit)
    return JSONBody({**rng.as_json(), "events": found, "truncated": truncated})
