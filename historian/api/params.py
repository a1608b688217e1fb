"""Request parameters shared by several routes."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import Query

TIME_HELP = ("ISO 8601 with Z or offset (2026-11-26T22:45:40.123456Z), a date (midnight UTC), "
             "'now' / '*', or relative to now: '*-1h', 'now-15m', '*-1d-6h' (units ms s m h d w)")

START = Query(None, description="Start of the range, inclusive. " + TIME_HELP)
END = Query(None, description="End of the range, exclusive. " + TIME_HELP)


def now() -> datetime:
    return datetime.now(timezone.utc)
