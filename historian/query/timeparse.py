"""Parsing and formatting of times in API parameters and responses (pure).

Accepted input forms (case-insensitive for the relative ones):

* ISO 8601 with ``Z`` or an offset: ``2026-11-26T22:45:40.123456Z``,
  ``2026-11-26T23:45:40+01:00``. More than six fractional digits are truncated to
  microseconds. A date alone (``2026-11-26``) means midnight UTC. A positive offset whose
  ``+`` arrived as a space (unencoded in a query string) is read as ``+``.
* ``now`` or ``*``: the time the request is handled.
* relative to now: ``*-1h``, ``now-15m``, ``*+30s``; units ``ms``, ``s``, ``m``, ``h``,
  ``d``, ``w``; several terms may follow each other: ``*-1d-6h``.

A date-time without ``Z`` or offset is rejected: a historian serving several sites
cannot guess which local time was meant.

Output is always UTC with microseconds and ``Z``: ``2026-11-26T22:45:40.123456Z``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .errors import BadParameter, ConflictingParameters

UTC = timezone.utc

_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_RELATIVE = re.compile(r"^(?:now|\*)((?:\s*[+-]\s*\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|w))*)\s*$", re.I)
_TERM = re.compile(r"([+-])\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.I)
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_FRACTION = re.compile(r"(\.\d{6})\d+")
# An unencoded '+' in a query string arrives as a space: "...T10:00:00 01:00".
_SPACE_OFFSET = re.compile(r"(T[\d:.]+) (\d{2}:?\d{2})$")


def parse_time(text: str, *, now: datetime, parameter: str) -> datetime:
    """Parse one time parameter into an aware UTC datetime.

    ``now`` anchors the relative forms. Raises :class:`BadParameter` naming ``parameter``.
    """
    raw = text.strip()
    if not raw:
        raise BadParameter(parameter, "is empty; give an ISO 8601 time such as "
                                      "2026-11-26T22:45:40Z, 'now' or a relative time such as '*-1h'")
    rel = _RELATIVE.match(raw)
    if rel:
        result = now
        for sign, amount, unit in _TERM.findall(rel.group(1)):
            step = _UNITS[unit.lower()] * float(amount)
            result = result + step if sign == "+" else result - step
        return result.astimezone(UTC)
    if _DATE_ONLY.match(raw):
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=UTC)
        except ValueError as err:
            raise BadParameter(parameter, f"not a valid date: {raw!r} ({err})") from err
    try:
        parsed = datetime.fromisoformat(_SPACE_OFFSET.sub(r"\1+\2", _FRACTION.sub(r"\1", raw)))
    except ValueError as err:
        raise BadParameter(
            parameter,
            f"not an ISO 8601 time, 'now' or a relative time like '*-1h': {raw!r}",
        ) from err
    if parsed.tzinfo is None:
        raise BadParameter(parameter, f"{raw!r} has no UTC designator 'Z' or offset such as '+01:00'")
    return parsed.astimezone(UTC)


def format_time(dt: datetime | None) -> str | None:
    """``2026-11-26T22:45:40.123456Z`` for an aware datetime; ``None`` stays ``None``."""
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A half-open interval ``[start, end)``; either bound may be open (``None``)."""

    start: datetime | None
    end: datetime | None

    def as_json(self) -> dict:
        return {"start": format_time(self.start), "end": format_time(self.end)}


def resolve_range(
    start: str | None,
    end: str | None,
    *,
    now: datetime,
    default_span: timedelta | None,
    default_end_now: bool = True,
) -> TimeRange:
    """Resolve the ``start``/``end`` parameters of a request.

    A missing ``end`` is ``now`` when ``default_end_now`` (else open); a missing ``start`` is
    ``end - default_span`` when a span is given (else open). ``start`` must be before ``end``
    (:class:`ConflictingParameters` otherwise).
    """
    end_dt = parse_time(end, now=now, parameter="end") if end is not None else (
        now.astimezone(UTC) if default_end_now else None)
    if start is not None:
        start_dt = parse_time(start, now=now, parameter="start")
    elif default_span is not None and end_dt is not None:
        start_dt = end_dt - default_span
    else:
        start_dt = None
    if start_dt is not None and end_dt is not None and start_dt >= end_dt:
        raise ConflictingParameters(
            "start", f"{format_time(start_dt)} is not before end {format_time(end_dt)}")
    return TimeRange(start_dt, end_dt)
