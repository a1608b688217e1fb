"""GET /batches, /batches/{batch}, /batches/{batch}/completeness."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from historian.api import params
from historian.api.db import connection
from historian.api.responses import JSONBody
from historian.api.schemas import Batch, BatchCompleteness, BatchDetail, ErrorBody
from historian.query import batches, completeness
from historian.query.timeparse import resolve_range

router = APIRouter(tags=["batches"])
ONE = {404: {"model": ErrorBody, "description": "No such batch"},
       409: {"model": ErrorBody, "description": "Batch id exists on several units"}}
SITE = Query(None, description="Site of the batch (needed when the id exists on several units)")
UNIT = Query(None, description="Unit of the batch (needed when the id exists on several units)")


@router.get("/batches", response_model=list[Batch])
async def list_batches(
    request: Request,
    site: str | None = Query(None),
    unit: str | None = Query(None),
    recipe: str | None = Query(None),
    start: str | None = params.START,
    end: str | None = params.END,
    limit: int = Query(batches.DEFAULT_LIMIT, ge=1, le=batches.MAX_LIMIT,
                       description="Most batches returned; header X-Batchwire-Truncated: true when more exist"),
) -> JSONBody:
    """Batches overlapping ``[start, end)`` (no bound when omitted), newest start first, each
    with its phases in time order."""
    rng = resolve_range(start, end, now=params.now(), default_span=None, default_end_now=False)
    flt = batches.BatchFilter(site=site, unit=unit, recipe=recipe)
    async with connection(request) as conn:
        found, truncated = await batches.fetch_batches(conn, flt, rng, limit)
    return JSONBody(found, headers={"X-Batchwire-Truncated": "true" if truncated else "false"})


@router.get("/batches/{batch}", response_model=BatchDetail, responses=ONE)
async def get_batch(request: Request, batch: str, site: str | None = SITE, unit: str | None = UNIT) -> JSONBody:
    """One batch with its phases and a completeness summary of its record."""
    async with connection(request) as conn:
        record = await batches.find_batch(conn, batch, site, unit)
        result = await completeness.fetch_batch_completeness(conn, record, batches.batch_range(record))
    return JSONBody({**batches.public(record), "completeness": completeness.summary(result)})


@router.get("/batches/{batch}/completeness", response_model=BatchCompleteness, responses=ONE)
async def get_batch_completeness(request: Request, batch: str, site: str | None = SITE,
                                 unit: str | None = UNIT) -> JSONBody:
    """Completeness of the messages of the edges whose samples carry this batch's context,
    over the batch's time range, with the data-gap events of those edges."""
    async with connection(request) as conn:
        record = await batches.find_batch(conn, batch, site, unit)
        result = await completeness.fetch_batch_completeness(conn, record, batches.batch_range(record))
    return JSONBody(result)
