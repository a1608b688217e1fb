"""Durations in plant files: a number of seconds or a string like ``"90s"``, ``"5m"``, ``"2h"``, ``"14d"``."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|min|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds from a number or a ``<number><s|m|min|h|d>`` string; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _PATTERN.match(value)
        if not m:
            raise ValueError(f"{value!r} is not a duration (use e.g. '90s', '5m', '2h', '14d')")
        seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    else:
        raise ValueError("a duration is a number of seconds or a string like '5m'")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
