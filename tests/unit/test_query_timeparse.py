"""Time parameters: accepted forms, rejected forms, defaults."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from historian.query.errors import BadParameter, ConflictingParameters
from historian.query.timeparse import format_time, parse_time, resolve_range

NOW = datetime(2026, 11, 26, 22, 45, 40, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize("text, expected", [
    ("2026-11-26T22:45:40.123456Z", NOW),
    ("2026-11-26T23:45:40.123456+01:00", NOW),
    ("2026-11-26T22:45:40.1234567Z", NOW),
    ("2026-11-26T23:45:40.123456 01:00", NOW),  # '+' decoded as a space  # beyond microseconds: truncated
    ("2026-11-26", datetime(2026, 11, 26, tzinfo=timezone.utc)),
    ("now", NOW),
    ("*", NOW),
    ("*-1h", NOW - timedelta(hours=1)),
    ("NOW-15m", NOW - timedelta(minutes=15)),
    ("*+30s", NOW + timedelta(seconds=30)),
    ("*-1d-6h", NOW - timedelta(days=1, hours=6)),
    ("*-250ms", NOW - timedelta(milliseconds=250)),
    ("*-1.5h", NOW - timedelta(minutes=90)),
    (" *-2w ", NOW - timedelta(weeks=2)),
])
def test_accepted_forms(text, expected):
    got = parse_time(text, now=NOW, parameter="start")
    assert got == expected
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("text, fragment", [
    ("yesterday", "not an ISO 8601 time"),
    ("2026-11-26T22:45:40", "no UTC designator"),
    ("2026-13-01", "not a valid date"),
    ("", "is empty"),
    ("*-1y", "not an ISO 8601 time"),
])
def test_rejected_forms_name_the_parameter(text, fragment):
    with pytest.raises(BadParameter) as info:
        parse_time(text, now=NOW, parameter="end")
    assert info.value.parameter == "end"
    assert str(info.value).startswith("end: ")
    assert fragment in str(info.value)


def test_format_is_utc_with_microseconds_and_z():
    assert format_time(NOW) == "2026-11-26T22:45:40.123456Z"
    assert format_time(datetime(2026, 1, 1, 1, tzinfo=timezone(timedelta(hours=1)))) == "2026-01-01T00:00:00.000000Z"
    assert format_time(None) is None


def test_range_defaults():
    rng = resolve_range(None, None, now=NOW, default_span=timedelta(hours=1))
    assert (rng.start, rng.end) == (NOW - timedelta(hours=1), NOW)
    rng = resolve_range(None, "2026-11-26T00:00:00Z", now=NOW, default_span=timedelta(hours=1))
    assert rng.start == datetime(2026, 11, 25, 23, tzinfo=timezone.utc)
    rng = resolve_range(None, None, now=NOW, default_span=None, default_end_now=False)
    assert (rng.start, rng.end) == (None, None)


@pytest.mark.parametrize("start, end", [("now", "*-1h"), ("now", "now")])
def test_start_must_be_before_end(start, end):
    with pytest.raises(ConflictingParameters) as info:
        resolve_range(start, end, now=NOW, default_span=None)
    assert info.value.parameter == "start"
    assert "is not before end" in str(info.value)
