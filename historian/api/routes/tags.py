"""GET /tags, /tags/{tag}, /tags/{tag}/recorded."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Query, Request

from historian.api import params
from historian.api.db import connection
from historian.api.responses import JSONBody
from historian.api.schemas import ErrorBody, Recorded, Tag
from historian.query import recorded, tags
from historian.query.timeparse import resolve_range

router = APIRouter(tags=["tags"])
NOT_FOUND = {404: {"model": ErrorBody, "description": "No such tag"}}


@router.get("/tags", response_model=list[Tag])
async def list_tags(
    request: Request,
    q: str | None = Query(None, description="Only tags whose name or description contains this (any case)"),
    site: str | None = Query(None, description="Only tags of this site"),
) -> JSONBody:
    """The tag registry, ordered by name."""
    async with connection(request) as conn:
        return JSONBody(await tags.fetch_tags(conn, q=q, site=site))


@router.get("/tags/{tag}", response_model=Tag, responses=NOT_FOUND)
async def get_tag(request: Request, tag: str) -> JSONBody:
    """One tag's registry entry."""
    async with connection(request) as conn:
        return JSONBody(await tags.fetch_tag(conn, tag))


@router.get("/tags/{tag}/recorded", response_model=Recorded, responses=NOT_FOUND)
async def get_recorded(
    request: Request,
    tag: str,
    start: str | None = params.START,
    end: str | None = params.END,
    limit: int = Query(recorded.DEFAULT_LIMIT, ge=1, le=recorded.MAX_LIMIT,
                       description="Most samples returned; `truncated` says whether more exist"),
) -> JSONBody:
    """Raw samples in ``[start, end)`` ordered by time, with the batch context of each.
    Defaults: ``end`` = now, ``start`` = end − 1 h."""
    rng = resolve_range(start, end, now=params.now(), default_span=timedelta(hours=1))
    async with connection(request) as conn:
        return JSONBody(await recorded.fetch_recorded(conn, tag, rng, limit))
