"""The HTTP API application: pool lifecycle, error mapping and the routers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError

from historian.api.db import make_pool
from historian.api.responses import JSONBody
from historian.api.routes import batches, health, records, tags
from historian.query.errors import (
    Ambiguous,
    BadParameter,
    ConflictingParameters,
    DatabaseUnavailable,
    NotFound,
)

PREFIX = "/api/v1"


def create_app(
    dsn: str,
    *,
    ingest_status: Callable[[], dict] | None = None,
    broker_status: Callable[[], dict] | None = None,
    pool_max_size: int = 8,
    db_timeout: float = 10.0,
    health_timeout: float = 2.0,
) -> FastAPI:
    """The batchwire HTTP API over the database at ``dsn``.

    The connection pool opens in the app's lifespan without waiting for the database, so the
    API starts (and ``/health`` answers ``down``) while the database is unreachable.
    ``ingest_status`` and ``broker_status`` are called on every ``/health`` request and
    return JSON-able dicts; a key ``ok: false`` in either makes the status ``degraded``.
    Without ``ingest_status`` the ingest part is derived from ``batchwire.ingest_log``.
    ``db_timeout`` bounds the wait for a pooled connection in a request (HTTP 503 after),
    ``health_timeout`` the same for ``/health``.
    """
    pool = make_pool(dsn, max_size=pool_max_size, timeout=db_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await pool.open(wait=False)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="batchwire historian",
        version="1",
        description="Process historian for biomanufacturing: tags, recorded samples with "
                    "their ISA-88 batch context, batches, completeness of the record.",
        default_response_class=JSONBody,
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.pool = pool
    app.state.ingest_status = ingest_status
    app.state.broker_status = broker_status
    app.state.health_timeout = health_timeout
    _install_error_handlers(app)
    for router in (health.router, tags.router, batches.router, records.router):
        app.include_router(router, prefix=PREFIX)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadParameter)
    async def bad_parameter(request: Request, exc: BadParameter) -> JSONBody:
        status = 400 if isinstance(exc, ConflictingParameters) else 422
        return JSONBody({"detail": str(exc), "parameter": exc.parameter}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONBody:
        errors = exc.errors()
        first = errors[0] if errors else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body")]
        parameter = ".".join(loc) or None
        message = first.get("msg", "invalid request")
        value = first.get("input")
        detail = f"{parameter}: {message}" if parameter else message
        if value is not None and not isinstance(value, (dict, list)):
            detail += f" (got {value!r})"
        return JSONBody({"detail": detail, "parameter": parameter}, status_code=422)

    @app.exception_handler(NotFound)
    async def not_found(request: Request, exc: NotFound) -> JSONBody:
        return JSONBody({"detail": str(exc)}, status_code=404)

    @app.exception_handler(Ambiguous)
    async def ambiguous(request: Request, exc: Ambiguous) -> JSONBody:
        return JSONBody({"detail": str(exc)}, status_code=409)

    @app.exception_handler(DatabaseUnavailable)
    async def unavailable(request: Request, exc: DatabaseUnavailable) -> JSONBody:
        return JSONBody({"detail": str(exc)}, status_code=503)
