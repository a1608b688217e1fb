"""The connection pool of the API and the translation of database failures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from starlette.requests import Request

from historian.query.errors import DatabaseUnavailable


def make_pool(dsn: str, *, max_size: int, timeout: float) -> AsyncConnectionPool:
    """A pool that is not opened yet; ``check`` makes it test a connection before handing it
    out, so one broken by a database restart is replaced instead of failing a request."""
    return AsyncConnectionPool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=timeout,
        open=False,
        check=AsyncConnectionPool.check_connection,
        # Queries are single read-only statements: autocommit keeps no transaction open.
        kwargs={"autocommit": True},
        name="batchwire-api",
    )


@asynccontextmanager
async def connection(request: Request, timeout: float | None = None) -> AsyncIterator[AsyncConnection]:
    """A pooled connection; connection-level failures become :class:`DatabaseUnavailable`."""
    pool: AsyncConnectionPool = request.app.state.pool
    try:
        async with pool.connection(timeout=timeout) as conn:
            yield conn
    except PoolTimeout as err:
        waited = pool.timeout if timeout is None else timeout
        raise DatabaseUnavailable(f"database unavailable: no connection within {waited:g} s") from err
    except psycopg.errors.UndefinedTable as err:
        raise DatabaseUnavailable(
            f"database has no batchwire schema (run 'batchwire db migrate'): {err}") from err
    except psycopg.OperationalError as err:
        raise DatabaseUnavailable(f"database unavailable: {err}") from err
