"""GET /health."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import APIRouter, Request

from historian.api.db import connection
from historian.api.responses import JSONBody
from historian.api.schemas import Health
from historian.query.errors import DatabaseUnavailable
from historian.query.health import broker_from_ingest, ingest_from_log, jsonable, overall_status

router = APIRouter(tags=["health"])


def _report(source: Callable[[], dict] | None) -> dict | None:
    """A component's own status dict (JSON-safe); a failing status function reports ``ok: false``."""
    if source is None:
        return None
    try:
        return jsonable(dict(source()))
    except Exception as err:  # a broken status callback must not break the health check
        return {"ok": False, "error": f"status unavailable: {err!r}"}


@router.get("/health", response_model=Health,
            responses={503: {"model": Health, "description": "Database down"}})
async def health(request: Request) -> JSONBody:
    """Database reachability and latency, broker and ingest status.

    ``status`` is ``down`` (HTTP 503) when the database cannot be queried, ``degraded`` when
    the broker or ingest reports ``ok: false`` or ``connected: false``, else ``ok``. Without a
    broker status of its own, the broker part is the ingest client's ``connected`` flag.
    """
    state = request.app.state
    ingest = _report(state.ingest_status)
    began = time.perf_counter()
    try:
        async with connection(request, timeout=state.health_timeout) as conn:
            await conn.execute("SELECT 1")
            latency_ms = round((time.perf_counter() - began) * 1000, 3)
            if state.ingest_status is None:
                ingest = await ingest_from_log(conn)
            database = {"ok": True, "latency_ms": latency_ms}
    except DatabaseUnavailable as err:
        database = {"ok": False, "latency_ms": None, "error": str(err)}
    broker = _report(state.broker_status) if state.broker_status else broker_from_ingest(ingest)
    status = overall_status(database["ok"], broker, ingest)
    body = {"status": status, "database": database, "broker": broker, "ingest": ingest}
    return JSONBody(body, status_code=503 if status == "down" else 200)
